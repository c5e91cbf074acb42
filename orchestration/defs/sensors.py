"""Sensors: new landing files -> ingestion runs for exactly the affected days; loaded events -> features.
They read file names, stat() and the Dagster event log, never the warehouse."""


import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import dagster as dg

from ml.registry import Registry
from orchestration.defs.jobs import features_job, ingest_events_job, ingest_feedback_job, retraining_job
from orchestration.landing_watch import scan_landing
from orchestration.partitions import daily_partitions
from orchestration.settings import paths

FEEDBACK_KEY = dg.AssetKey(["raw", "feedback"])
TRAINING_EXAMPLES_KEY = dg.AssetKey(["marts", "fct_training_examples"])
PREDICTOR = "effect_predictor"  # ml.predictor.predict.MODEL_NAME, without importing torch into the sensor


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


@dataclass
class RetrainState:
    """The retrain sensor's cursor: the feedback loads it has counted and when it last asked for a run."""

    feedback_storage_id: int = 0
    pending_rows: int = 0  # feedback rows loaded since the last retraining request
    pending_loads: int = 0
    last_request_at: float = 0.0  # unix seconds

    @classmethod
    def parse(cls, cursor: str | None) -> "RetrainState":
        return cls(**json.loads(cursor)) if cursor else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class RetrainPolicy:
    """When new feedback is worth a retraining run (env: PROMO_RETRAIN_MIN_ROWS, PROMO_RETRAIN_EVERY_DAYS)."""

    min_new_rows: int = 3000
    every_days: float = 7.0  # with any new feedback at all, retrain at least this often

    @classmethod
    def from_env(cls) -> "RetrainPolicy":
        return cls(
            min_new_rows=int(os.environ.get("PROMO_RETRAIN_MIN_ROWS", cls.min_new_rows)),
            every_days=float(os.environ.get("PROMO_RETRAIN_EVERY_DAYS", cls.every_days)),
        )


def decide_retrain(
    state: RetrainState,
    new_loads: list[tuple[int, int]],
    features_storage_id: int,
    now: float,
    policy: RetrainPolicy,
    has_champion: bool = True,
) -> tuple[RetrainState, str | None]:
    """Pure decision: `new_loads` are (storage id, rows loaded) of feedback materializations after the cursor;
    `features_storage_id` is the latest materialization of the training examples. Until a first model is
    champion, any new feedback asks for a run (the asset itself waits for enough labelled rows), so the first
    model serves as soon as the data allow. Returns the new state and None to request a run, or the reason
    for skipping."""
    if new_loads:
        state = RetrainState(
            feedback_storage_id=max(i for i, _ in new_loads),
            pending_rows=state.pending_rows + sum(n for _, n in new_loads),
            pending_loads=state.pending_loads + len(new_loads),
            last_request_at=state.last_request_at,
        )
    if state.pending_rows == 0:
        return state, "no new feedback since the last retraining request"
    if features_storage_id < state.feedback_storage_id:
        return state, (
            f"{state.pending_rows} new feedback rows, but the training examples were not rebuilt since the last "
            "feedback load: waiting for the features job so the labels include them"
        )
    due = not has_champion or now - state.last_request_at >= policy.every_days * 86_400
    if state.pending_rows < policy.min_new_rows and not due:
        return state, (
            f"{state.pending_rows} new feedback rows from {state.pending_loads} load(s) < {policy.min_new_rows} "
            f"(PROMO_RETRAIN_MIN_ROWS), and the last retraining was less than {policy.every_days:g} days ago"
        )
    return RetrainState(state.feedback_storage_id, 0, 0, now), None


@dg.sensor(
    name="retrain_sensor",
    job=retraining_job(),
    minimum_interval_seconds=300,
    description="Counts the feedback rows loaded (from the event log, never the warehouse) and, once the "
    "training examples include them, asks for a retraining run when enough arrived or a week has passed.",
)
def retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    state = RetrainState.parse(context.cursor)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=FEEDBACK_KEY, after_storage_id=state.feedback_storage_id),
        limit=10_000,
        ascending=True,
    ).records
    loads = []
    for record in records:
        rows = record.asset_materialization.metadata.get("rows_loaded") if record.asset_materialization else None
        loads.append((record.storage_id, int(rows.value) if rows is not None else 0))
    features = context.instance.fetch_materializations(TRAINING_EXAMPLES_KEY, limit=1).records
    features_id = features[0].storage_id if features else 0
    now = datetime.now(UTC).timestamp()
    has_champion = Registry(paths().artifacts).champion_version(PREDICTOR) is not None  # a file, not the warehouse
    new_state, skip = decide_retrain(state, loads, features_id, now, RetrainPolicy.from_env(), has_champion)
    if skip:
        return dg.SensorResult(skip_reason=skip, cursor=new_state.dump())
    rows = state.pending_rows + sum(n for _, n in loads)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"retrain-after-{new_state.feedback_storage_id}",
                tags={"promoloop/trigger": f"{rows} new feedback rows"},
            )
        ],
        cursor=new_state.dump(),
    )


def all_sensors() -> list[dg.SensorDefinition]:
    return [
        landing_sensor("events", ingest_events_job()),
        landing_sensor("feedback", ingest_feedback_job()),
        features_after_events_sensor,
        retrain_sensor,
    ]
