"""Sensors: new landing files -> ingestion runs for exactly the affected days; loaded events -> features.
They read file names, stat() and the Dagster event log, never the warehouse."""


import hashlib

import dagster as dg

from orchestration.defs.jobs import features_job, ingest_events_job, ingest_feedback_job
from orchestration.landing_watch import scan_landing
from orchestration.partitions import daily_partitions
from orchestration.settings import paths


def landing_sensor(table: str, job) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{table}_landing_sensor",
        job=job,
        minimum_interval_seconds=60,
        description=f"Watches landing/{table}/date=*/ and loads each day whose files are new or changed.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        valid = set(daily_partitions().get_partition_keys())
        scan = scan_landing(paths().landing_table(table), context.cursor, valid_days=valid)
        if not scan.changed_days:
            return dg.SensorResult(
                skip_reason=f"no new or changed files in landing/{table} ({scan.files_seen} known)",
                cursor=scan.cursor,
            )
        # One run per day; the cursor digest in the run key makes a changed file re-run its day exactly once.
        digest = hashlib.sha1(scan.cursor.encode()).hexdigest()[:12]
        runs = [
            dg.RunRequest(
                run_key=f"{table}:{day}:{digest}",
                partition_key=day,
                tags={"promoloop/trigger": f"{table} files: {', '.join(f for f in scan.new_files if day in f)[:200]}"},
            )
            for day in scan.changed_days
        ]
        context.log.info(f"{table}: new or changed files for {scan.changed_days}")
        return dg.SensorResult(run_requests=runs, cursor=scan.cursor)

    return _sensor


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_events_job()],
    request_job=features_job(),
    name="features_after_events_sensor",
    description="Rebuild the dbt features once a day of events has been loaded.",
)
def features_after_events_sensor(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"features-after-{context.dagster_run.run_id}")


def all_sensors() -> list[dg.SensorDefinition]:
    return [
        landing_sensor("events", ingest_events_job()),
        landing_sensor("feedback", ingest_feedback_job()),
        features_after_events_sensor,
    ]
