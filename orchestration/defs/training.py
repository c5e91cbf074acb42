"""Training and retraining of the effect predictor.

`training_dataset` (pool duckdb) exports what the trainers read as Parquet: the point-in-time training set and,
for the latest labelled days, the inputs of the off-policy gate (the day's candidates, the users' channels and
time zones, recent sends). The trainers (pool gpu: one at a time) then never hold the warehouse lock.

`effect_predictor` trains from scratch (the first model, or a deliberate cold retrain); `retrained_predictor`
warm-starts from the champion and is what the retrain sensor runs when enough new feedback has arrived. Both
hold the latest labelled days out of training, and promote only through the same gate
(`ml.delivery.policy_eval`): the plan the challenger would have made on those days against the champion's,
judged off-policy from the logged decisions. Publishing comes first and promotion last, so a run that fails
anywhere leaves the champion serving.
"""

import json
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from orchestration.defs.scoring import PlanSettings
from orchestration.resources import PromoHome

TRAINING_EXAMPLES = dg.AssetKey(["marts", "fct_training_examples"])
MAX_GATE_DAYS = 3  # labelled days whose gate inputs are exported; the trainers use up to this many


def datasets_dir(promo: PromoHome) -> Path:
    return promo.paths.artifacts / "datasets"


def training_set_path(promo: PromoHome) -> Path:
    return datasets_dir(promo) / "training_examples.parquet"


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> int:
    """DuckDB writes the query's result to Parquet itself (streaming: the mart never sits in Python memory,
    17 GiB at a million users) and the file replaces the old one whole. Returns the rows written."""
    tmp = path.with_suffix(".tmp")
    quoted = str(tmp).replace("'", "''")
    (rows,) = con.execute(f"copy ({query}) to '{quoted}' (format parquet)").fetchall()[0]
    tmp.replace(path)
    return rows


@dg.asset(
    deps=[TRAINING_EXAMPLES],
    group_name="training",
    pool="duckdb",
    kinds={"duckdb", "parquet"},
    description="marts.fct_training_examples as Parquet, plus the gate's inputs for the latest labelled days "
    "(their candidates, users' channels and time zones, sends in the 6 days before).",
)
def training_dataset(context: dg.AssetExecutionContext, promo: PromoHome) -> dg.MaterializeResult:
    folder = datasets_dir(promo)
    folder.mkdir(parents=True, exist_ok=True)
    with promo.connect() as con:
        rows, treated, conversions, first, last = con.execute(
            """select count(*), count(*) filter (where is_treated), count(*) filter (where label_convert),
                      min(as_of_date), max(as_of_date) from marts.fct_training_examples"""
        ).fetchall()[0]
        days = [d for (d,) in con.execute(
            f"select distinct as_of_date from marts.fct_training_examples order by 1 desc limit {MAX_GATE_DAYS}"
        ).fetchall()][::-1]
        day_list = ", ".join(f"DATE '{d}'" for d in days) or "NULL"
        _copy(con, "select * from marts.fct_training_examples order by decision_id", training_set_path(promo))
        gate_candidates = _copy(con, f"select * from marts.fct_promo_candidates where as_of_date in ({day_list})",
                                folder / "gate_candidates.parquet")
        _copy(con, "select user_id, timezone, consent_push, consent_sms, consent_email from marts.dim_users",
              folder / "gate_users.parquet")
        # An empty day list still writes the file with its columns (the join matches nothing).
        _copy(
            con,
            f"""select d.day as decision_date, s.user_id, count(*)::int as n_sends
                from (select unnest([{day_list}]::date[]) as day) d
                join delivery.decisions s
                  on s.action = 'send' and s.decision_date between d.day - 6 and d.day - 1
                group by all""",
            folder / "gate_recent_sends.parquet",
        )
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "treated_rows": treated,
            "conversions": conversions,
            "window": f"{first} .. {last}" if rows else "empty",
            "gate_days": ", ".join(map(str, days)),
            "gate_candidates": gate_candidates,
            "path": dg.MetadataValue.path(str(training_set_path(promo))),
        }
    )


class PredictorTraining(dg.Config):
    epochs: int = 8
    min_rows: int = 5000  # fewer labelled decisions than this: keep collecting (exploration) instead
    # Fewer purchases after a send than this in the training days: keep exploring. A shop's first labelled
    # day has a handful; an uplift fitted on them sent the demo's budget to noise (closed loop: 6 % of the
    # oracle, below random).
    min_send_conversions: int = 30
    gate_days: int = 2  # latest labelled days held out of training and used by the promotion gate
    min_improvement: float = 0.0  # incremental margin per decision the DR interval's lower end must beat
    seed: int = 0
    plan: PlanSettings = PlanSettings()


def gate_inputs(promo: PromoHome, days: list[date], settings: PlanSettings):
    """The gate's per-day action sets and recent sends, from the files `training_dataset` wrote."""
    from ml.delivery.planner import expand_actions

    folder = datasets_dir(promo)
    candidates = pl.read_parquet(folder / "gate_candidates.parquet")
    users = pl.read_parquet(folder / "gate_users.parquet")
    sends = pl.read_parquet(folder / "gate_recent_sends.parquet")
    cfg = settings.plan_config()
    actions, recent = {}, {}
    for day in days:
        day_candidates = candidates.filter(pl.col("as_of_date") == day)
        if day_candidates.is_empty():
            raise ValueError(f"no candidates exported for {day}: re-materialize training_dataset")
        actions[day] = expand_actions(day_candidates, users, day, cfg)
        recent[day] = sends.filter(pl.col("decision_date") == day).select("user_id", "n_sends") if sends.height else None
    return actions, recent


