"""The scale run: a simulated shop of 1M users, 100k products and 90 days of history through the real
Dagster jobs, then ONE daily cycle, with each step's time, rows, rows/s and peak resident memory beside a
plain DuckDB / NumPy reference of the heaviest steps measured in the same run.

    python -m bench.scale                                  # 1,000,000 users x 100,000 products x 90 days
    python -m bench.scale --users 20000 --products 2000 --days 14 --sample-users 5000   # minutes

Steps: simulate (streamed to Parquet day by day), ingest the catalogue and the history (ingestion assets),
build every dbt feature (features_job), one day of uniform exploration (daily_scoring_job before any model;
the simulated customers respond), then the measured cycle: ingest that day's events and feedback,
incremental dbt, and the next day's candidates -> scores -> plan -> messages -> export. Between the
cycle's dbt build and its scoring the effect predictor is trained on a sample of users (ml.predictor.train,
a few epochs) and published as champion, so the cycle scores with a real model. Messages are written by
the safe templates (no copy generator is trained here: on CPU it writes ~33 messages/s).

Targets: daily cycle <= 20 minutes, peak memory <= 12 GiB, no step slower than 3x its reference. Results:
bench/results/scale_daily_cycle_minutes.json, scale_peak_memory_gib.json and scale_table.json (with a
`_<N>k` suffix when --users is not 1,000,000). Memory is RSS of this process and all its children
(dbt runs as a subprocess), sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from bench.common import RESULTS_DIR, write_result
from bench.memory import GIB, MemorySampler

FULL_USERS = 1_000_000
CYCLE_TARGET_MINUTES = 20.0
MEMORY_TARGET_GIB = 12.0
RATIO_TARGET = 3.0
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Steps of the daily scoring job, in order, and the warehouse count that gives each one's rows.
# Days after the exploration day with no campaign, simulated so that its 48 h attribution window closes
# (a send may go out until 12:00 the next day) and its decisions become labelled training examples.
QUIET_DAYS = 3
SCORING_STEPS = ("promo_candidates", "promo_scores", "promo_plan", "promo_messages", "delivery_export")


@dataclass
class Step:
    """One measured row of the table. `reference` names the row this one is compared with."""

    name: str
    phase: str  # setup | explore | cycle | reference
    seconds: float
    rows: int
    peak_gib: float
    reference: str | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ScaleOptions:
    users: int
    products: int
    days: int
    load_days: int  # the latest days of history that go through ingestion (the backfill is the slow part)
    sample_users: int
    epochs: int
    home: Path
    seed: int
    budget_per_user: float
    reuse: bool
    keep: bool
    resume: bool  # the warehouse already holds the ingested history and features: start at the exploration day


class ScaleRun:
    """Runs the steps in order and records each one's wall time, rows and peak RSS."""

    def __init__(self, options: ScaleOptions, sampler: MemorySampler) -> None:
        self.o = options
        self.sampler = sampler
        self.steps: list[Step] = []
        self.home = options.home
        # history, the exploration day, QUIET_DAYS that close its attribution window, then the cycle day
        # (yesterday: daily partitions end today, and ingestion rejects events from the future).
        self.start = date.today() - timedelta(days=options.days + QUIET_DAYS + 2)
        self.explore_day = self.start + timedelta(days=options.days)
        self.last_quiet = self.explore_day + timedelta(days=QUIET_DAYS)
        self.cycle_day = self.last_quiet + timedelta(days=1)

    # ------------------------------------------------------------------ plumbing
    def measure(self, name: str, phase: str, fn, *args, reference: str | None = None, **kwargs) -> Any:
        """Run fn; it returns its row count, or (result, rows)."""
        print(f"  … {name}", flush=True)
        began, t0 = time.time(), time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = time.perf_counter() - t0
        result, rows = out if isinstance(out, tuple) else (None, out)
        step = Step(name, phase, seconds, int(rows), self.sampler.peak(began, time.time()) / GIB, reference)
        self.steps.append(step)
        print(f"  ✓ {name}: {seconds:.1f} s, {step.rows:,} rows, peak {step.peak_gib:.2f} GiB", flush=True)
        return result

    def plan_config(self) -> dict[str, Any]:
        """The demo's knobs scaled with the shop: budget and SMS quota per user (300 and 200 for 5,000)."""
        return {
            "budget": round(self.o.budget_per_user * self.o.users, 2),
            "sms_quota": max(1, int(self.o.users * 0.04)),
            "seed": self.o.seed,
        }

    def run_config(self, job: str) -> dict[str, Any]:
        from orchestration.defs.scoring import PlanSettings, plan_run_config

        config = dict(QUIET)
        if job == "daily_scoring_job":
            config.update(plan_run_config(self.defs.resolve_job_def(job), PlanSettings(**self.plan_config())))
        return config

    def execute(self, job: str, partition_key: str | None = None, partition_range: tuple[str, str] | None = None):
        tags = {}
        if partition_range:
            tags = {
                "dagster/asset_partition_range_start": partition_range[0],
                "dagster/asset_partition_range_end": partition_range[1],
            }
        result = self.defs.resolve_job_def(job).execute_in_process(
            run_config=self.run_config(job), instance=self.instance, partition_key=partition_key, tags=tags,
            raise_on_error=False,
        )
        if not result.success:
            failures = [e.message for e in result.all_events if e.is_failure]
            raise RuntimeError(f"{job} {partition_key or partition_range or ''} failed: {failures[:3]}")
        return result

    def query(self, sql: str) -> int:
        con = duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True)
        try:
            return int(con.execute(sql).fetchall()[0][0])
        finally:
            con.close()

    def loaded(self, result, asset: str = "rows_loaded") -> int:
        """Rows loaded per asset (a range run repeats its totals on every partition's materialization)."""
        per_asset = {
            e.asset_key: int(e.materialization.metadata[asset].value)
            for e in result.get_asset_materialization_events()
            if asset in e.materialization.metadata
        }
        return sum(per_asset.values())

    # ------------------------------------------------------------------ steps
    def simulate(self) -> int:
        from simulator import ShopConfig, simulate

        cfg = ShopConfig(
            n_users=self.o.users, n_products=self.o.products, history_days=self.o.days, start=self.start,
            seed=self.o.seed,
        )
        config_file = self.home / "simulator" / "config.json"
        if self.o.reuse and config_file.exists() and ShopConfig.from_json(config_file.read_text()) == cfg:
            print(f"    reusing the simulated shop in {self.home} (same config)")
        else:
            if self.home.exists():
                shutil.rmtree(self.home)

            def progress(done: int, total: int) -> None:
                if done == total or done % 10 == 0:
                    print(f"    simulated day {done}/{total}", flush=True)

            simulate(self.home, cfg, progress=progress)
        return self.count_parquet(self.home / "landing" / "events" / "*" / "*.parquet")

    def count_parquet(self, pattern: Path) -> int:
        return int(duckdb.sql(f"select count(*) from read_parquet('{pattern}')").fetchall()[0][0])

    def reset_platform(self) -> None:
        """A reused landing folder starts a fresh platform: no warehouse, registry, exports or runs."""
        for name in ("warehouse.duckdb", "warehouse.duckdb.wal", "artifacts", "exports", "dagster", "reports"):
            path = self.home / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        # The days after the history are simulated by this run: drop what an earlier run wrote for them.
        for offset in range(QUIET_DAYS + 1):
            for table in ("events", "feedback"):
                day = self.explore_day + timedelta(days=offset)
                shutil.rmtree(self.home / "landing" / table / f"date={day}", ignore_errors=True)

    def reference_ingest(self, patterns: list[str]) -> int:
        """A single DuckDB `read_parquet` insert of the same files into a scratch database."""
        path = self.home / "reference.duckdb"
        path.unlink(missing_ok=True)
        con = duckdb.connect(str(path))
        try:
            con.execute(
                f"create table events as select *, cast(event_at as date) as event_date, current_timestamp as _loaded_at "
                f"from read_parquet({patterns!r}, union_by_name = true)"
            )
            return int(con.execute("select count(*) from events").fetchall()[0][0])
        finally:
            con.close()
            path.unlink(missing_ok=True)

    def reference_features(self) -> int:
        """bench/feature_build.py's one hand-written query for the user features, on the same raw tables."""
        from bench.feature_build import REFERENCE_QUERY

        con = duckdb.connect()
        try:
            con.execute(f"attach '{self.home / 'warehouse.duckdb'}' as w (read_only)")
            con.execute(REFERENCE_QUERY.replace("raw.", "w.raw."))
            return int(con.execute("select count(*) from bench_reference").fetchall()[0][0])
        finally:
            con.close()

    def scoring_job(self, day: date, phase: str) -> None:
        """daily_scoring_job for `day`, one table row per asset (times from the run's event log)."""
        began = time.time()
        result = self.execute("daily_scoring_job", partition_key=str(day))
        spans: dict[str, list[float]] = {}
        for record in self.instance.all_logs(result.run_id):
            event = record.dagster_event
            if event is None or not event.step_key:
                continue
            if event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                spans.setdefault(event.step_key, []).append(record.timestamp)
        counts = {
            "promo_candidates": f"select count(*) from marts.fct_promo_candidates where as_of_date = DATE '{day}'",
            "promo_scores": f"select count(*) from delivery.scores where decision_date = DATE '{day}'",
            "promo_plan": f"select count(*) from delivery.decisions where decision_date = DATE '{day}'",
            "promo_messages": f"select count(*) from delivery.messages where decision_date = DATE '{day}'",
            "delivery_export": f"select count(*) from delivery.exports where export_date = DATE '{day}'",
        }
        for key in sorted(spans, key=lambda k: min(spans[k])):
            t0, t1 = min(spans[key]), max(spans[key])
            asset = next((a for a in SCORING_STEPS if a in key), key)
            rows = self.query(counts[asset]) if asset in counts else 0
            label = f"{day}: {key}"
            step = Step(label, phase, t1 - t0, rows, self.sampler.peak(t0, t1) / GIB)
            self.steps.append(step)
            print(f"  ✓ {label}: {step.seconds:.1f} s, {rows:,} rows, peak {step.peak_gib:.2f} GiB", flush=True)
        print(f"    daily_scoring_job {day}: {time.time() - began:.1f} s in all (Dagster overhead included)")

    def respond(self, first: date, last: date) -> int:
        """The simulated customers live [first, last]: they read the day's export where there is one."""
        from simulator import Shop

        shop, sent, day = Shop.load(self.home), 0, first
        while day <= last:
            export = self.home / "exports" / f"date={day}" / "delivery.parquet"
            deliveries = pl.read_parquet(export) if export.exists() else None
            print(f"    {shop.advance_day(day, deliveries)}")
            sent += deliveries.height if deliveries is not None else 0
            day += timedelta(days=1)
        return sent

    def train_on_sample(self) -> int:
        """Export the training set (training_dataset asset), train on a sample of users, publish, promote."""
        from ml.predictor.predict import MODEL_NAME, publish_predictor
        from ml.predictor.train import TrainConfig, split_examples, train_predictor
        from ml.registry import Registry

        self.execute_assets(["training_dataset"])
        frame = pl.read_parquet(self.home / "artifacts" / "datasets" / "training_examples.parquet")
        users = frame["user_id"].unique().sort().sample(
            n=min(self.o.sample_users, frame["user_id"].n_unique()), seed=self.o.seed
        )
        sample = frame.filter(pl.col("user_id").is_in(users.implode()))
        # A sample dominated by untreated rows teaches the send heads little: keep every treated row of it.
        print(f"    training examples: {frame.height:,} ({int(frame['is_treated'].sum()):,} treated); "
              f"sample of {users.len():,} users: {sample.height:,} rows ({int(sample['is_treated'].sum()):,} treated)")
        del frame
        train_df, valid_df = split_examples(sample, "user", seed=self.o.seed)
        run_dir = self.home / "artifacts" / "runs" / "scale"
        shutil.rmtree(run_dir, ignore_errors=True)  # each run trains afresh (a kept home holds the last one's)
        cfg = TrainConfig(epochs=self.o.epochs, seed=self.o.seed, progress=False)
        result = train_predictor(train_df, cfg, run_dir, valid_df=valid_df)
        registry = Registry(self.home / "artifacts")
        version = publish_predictor(registry, run_dir, metrics=result.metrics(), data_window=result.data_window,
                                    config=cfg.to_dict())
        registry.promote(MODEL_NAME, version.version, reason=f"bench.scale: trained on a {users.len()}-user sample")
        return sample.height

    def execute_assets(self, names: list[str]) -> None:
        import dagster as dg

        job = dg.define_asset_job("scale_subset", selection=dg.AssetSelection.assets(*names))
        defs = dg.Definitions.merge(self.defs, dg.Definitions(jobs=[job]))
        result = defs.resolve_job_def("scale_subset").execute_in_process(
            run_config=QUIET, instance=self.instance, raise_on_error=False
        )
        if not result.success:
            raise RuntimeError(f"{names} failed: {[e.message for e in result.all_events if e.is_failure][:3]}")

    # ------------------------------------------------------------------ references for scoring and allocation
    def reference_scoring(self, day: date) -> int:
        """A NumPy dot-product scorer of the same features: read the day's candidates and users, expand them
        to the same actions, score with one matrix product and a sigmoid, write the scores back."""
        from ml.delivery.planner import PlanConfig, expand_actions
        from orchestration.defs.scoring import ScoringSettings

        batch_users = ScoringSettings().batch_users  # the same batches of users as promo_scores

        con = duckdb.connect(str(self.home / "warehouse.duckdb"))
        rows, w = 0, None
        try:
            users = con.sql("select user_id, timezone, consent_push, consent_sms, consent_email from marts.dim_users").pl()
            ids = con.sql(
                f"select distinct user_id from marts.fct_promo_candidates where as_of_date = DATE '{day}' order by 1"
            ).pl()["user_id"]
            con.execute("create or replace temp table reference_scores (user_id varchar, product_id varchar, "
                        "offer_id varchar, channel varchar, send_hour integer, p_click float, p_convert_send float, "
                        "p_convert_none float)")
            for start in range(0, ids.len(), batch_users):
                batch = ids.slice(start, batch_users)
                candidates = con.sql(
                    "select * from marts.fct_promo_candidates where as_of_date = ? and user_id between ? and ?",
                    params=[day, batch[0], batch[-1]],
                ).pl()
                actions = expand_actions(candidates, users.filter(pl.col("user_id").is_in(batch.implode())), day, PlanConfig())
                numeric = [c for c, t in actions.schema.items() if t.is_numeric()]
                x = actions.select(pl.col(numeric).cast(pl.Float32).fill_null(0.0)).to_numpy()
                x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
                if w is None:
                    w = np.random.default_rng(self.o.seed).normal(0, 0.1, size=(x.shape[1], 3)).astype(np.float32)
                p = 1.0 / (1.0 + np.exp(-(x @ w)))
                out = actions.select("user_id", "product_id", "offer_id", "channel", "send_hour").with_columns(
                    pl.Series("p_click", p[:, 0]), pl.Series("p_convert_send", p[:, 1]),
                    pl.Series("p_convert_none", p[:, 2]),
                )
                con.register("_out", out)
                con.execute("insert into reference_scores select * from _out")
                con.unregister("_out")
                rows += out.height
            return rows
        finally:
            con.close()

    def reference_allocation(self, day: date) -> int:
        """One vectorized argmax: every user's best action by expected margin, then the best users until the
        budget is spent (no quotas, caps, holdout or exploration)."""
        con = duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True)
        try:
            scored = con.sql(
                f"select user_id, expected_margin, expected_cost from delivery.scores where decision_date = DATE '{day}'"
            ).pl()
        finally:
            con.close()
        user = scored["user_id"].cast(pl.Categorical).to_physical().to_numpy()
        value = scored["expected_margin"].fill_null(-np.inf).to_numpy()
        cost = scored["expected_cost"].fill_null(0.0).to_numpy()
        order = np.lexsort((-value, user))  # by user, best action first
        best = order[np.r_[True, user[order][1:] != user[order][:-1]]] if len(order) else order
        best = best[value[best] > 0]
        best = best[np.argsort(-value[best])]
        chosen = best[np.cumsum(cost[best]) <= self.plan_config()["budget"]]
        print(f"    argmax plan: {len(chosen):,} sends, expected margin {value[chosen].sum():,.1f}")
        return scored.height

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        from orchestration.definitions import build_definitions
        from orchestration.instance import get_instance

        self.home.mkdir(parents=True, exist_ok=True)
        os.environ["PROMO_HOME"] = str(self.home)
        os.environ["PROMO_START_DATE"] = str(self.start - timedelta(days=1))
        os.environ.pop("PROMO_WAREHOUSE", None)
        events = self.home / "landing" / "events"
        if self.o.resume:
            self.instance = get_instance(self.home / "dagster")
            self.defs = build_definitions()
            n_events = self.query("select count(*) from raw.events")
            self.measure("reference: one hand-written SQL, user features", "reference",
                         lambda: (self.reference_features(), n_events))
            return self.daily(events)
        self.measure(f"simulate {self.o.users:,} users x {self.o.days} days", "setup", self.simulate)
        self.reset_platform()
        self.instance = get_instance(self.home / "dagster")
        self.defs = build_definitions()
        last = self.explore_day - timedelta(days=1)
        first = self.explore_day - timedelta(days=self.o.load_days)
        history_files = [str(events / f"date={first + timedelta(days=k)}" / "*.parquet") for k in range(self.o.load_days)]
        self.measure("ingest users, products, offers", "setup",
                     lambda: self.loaded(self.execute("ingest_catalog_job")))
        self.measure(f"ingest events, {self.o.load_days} days (ingest_events_job)", "setup",
                     lambda: self.loaded(self.execute("ingest_events_job", partition_range=(str(first), str(last)))),
                     reference="reference: DuckDB read_parquet insert, all days")
        self.measure("reference: DuckDB read_parquet insert, all days", "reference", self.reference_ingest,
                     history_files)
        n_events = self.query("select count(*) from raw.events")
        self.measure("dbt build, all features (features_job)", "setup",
                     lambda: (self.execute("features_job"), n_events),
                     reference="reference: one hand-written SQL, user features")
        self.measure("reference: one hand-written SQL, user features", "reference",
                     lambda: (self.reference_features(), n_events))
        self.daily(events)

    def daily(self, events: Path) -> None:
        """The exploration day, the quiet days, the training and the measured daily cycle."""
        print(f"  exploration day {self.explore_day} (no model yet: uniform exploration)")
        self.scoring_job(self.explore_day, "explore")
        self.measure(f"simulated customers respond, {self.explore_day} .. {self.last_quiet}", "explore", self.respond,
                     self.explore_day, self.last_quiet)
        before = (str(self.explore_day), str(self.last_quiet - timedelta(days=1)))
        self.measure(f"ingest events and feedback {before[0]} .. {before[1]}", "explore",
                     lambda: self.loaded(self.execute("ingest_events_job", partition_range=before))
                     + self.loaded(self.execute("ingest_feedback_job", partition_range=before)))

        day = self.last_quiet
        print(f"  the daily cycle: ingest {day}, features, then plan {self.cycle_day}")
        self.measure(f"ingest events {day} (ingest_events_job)", "cycle",
                     lambda: self.loaded(self.execute("ingest_events_job", partition_key=str(day))),
                     reference="reference: DuckDB read_parquet insert, one day")
        self.measure("reference: DuckDB read_parquet insert, one day", "reference", self.reference_ingest,
                     [str(events / f"date={day}" / "*.parquet")])
        self.measure(f"ingest feedback {day} (ingest_feedback_job)", "cycle",
                     lambda: self.loaded(self.execute("ingest_feedback_job", partition_key=str(day))))
        n_events = self.query("select count(*) from raw.events")
        self.measure("dbt build, incremental (features_job)", "cycle", lambda: (self.execute("features_job"), n_events),
                     reference="reference: one hand-written SQL, user features")
        self.measure(f"train the effect predictor on {self.o.sample_users:,} users ({self.o.epochs} epochs)", "setup",
                     self.train_on_sample)
        self.scoring_job(self.cycle_day, "cycle")
        self.measure("reference: NumPy dot-product scorer", "reference", self.reference_scoring, self.cycle_day)
        self.measure("reference: one vectorized argmax", "reference", self.reference_allocation, self.cycle_day)
        for step in self.steps:
            if step.name.endswith("promo_scores") and step.phase == "cycle":
                step.reference = "reference: NumPy dot-product scorer"
            if step.name.endswith("promo_plan") and step.phase == "cycle":
                step.reference = "reference: one vectorized argmax"


