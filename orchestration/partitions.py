"""Daily partitions shared by events, feedback and the scoring chain: one partition = one calendar day (UTC)."""

from __future__ import annotations

from functools import cache

import dagster as dg

from orchestration.settings import partitions_start_date, scoring_timezone


@cache
def daily_partitions() -> dg.DailyPartitionsDefinition:
    # end_offset=1 makes today's partition exist, so the 06:00 schedule can score "today".
    return dg.DailyPartitionsDefinition(
        start_date=partitions_start_date(), timezone=scoring_timezone(), end_offset=1
    )
