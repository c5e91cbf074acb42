"""Training: the point-in-time training set is exported once (pool duckdb), then the effect predictor
trains from that file (pool gpu: one trainer at a time) so training never holds the warehouse lock."""

import shutil

import dagster as dg
import polars as pl

from orchestration.resources import PromoHome

TRAINING_EXAMPLES = dg.AssetKey(["marts", "fct_training_examples"])


def training_set_path(promo: PromoHome):
    return promo.paths.artifacts / "datasets" / "training_examples.parquet"


@dg.asset(
    deps=[TRAINING_EXAMPLES],
    group_name="training",
    pool="duckdb",
    kinds={"duckdb", "parquet"},
    description="marts.fct_training_examples as a Parquet file: what the trainers read.",
)
def training_dataset(context: dg.AssetExecutionContext, promo: PromoHome) -> dg.MaterializeResult:
    path = training_set_path(promo)
    path.parent.mkdir(parents=True, exist_ok=True)
    with promo.connect() as con:
        frame = con.sql("select * from marts.fct_training_examples order by decision_id").pl()
    tmp = path.with_suffix(".tmp")
    frame.write_parquet(tmp)
    tmp.replace(path)
    treated = int(frame["is_treated"].sum()) if frame.height else 0
    return dg.MaterializeResult(
        metadata={
            "rows": frame.height,
            "treated_rows": treated,
            "conversions": int(frame["label_convert"].sum()) if frame.height else 0,
            "window": f"{frame['as_of_date'].min()} .. {frame['as_of_date'].max()}" if frame.height else "empty",
            "path": dg.MetadataValue.path(str(path)),
        }
    )


class PredictorTraining(dg.Config):
    epochs: int = 8
    min_rows: int = 1000  # fewer labelled decisions than this: keep collecting (exploration) instead
    seed: int = 0


@dg.asset(
    deps=[training_dataset],
    group_name="training",
    pool="gpu",
    kinds={"pytorch"},
    output_required=False,
    description="Trains the behaviour-sequence effect predictor (CUDA when present), evaluates it on a "
    "held-out time window beside a T-learner and a popularity rule, publishes it to the registry, and "
    "makes it champion when there is none or when it ranks uplift better (Qini) on the same rows.",
)
def effect_predictor(context: dg.AssetExecutionContext, promo: PromoHome, config: PredictorTraining):
    from ml.predictor.evaluate import evaluate_predictor
    from ml.predictor.predict import MODEL_NAME, load_predictor, predictor_from_registry, publish_predictor
    from ml.predictor.train import TrainConfig, split_examples, train_predictor
    from ml.registry import Registry

    frame = pl.read_parquet(training_set_path(promo))
    if frame.height < config.min_rows:
        context.log.info(f"{frame.height} labelled decisions < {config.min_rows}: not training yet")
        return
    train_df, valid_df = split_examples(frame, "auto", seed=config.seed)  # by time once two days are labelled
    run_dir = promo.paths.artifacts / "runs" / context.run_id
    cfg = TrainConfig(epochs=config.epochs, seed=config.seed, progress=False)
    result = train_predictor(train_df, cfg, run_dir, valid_df=valid_df)
    predictor = load_predictor(run_dir)
    report = evaluate_predictor(predictor, valid_df, run_dir / "eval", train_df=train_df, tag="challenger")
    registry = Registry(promo.paths.artifacts)
    flat = {k: (v["value"] if isinstance(v, dict) else v) for k, v in report.models["model"].items()}
    version = publish_predictor(
        registry, run_dir, metrics={**flat, **result.metrics()}, data_window=result.data_window, config=cfg.to_dict()
    )
    champion = registry.champion_version(MODEL_NAME)
    if champion is None:
        registry.promote(MODEL_NAME, version.version, reason="first trained model", metrics=flat)
        decision = "promoted (first model)"
    else:
        current, _ = predictor_from_registry(registry)
        baseline = evaluate_predictor(current, valid_df, run_dir / "eval_champion", tag="champion", n_boot=50)
        qini_new = flat.get("qini", float("-inf"))
        qini_old = baseline.models["model"]["qini"]["value"]
        if qini_new > qini_old:
            registry.promote(MODEL_NAME, version.version, reason=f"Qini {qini_new:.4f} > champion {qini_old:.4f}", metrics=flat)
            decision = f"promoted: Qini {qini_new:.4f} > champion {champion} {qini_old:.4f}"
        else:
            registry.keep_champion(MODEL_NAME, version.version, reason=f"Qini {qini_new:.4f} <= champion {qini_old:.4f}")
            decision = f"kept champion {champion}: Qini {qini_new:.4f} <= {qini_old:.4f}"
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    metadata = {
        "version": version.version,
        "decision": decision,
        "rows_train": train_df.height,
        "rows_valid": valid_df.height,
        "epochs_run": result.epochs_run,
        "metrics": dg.MetadataValue.md(report.markdown()),
    }
    for plot in report.plots:
        metadata[f"plot_{plot.stem}"] = dg.MetadataValue.path(str(plot))
    yield dg.MaterializeResult(metadata=metadata)


training_assets = [training_dataset, effect_predictor]