def table(steps: list[Step]) -> str:
    by_name = {s.name: s for s in steps}
    lines = [
        "| step | phase | wall s | rows | rows/s | peak RSS GiB | reference s | reference rows/s | ref. peak GiB | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        ref = by_name.get(s.reference or "")
        ref_cells = (
            f"{ref.seconds:.1f} | {ref.rows_per_s:,.0f} | {ref.peak_gib:.2f} | {s.seconds / ref.seconds:.2f}x"
            if ref and ref.seconds > 0 else " |  |  | "
        )
        lines.append(
            f"| {s.name} | {s.phase} | {s.seconds:.1f} | {s.rows:,} | {s.rows_per_s:,.0f} | {s.peak_gib:.2f} | {ref_cells} |"
        )
    return "\n".join(lines)


def summarize(run: ScaleRun, sampler: MemorySampler, wall: float) -> int:
    steps = run.steps
    cycle_s = sum(s.seconds for s in steps if s.phase == "cycle")
    cycle_peak = max((s.peak_gib for s in steps if s.phase == "cycle"), default=0.0)
    peak = sampler.overall_peak() / GIB
    by_name = {s.name: s for s in steps}
    ratios = {
        s.name: round(s.seconds / by_name[s.reference].seconds, 2)
        for s in steps if s.reference in by_name and by_name[s.reference].seconds > 0
    }
    print("\n" + table(steps))
    print(f"\ndaily cycle: {cycle_s / 60:.1f} min (target <= {CYCLE_TARGET_MINUTES:g}); peak RSS: cycle "
          f"{cycle_peak:.2f} GiB, whole run {peak:.2f} GiB (target <= {MEMORY_TARGET_GIB:g}); ratios: {ratios}; "
          f"whole run {wall / 60:.1f} min")
    suffix = "" if run.o.users == FULL_USERS else f"_{run.o.users // 1000}k"
    size = {"users": run.o.users, "products": run.o.products, "days": run.o.days, "load_days": run.o.load_days,
            "events": by_name[steps[0].name].rows, "sample_users": run.o.sample_users, "epochs": run.o.epochs}
    slowest_ref = max(ratios.values(), default=0.0)
    cycle_ref = sum(by_name[s.reference].seconds for s in steps if s.phase == "cycle" and s.reference in by_name)
    write_result(
        f"scale_daily_cycle_minutes{suffix}", round(cycle_s / 60, 2), "minutes",
        reference=round(cycle_ref / 60, 2), ratio=round(cycle_s / cycle_ref, 2) if cycle_ref else None,
        target=f"<= {CYCLE_TARGET_MINUTES:g} min and every step <= {RATIO_TARGET:g}x its reference",
        passed=cycle_s / 60 <= CYCLE_TARGET_MINUTES and slowest_ref <= RATIO_TARGET,
        extra={**size, "step_ratios": ratios, "reference_is": "sum of the cycle's references (ingest, SQL features, "
               "NumPy scorer, argmax)"},
    )
    write_result(
        f"scale_peak_memory_gib{suffix}", round(peak, 2), "GiB", reference=round(cycle_peak, 2), ratio=None,
        target=f"<= {MEMORY_TARGET_GIB:g} GiB (RSS of the process tree, whole run; reference = the cycle's peak)",
        passed=peak <= MEMORY_TARGET_GIB, extra=size,
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"scale_table{suffix}.json").write_text(json.dumps(
        {**size, "cycle_minutes": round(cycle_s / 60, 2), "peak_gib": round(peak, 2), "cycle_peak_gib": round(cycle_peak, 2),
         "wall_minutes": round(wall / 60, 2),
         "steps": [{**asdict(s), "rows_per_s": round(s.rows_per_s, 1)} for s in steps]}, indent=2) + "\n")
    return 0


def parse_args(argv: list[str] | None) -> ScaleOptions:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=FULL_USERS)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90, help="days of history before the exploration day")
    parser.add_argument("--load-days", type=int, default=None,
                        help="ingest only the latest N days of the simulated history (default: all of it)")
    parser.add_argument("--sample-users", type=int, default=50_000, help="users whose examples train the predictor")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--home", type=Path, default=None, help="PROMO_HOME of the run (default /tmp/scale_home_<N>)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget-per-user", type=float, default=0.06, help="daily budget per user (demo: 300/5000)")
    parser.add_argument("--reuse", action="store_true", help="reuse a simulated shop in --home with the same config")
    parser.add_argument("--keep", action="store_true", help="keep --home afterwards (default: delete it)")
    parser.add_argument("--duckdb-memory-limit", default=None,
                        help="PROMO_DUCKDB_MEMORY_LIMIT for every DuckDB session of the run, dbt's and Dagster's "
                        "(default: the platform's, 50%% of RAM)")
    parser.add_argument("--resume", action="store_true",
                        help="--home already holds the ingested history and its features (an earlier run that "
                        "stopped later): start at the exploration day")
    a = parser.parse_args(argv)
    if a.duckdb_memory_limit:
        os.environ["PROMO_DUCKDB_MEMORY_LIMIT"] = a.duckdb_memory_limit
    for name in ("users", "products", "days", "sample_users", "epochs"):
        if getattr(a, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(a, name)}")
    load_days = a.days if a.load_days is None else a.load_days
    if not 1 <= load_days <= a.days:
        parser.error(f"--load-days must be between 1 and --days ({a.days}), got {load_days}")
    home = (a.home or Path(f"/tmp/scale_home_{a.users}")).resolve()
    return ScaleOptions(a.users, a.products, a.days, load_days, a.sample_users, a.epochs, home, a.seed, a.budget_per_user,
                        a.reuse, a.keep or a.resume, a.resume)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    print(f"scale run in {options.home}: {options.users:,} users, {options.products:,} products, {options.days} days")
    began = time.perf_counter()
    with MemorySampler() as sampler:
        run = ScaleRun(options, sampler)
        run.run()
        code = summarize(run, sampler, time.perf_counter() - began)
    if not options.keep:
        shutil.rmtree(options.home, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