def train_and_gate(context: dg.AssetExecutionContext, promo: PromoHome, config: PredictorTraining, warm_start: bool):
    """Train a challenger on all but the latest labelled days, publish it, judge it on those days, and
    promote it or keep the champion. Yields one materialization, or none while there is too little data."""
    from ml.delivery.policy_eval import evaluate_challenger
    from ml.predictor.evaluate import evaluate_predictor
    from ml.predictor.predict import MODEL_NAME, load_predictor, predictor_from_registry, publish_predictor
    from ml.predictor.train import (
        CHECKPOINT_FILE,
        TrainConfig,
        rows_learned_from,
        split_examples,
        train_predictor,
    )
    from ml.registry import Registry

    frame = pl.read_parquet(training_set_path(promo))
    days = sorted(frame["as_of_date"].unique().to_list()) if frame.height else []
    if frame.height < config.min_rows or len(days) < 2:
        context.log.info(f"{frame.height} labelled decisions on {len(days)} day(s): need {config.min_rows} on two days")
        return
    gate_days = days[-min(config.gate_days, MAX_GATE_DAYS, len(days) - 1):]
    history = frame.filter(pl.col("as_of_date") < gate_days[0])
    held_out = frame.filter(pl.col("as_of_date").is_in(gate_days))
    send_conversions = history.filter(pl.col("is_treated") & pl.col("label_convert")).height
    if send_conversions < config.min_send_conversions:
        context.log.info(
            f"{send_conversions} purchase(s) after a send before {gate_days[0]}: need {config.min_send_conversions}"
        )
        return
    train_df, valid_df = split_examples(history, "auto", seed=config.seed)

    registry = Registry(promo.paths.artifacts)
    champion_version = registry.champion_version(MODEL_NAME)
    champion = predictor_from_registry(registry)[0] if champion_version else None
    init_from = registry.get(MODEL_NAME, champion_version).path if warm_start and champion_version else None
    run_dir = promo.paths.artifacts / "runs" / context.run_id
    cfg = TrainConfig(epochs=config.epochs, seed=config.seed, progress=False)
    result = train_predictor(train_df, cfg, run_dir, valid_df=valid_df, init_from=init_from)
    challenger = load_predictor(run_dir)

    report = evaluate_predictor(challenger, held_out, run_dir / "eval",
                                train_df=rows_learned_from(train_df, valid_df, cfg.refit), tag="challenger")
    actions, recent = gate_inputs(promo, gate_days, config.plan)
    decision = evaluate_challenger(
        held_out, actions, recent, challenger, champion, config.plan.plan_config(), config.min_improvement
    )
    flat = {k: (v["value"] if isinstance(v, dict) else v) for k, v in report.models["model"].items()}
    metrics = {**flat, **result.metrics(), **decision.metrics()}
    version = publish_predictor(
        registry, run_dir, metrics=metrics, data_window=result.data_window,
        config={**cfg.to_dict(), "warm_start_from": champion_version if init_from else None},
    )
    (run_dir / "gate.json").write_text(json.dumps(decision.to_dict(), indent=2, default=str))
    if decision.plans is not None:
        decision.plans.write_parquet(run_dir / "gate_plans.parquet")
    if decision.promote:
        registry.promote(MODEL_NAME, version.version, reason=decision.reason, metrics=decision.metrics())
    else:
        registry.keep_champion(MODEL_NAME, version.version, reason=decision.reason, metrics=decision.metrics())
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # the registry holds what serving needs
    metadata = {
        "version": version.version,
        "promoted": decision.promote,
        "decision": decision.reason,
        "champion": registry.champion_version(MODEL_NAME) or "",
        "warm_start_from": (champion_version or "") if init_from else "cold start",
        "rows_train": train_df.height,
        "rows_valid": valid_df.height,
        "gate_days": ", ".join(map(str, gate_days)),
        "gate_rows": decision.n_rows,
        "gate_plans": dg.MetadataValue.path(str(run_dir / "gate_plans.parquet")),
        "epochs_run": result.epochs_run,
        # Platt recalibration fitted on the validation rows (intercept, slope per head); empty when refit.
        **(result.calibration.summary() if result.calibration is not None else {}),
        "off_policy_gate": dg.MetadataValue.md(decision.markdown()),
        "held_out_metrics": dg.MetadataValue.md(report.markdown()),
    }
    for key, value in decision.metrics().items():
        if isinstance(value, float):
            metadata[f"ope_{key}"] = value
    for plot in report.plots:
        metadata[f"plot_{plot.stem}"] = dg.MetadataValue.path(str(plot))
    yield dg.MaterializeResult(metadata=metadata)


@dg.asset(
    deps=[training_dataset],
    group_name="training",
    pool="gpu",
    kinds={"pytorch"},
    output_required=False,
    description="Trains the behaviour-sequence effect predictor from scratch (CUDA when present) on all but "
    "the latest labelled days, evaluates it there beside a T-learner and a popularity rule, publishes it, and "
    "promotes it through the off-policy gate (first model: unless worse than the exploration that logged "
    "the data).",
)
def effect_predictor(context: dg.AssetExecutionContext, promo: PromoHome, config: PredictorTraining):
    yield from train_and_gate(context, promo, config, warm_start=False)


@dg.asset(
    deps=[training_dataset],
    group_name="training",
    pool="gpu",
    kinds={"pytorch"},
    output_required=False,
    description="Retrains the champion effect predictor on the new labelled window (warm start), and "
    "promotes the challenger only if its plan beats the champion's off-policy (IPS, SNIPS, DR with "
    "intervals, on the latest logged days) beyond the uncertainty. Run by the retrain sensor.",
)
def retrained_predictor(context: dg.AssetExecutionContext, promo: PromoHome, config: PredictorTraining):
    yield from train_and_gate(context, promo, config, warm_start=True)


training_assets = [training_dataset, effect_predictor, retrained_predictor]
