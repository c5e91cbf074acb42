"""The daily schedule: score and plan "today" at 06:00 in the shop's timezone."""


import dagster as dg

from orchestration.defs.jobs import daily_scoring_job


def daily_scoring_schedule() -> dg.ScheduleDefinition:
    # Runs in the partitions timezone (PROMO_TIMEZONE). The daily partitions have end_offset=1, so the tick at 06:00 on day D targets partition D: the plan
    # for D uses events strictly before D (00:00 UTC) and messages go out during D.
    return dg.build_schedule_from_partitioned_job(
        daily_scoring_job(),
        name="daily_scoring_schedule",
        hour_of_day=6,
        minute_of_hour=0,
        description="Every morning: candidates -> scores -> plan -> messages -> delivery export for today.",
    )
