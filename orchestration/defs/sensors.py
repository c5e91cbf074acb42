"""Sensors: new landing files -> ingestion runs for exactly the affected days; enough new feedback ->
retraining. They read file names, stat() and the Dagster event log, never the warehouse."""

from __future__ import annotations

import hashlib
import json
import os

import dagster as dg

from orchestration.defs.jobs import features_job, ingest_events_job, ingest_feedback_job, retrain_job
from orchestration.landing_watch import scan_landing
from orchestration.partitions import daily_partitions
from orchestration.settings import paths

FEEDBACK_KEY = dg.AssetKey(["raw", "feedback"])


def retrain_min_rows() -> int:
    return int(os.environ.get("PROMO_RETRAIN_MIN_ROWS", "2000"))


def landing_sensor(table: str, job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
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


@dg.sensor(
    name="retrain_sensor",
    job=retrain_job(),
    minimum_interval_seconds=300,
    description="Requests a retraining run once enough new feedback rows have been loaded "
    "(PROMO_RETRAIN_MIN_ROWS, default 2000), counted from raw/feedback materialization metadata.",
)
def retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    state = json.loads(context.cursor) if context.cursor else {"after_id": 0, "pending_rows": 0}
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=FEEDBACK_KEY, after_storage_id=state["after_id"]), limit=1000
    ).records
    for record in records:
        meta = record.asset_materialization.metadata if record.asset_materialization else {}
        rows = meta.get("rows_loaded")
        state["pending_rows"] += int(rows.value) if rows is not None else 0
        state["after_id"] = max(state["after_id"], record.storage_id)
    threshold = retrain_min_rows()
    if state["pending_rows"] < threshold:
        return dg.SensorResult(
            skip_reason=f"{state['pending_rows']} new feedback rows since the last retraining (< {threshold})",
            cursor=json.dumps(state),
        )
    request = dg.RunRequest(run_key=f"retrain-after-{state['after_id']}", tags={"promoloop/new_rows": str(state["pending_rows"])})
    state["pending_rows"] = 0
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(state))


def all_sensors() -> list[dg.SensorDefinition]:
    return [
        landing_sensor("events", ingest_events_job()),
        landing_sensor("feedback", ingest_feedback_job()),
        features_after_events_sensor,
        retrain_sensor,
    ]
