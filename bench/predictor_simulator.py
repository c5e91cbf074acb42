"""The effect predictor on the simulated shop, beside the T-learner and the popularity rule, with the truth.

    python -m bench.predictor_simulator --seed 7 [--start 2026-10-19] [--loop-days 12] [--eval-days 3] [--home DIR]
        [--bootstrap 200] [--crosses] [--refit]

1. Log: a demo-size shop (5,000 users, 500 products, 30 history days) goes through the real Dagster jobs
   (ingest, dbt features), then the daily scoring job runs for `--loop-days` days with no trained model, so
   every day's plan is the planner's uniform exploration: each eligible user is messaged with probability q
   (budget 1,500 makes q its cap, 0.3), with an action drawn uniformly from their candidates, and every
   decision logs its propensity. The frequency cap is 7 a week and the SMS quota 2,000 during the collection
   (the defaults, 2 and 200, would cap most users by day 7 and fail the plan's check: the cold-start
   exploration does not ration SMS). Before each day is simulated `Shop.true_effect` values every logged
   action, sent or not (the oracle's uplift); `Shop.advance_day` makes the customers respond. The loop's
   events and feedback are ingested after the last day (plus 3 quiet days, so every 48 h window closes) and
   dbt labels the decisions with point-in-time features; the days' candidates therefore come from the
   history's features, which a uniform policy does not look at anyway.
2. Train exactly as the `effect_predictor` asset does (`orchestration/defs/training.py`): the latest
   `--eval-days` labelled days are held out, the rest split by `split_examples(.., "auto")` and fed to
   `train_predictor` with the asset's defaults (8 epochs, seed); `--crosses` and `--refit` turn on the two
   options the asset leaves off (`features.CUSTOMER_CROSSES`, `TrainConfig.refit`; README, "The effect
   predictor").
3. Evaluate on the held-out days' randomized rows (users in the exploration draw: not holdout, not
   frequency-capped) with `ml.predictor.evaluate.evaluate_predictor`: AUC / log-loss / ECE, Qini, AUUC and
   uplift@10/30 % with bootstrap intervals, and the correlation of predicted with true uplift, beside a
   T-learner fitted on the same training rows (with the fixed penalty, and with penalties cross-validated
   over folds of customers as the model's linear part is) and the popularity rule; and the oracle's AUC and Qini on the
   same rows (the true probabilities as scores): the ceiling.

Writes bench/results/predictor_simulator_{convert_auc,qini,ece,true_uplift_corr}.json (with `_crosses` /
`_refit` before `.json` when those options are on, so the defaults' results stay). `--home DIR` keeps the
shop and the log there; a second run with the same DIR and log options reuses the log (training and
evaluation only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from bench.common import write_result

LOG_FILE = "predictor_simulator_log.parquet"


@dataclass(frozen=True)
class LogOptions:
    n_users: int = 5000
    n_products: int = 500
    history_days: int = 30
    loop_days: int = 12
    settle_days: int = 3  # organic days after the loop, so the last decisions' 48 h windows close
    seed: int = 7
    budget: float = 1500.0  # the plan's daily budget: sizes the exploration's send rate q (at most 0.3)
    cap_per_7d: int = 7  # frequency cap during the collection (the default 2 would cap most users by day 7)
    sms_quota: int = 2000  # the cold-start exploration does not ration SMS; the plan's check enforces the quota
    # The shop's first history day. Fixed, not relative to today: the calendar changes the log (weekdays,
    # the users' UTC offsets across daylight-saving changes), so a date-relative log gave other figures on
    # another day with the same seed.
    start: str = "2026-10-19"


def _read(warehouse: Path, sql: str) -> pl.DataFrame:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def build_log(home: Path, opt: LogOptions) -> pl.DataFrame:
    """Run the shop and the platform's jobs; return the labelled training examples of the loop days with
    `is_exploration` (the user was in the randomized draw) and `true_uplift` (the oracle's, for the logged
    action) joined on."""
    from orchestration.definitions import build_definitions
    from orchestration.defs.scoring import PlanSettings, plan_run_config
    from orchestration.demo import (
        QUIET,
        read_export,
        run_job,
        run_sensor,
        run_sensor_cursor_only,
        simulate_shop,
    )
    from orchestration.instance import get_instance
    from orchestration.settings import PromoPaths

    paths = PromoPaths(home)
    started = time.perf_counter()
    shop = simulate_shop(paths, opt.n_users, opt.n_products, opt.history_days, opt.seed,
                         date.fromisoformat(opt.start), opt.loop_days + opt.settle_days)
    first = shop.config.start
    last = first + timedelta(days=opt.history_days - 1)
    instance = get_instance(paths.dagster_home)
    defs = build_definitions()
    run_job(defs, instance, "ingest_catalog_job")
    run_job(defs, instance, "ingest_events_job", partition_range=(str(first), str(last)))
    run_job(defs, instance, "features_job")
    print(f"  history simulated and loaded ({time.perf_counter() - started:.0f} s)", flush=True)
    cursors: dict[str, str | None] = {}
    run_sensor_cursor_only(defs, instance, "feedback_landing_sensor", cursors)

    plan = PlanSettings(budget=opt.budget, cap_per_7d=opt.cap_per_7d, sms_quota=opt.sms_quota, seed=opt.seed)
    scoring = defs.resolve_job_def("daily_scoring_job")
    run_config = {**QUIET, **plan_run_config(scoring, plan)}
    truths = []
    for offset in range(opt.loop_days + opt.settle_days):
        day = last + timedelta(days=offset + 1)
        deliveries = None
        t0 = time.perf_counter()
        if offset < opt.loop_days:
            result = scoring.execute_in_process(run_config=run_config, instance=instance, partition_key=str(day),
                                                raise_on_error=False)
            if not result.success:
                failures = [e.message for e in result.all_events if e.is_failure][:3]
                raise RuntimeError(f"daily_scoring_job {day} failed: {failures}")
            decisions = _read(paths.warehouse, f"""select decision_id, user_id, product_id, offer_id, channel,
                send_hour, is_exploration from delivery.decisions where decision_date = DATE '{day}'""")
            # The oracle for every logged action, sent or not, at the state the day starts from.
            truth = shop.true_effect(decisions.with_columns(pl.lit(day).alias("day")))
            truths.append(truth.select("decision_id", "is_exploration", pl.col("uplift").alias("true_uplift"),
                                       pl.col("p_convert_none").alias("true_p_convert_none"),
                                       pl.col("p_convert_send").alias("true_p_convert_send")))
            deliveries = read_export(paths, day)
        t1 = time.perf_counter()
        outcome = shop.advance_day(day, deliveries)
        print(f"  {outcome} (plan {t1 - t0:.0f} s, simulate {time.perf_counter() - t1:.0f} s)", flush=True)
    end = last + timedelta(days=opt.loop_days + opt.settle_days)
    run_job(defs, instance, "ingest_events_job", partition_range=(str(last + timedelta(days=1)), str(end)))
    run_sensor(defs, instance, "feedback_landing_sensor", cursors)
    run_job(defs, instance, "features_job")
    examples = _read(paths.warehouse, "select * from marts.fct_training_examples order by decision_id")
    log = examples.join(pl.concat(truths), on="decision_id", how="inner")
    print(f"  log: {log.height} labelled decisions of {examples.height} ({time.perf_counter() - started:.0f} s)")
    return log


def sizes(frame: pl.DataFrame) -> dict[str, int]:
    treated = frame["is_treated"].cast(pl.Boolean)
    convert = frame["label_convert"].cast(pl.Boolean)
    return {
        "rows": frame.height, "treated": int(treated.sum()), "untreated": int((~treated).sum()),
        "treated_conversions": int((treated & convert).sum()), "untreated_conversions": int((~treated & convert).sum()),
        "days": frame["as_of_date"].n_unique(),
    }


def oracle_ceiling(rows: pl.DataFrame) -> dict[str, float]:
    """What a model that knew the simulator's true probabilities would score on `rows`: the ceiling the
    model's and the baselines' figures are read against (their gap to it is what features can still buy)."""
    from ml.predictor import metrics as M

    treated = rows["is_treated"].cast(pl.Boolean).to_numpy()
    y = rows["label_convert"].cast(pl.Float64).to_numpy()
    p_send = rows["true_p_convert_send"].cast(pl.Float64).to_numpy()
    return {
        "convert_send_auc": M.auc(y[treated], p_send[treated]),
        "convert_send_true_auc": M.expected_auc(p_send, p_send),
        "qini": M.qini_coefficient(y, treated.astype(float), rows["true_uplift"].cast(pl.Float64).to_numpy()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--home", default=None, help="PROMO_HOME for the run (default: a temporary folder)")
    p.add_argument("--loop-days", type=int, default=LogOptions.loop_days)
    p.add_argument("--eval-days", type=int, default=3, help="latest labelled days held out for evaluation")
    p.add_argument("--budget", type=float, default=LogOptions.budget)
    p.add_argument("--start", default=LogOptions.start, help="the shop's first history day (ISO date)")
    p.add_argument("--epochs", type=int, default=None, help="default: the effect_predictor asset's")
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--crosses", action="store_true", help="train with features.CUSTOMER_CROSSES (off in the asset)")
    p.add_argument("--refit", action="store_true", help="refit on training + validation rows (off in the asset)")
    args = p.parse_args(argv)
    home = Path(args.home or tempfile.mkdtemp(prefix="promoloop-predictor-sim-")).resolve()
    os.environ["PROMO_HOME"] = str(home)
    opt = LogOptions(loop_days=args.loop_days, seed=args.seed, budget=args.budget, start=args.start)
    started = time.perf_counter()

    log_path, meta_path = home / LOG_FILE, home / "predictor_simulator_log.json"
    if log_path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == asdict(opt):
        print(f"reusing the log in {log_path}")
        log = pl.read_parquet(log_path)
    else:
        print(f"building the randomized log in {home}")
        log = build_log(home, opt)
        log.write_parquet(log_path)
        meta_path.write_text(json.dumps(asdict(opt)))
    log_s = time.perf_counter() - started

    from ml.predictor.evaluate import evaluate_predictor
    from ml.predictor.features import CUSTOMER_CROSSES, contract_spec
    from ml.predictor.predict import load_predictor
    from ml.predictor.train import TrainConfig, rows_learned_from, split_examples, train_predictor
    from orchestration.defs.training import PredictorTraining

    days = sorted(log["as_of_date"].unique().to_list())
    if len(days) <= args.eval_days + 1:
        raise ValueError(f"{len(days)} labelled days: need more than --eval-days + 1 = {args.eval_days + 1}")
    eval_days = days[-args.eval_days:]
    history = log.filter(pl.col("as_of_date") < eval_days[0])
    held_out = log.filter(pl.col("as_of_date").is_in(eval_days))
    randomized = held_out.filter(pl.col("is_exploration"))
    asset = PredictorTraining(seed=args.seed)
    train_df, valid_df = split_examples(history, "auto", seed=asset.seed)
    cfg = TrainConfig(epochs=args.epochs or asset.epochs, seed=asset.seed, progress=False, refit=args.refit)
    spec = contract_spec(crosses=CUSTOMER_CROSSES if args.crosses else ())
    t0 = time.perf_counter()
    model_dir = home / "predictor_simulator_model"
    shutil.rmtree(model_dir, ignore_errors=True)  # a checkpoint left there would be resumed
    result = train_predictor(train_df, cfg, model_dir, spec=spec, valid_df=valid_df)
    train_s = time.perf_counter() - t0
    predictor = load_predictor(result.out_dir)
    report = evaluate_predictor(predictor, randomized, home / "predictor_simulator_eval",
                                train_df=rows_learned_from(train_df, valid_df, cfg.refit),
                                n_boot=args.bootstrap, seed=args.seed, tag="simulator")
    total_s = time.perf_counter() - started

    split_sizes = {"train": sizes(train_df), "valid": sizes(valid_df), "eval": sizes(randomized)}
    print("\nsizes: " + json.dumps(split_sizes))
    print(f"training: {result.epochs_run} epochs, best {result.best_epoch}, {train_s:.0f} s; log {log_s:.0f} s; total {total_s:.0f} s\n")
    print(report.markdown())
    m = report.models["model"]
    baselines = {k: report.models[k] for k in ("t_learner", "t_learner_cv", "popularity_rule")}

    def v(metrics: dict, key: str) -> float:
        x = metrics.get(key)
        return float("nan") if x is None else float(x["value"] if isinstance(x, dict) else x)

    # The reference is the best baseline: the fixed-penalty T-learner, the tuned one or the rule.
    auc_ref = max(v(b, "convert_send_auc") for b in baselines.values())
    qini_ref = max(v(b, "qini") for b in baselines.values())
    ece = v(m, "convert_send_ece")
    beats = {
        "convert_auc": v(m, "convert_send_auc") > auc_ref,
        "qini": v(m, "qini") > qini_ref,
        "ece": ece < 0.02,
    }
    ci = m["convert_send_auc_ci"]
    paired = "; ".join(
        f"model - {k} {d['value']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
        for k in ("t_learner", "t_learner_cv") if (d := m.get(f"convert_send_auc_minus_{k}"))
    )
    print(f"\nconversion AUC: model {v(m, 'convert_send_auc'):.4f} [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}] vs best baseline "
          f"{auc_ref:.4f}: {'beats' if beats['convert_auc'] else 'does NOT beat'}; paired bootstrap: {paired}")
    print(f"against the true P(convert | send) of all {randomized.height:,} held-out rows (outcome noise removed): AUC model "
          f"{v(m, 'convert_send_true_auc'):.4f}, " + ", ".join(f"{k} {v(b, 'convert_send_true_auc'):.4f}" for k, b in baselines.items()))
    ceiling = oracle_ceiling(randomized)
    print(f"the oracle (the simulator's true probabilities as the scores) on the same rows: conversion AUC "
          f"{ceiling['convert_send_auc']:.4f}, Qini {ceiling['qini']:.4f}; against the true P(convert | send) "
          f"{ceiling['convert_send_true_auc']:.4f} (the most any model can reach)")
    print(f"Qini: model {m['qini']['value']:.4f} [{m['qini']['ci_low']:.4f}, {m['qini']['ci_high']:.4f}] vs best baseline {qini_ref:.4f}: "
          f"{'beats' if beats['qini'] else 'does NOT beat'}")
    print(f"ECE of P(convert | send): {ece:.4f} (target < 0.02)")
    suffix = ("_crosses" if args.crosses else "") + ("_refit" if args.refit else "")
    extra = {"sizes": split_sizes, "options": {"crosses": args.crosses, "refit": args.refit}, "log": asdict(opt),
             "oracle": ceiling, "eval_days": [str(d) for d in eval_days],
             "models": report.models, "epochs_run": result.epochs_run, "train_s": train_s, "log_s": log_s,
             "total_s": total_s}
    write_result(f"predictor_simulator_convert_auc{suffix}", v(m, "convert_send_auc"), "AUC of P(convert | send), treated held-out rows",
                 auc_ref, v(m, "convert_send_auc") / auc_ref, "> every baseline (T-learner, tuned T-learner, popularity rule)", beats["convert_auc"], extra)
    write_result(f"predictor_simulator_qini{suffix}", v(m, "qini"), "Qini coefficient, held-out randomized rows", qini_ref,
                 v(m, "qini") / qini_ref if qini_ref else None, "> every baseline (T-learner, tuned T-learner, popularity rule)", beats["qini"], extra)
    write_result(f"predictor_simulator_ece{suffix}", ece, "ECE of P(convert | send), treated held-out rows", None, None, "< 0.02",
                 beats["ece"], extra)
    corr_ref = max(v(b, "true_uplift_pearson") for b in baselines.values())
    write_result(f"predictor_simulator_true_uplift_corr{suffix}", v(m, "true_uplift_pearson"),
                 "Pearson correlation of predicted with true uplift", corr_ref, None, "> baselines",
                 v(m, "true_uplift_pearson") > corr_ref, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
