"""`promoloop demo`: a simulated shop run through the real Dagster jobs, in-process.

The story: simulate a shop's history into `$PROMO_HOME/landing`, ingest it, build features, train, then for
each closed-loop day let the 06:00 job plan the day, let the simulated customers respond, let the sensors
pick up the new files, and let the retraining sensor decide. Runs execute in-process (about 2 s per step
cheaper than the multiprocess executor on 2 cores); deployments keep the multiprocess executor and pools.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from orchestration.closed_loop import (
    GateRecord,
    Scorecard,
    compare_policies_on_day,
    true_plan_values,
    write_report,
)
from orchestration.defs.scoring import PlanSettings
from orchestration.instance import get_instance
from orchestration.settings import PromoPaths
from simulator.policies import POLICIES

# The demo prints its own progress; Dagster's step logs stay in the instance (and the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class DemoOptions:
    n_users: int = 5000
    n_products: int = 500
    history_days: int = 30
    loop_days: int = 14
    seed: int = 7
    fresh: bool = True
    # The first history day; None: history and loop end yesterday (the demo). Benchmarks fix it, because the
    # calendar changes the shop (weekdays, the users' UTC offsets across daylight-saving changes).
    start: date | None = None


@dataclass
class StepTimer:
    """Prints and times each step. With `log`, what a Dagster job writes to stdout (dbt's node-by-node lines,
    which dagster-dbt echoes there for the run's compute logs) is appended to that file instead, so the
    terminal keeps one line per step; a failed step names the file."""

    log: Path | None = None
    rows: list[tuple[str, float]] = field(default_factory=list)

    def run(self, label: str, fn, *args, **kwargs) -> Any:
        print(f"  … {label}", flush=True)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        elapsed = time.perf_counter() - start
        self.rows.append((label, elapsed))
        print(f"  ✓ {label} ({elapsed:.1f} s)", flush=True)
        return result

    def job(self, label: str, defs: dg.Definitions, instance: dg.DagsterInstance, name: str, **kwargs) -> Any:
        """`run_job(defs, instance, name, **kwargs)` as a step, its stdout to the log (when there is one)."""
        return self.run(label, self._logged, label, run_job, defs, instance, name, **kwargs)

    def _logged(self, label: str, fn, *args, **kwargs) -> Any:
        if self.log is None:
            return fn(*args, **kwargs)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a", encoding="utf-8") as out:
            out.write(f"===== {label}\n")
            try:
                with contextlib.redirect_stdout(out):
                    return fn(*args, **kwargs)
            except Exception:
                print(f"  ✗ {label} failed; its output is in {self.log}", file=sys.stderr, flush=True)
                raise


def history_start(history_days: int, loop_days: int) -> date:
    """History and the loop days end yesterday, so the partitions (which exist up to today) cover them."""
    return date.today() - timedelta(days=history_days + loop_days)


def simulate_shop(
    paths: PromoPaths,
    n_users: int,
    n_products: int,
    history_days: int,
    seed: int,
    start: date | None = None,
    loop_days: int = 0,
):
    from simulator import Shop, ShopConfig

    if start is not None and start + timedelta(days=history_days + loop_days) > date.today():
        # The jobs' daily partitions exist up to yesterday's: days after that cannot be loaded or scored.
        end = start + timedelta(days=history_days + loop_days - 1)
        raise ValueError(f"start {start}: {history_days} history and {loop_days} later days would end on {end}, "
                         f"not before today ({date.today()}); pick an earlier start")
    cfg = ShopConfig(
        n_users=n_users,
        n_products=n_products,
        history_days=history_days,
        start=start or history_start(history_days, loop_days),
        seed=seed,
    )
    shop = Shop.create(cfg, paths.home)

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 5) == 0:
            print(f"    simulated day {done}/{total}", flush=True)

    shop.write_history(progress=progress)
    return shop


def run_job(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    name: str,
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    tags: dict[str, str] = {}
    if partition_range:
        tags = {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
    result = defs.resolve_job_def(name).execute_in_process(
        run_config=QUIET,
        instance=instance,
        partition_key=partition_key,
        tags=tags,
        raise_on_error=False,
    )
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_failure]
        raise RuntimeError(f"{name} {partition_key or partition_range or ''} failed: {failures[:3]}")
    return result


def run_sensor(
    defs: dg.Definitions, instance: dg.DagsterInstance, name: str, cursors: dict[str, str | None]
) -> list[dg.ExecuteInProcessResult]:
    """Tick a sensor once, as the daemon would, and execute the runs it requests in-process."""
    sensor = defs.resolve_sensor_def(name)
    context = dg.build_sensor_context(instance=instance, cursor=cursors.get(name), definitions=defs)
    result = sensor.evaluate_tick(context)
    cursors[name] = result.cursor
    if not result.run_requests and result.skip_message:
        print(f"    {name}: {result.skip_message}")
    return [
        run_job(defs, instance, request.job_name or sensor.job_name, partition_key=request.partition_key)
        for request in result.run_requests or []
    ]


def gate_records(result: dg.ExecuteInProcessResult, shop, day: date) -> list[GateRecord]:
    """The retraining decisions of a run, with the true values of the plans the gate compared."""
    import polars as pl

    records = []
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if "promoted" not in metadata:
            continue
        estimates = {k.removeprefix("ope_"): v.value for k, v in metadata.items() if k.startswith("ope_")}
        record = GateRecord(
            day=day,
            version=metadata["version"].value,
            action="promote" if metadata["promoted"].value else "keep",
            reason=metadata["decision"].value,
            estimates=estimates,
        )
        plans_path = metadata["gate_plans"].value
        if plans_path and os.path.exists(plans_path):
            truth = true_plan_values(shop, pl.read_parquet(plans_path), int(metadata["gate_rows"].value))
            record.true_challenger = truth.get("challenger")
            record.true_champion = truth.get("champion")
        records.append(record)
    return records


def warehouse_summary(paths: PromoPaths) -> list[tuple[str, int]]:
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('information_schema', 'pg_catalog') order by 1, 2"
        ).fetchall()
        return [(f"{s}.{t}", con.execute(f'select count(*) from "{s}"."{t}"').fetchall()[0][0]) for s, t in tables]
    finally:
        con.close()


def quarantine_summary(paths: PromoPaths) -> list[tuple[str, str, int]]:
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        rows = []
        for (table,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'quarantine' order by 1"
        ).fetchall():
            rows += [
                (table, reason, n)
                for reason, n in con.execute(
                    f"select reason, count(*) from quarantine.{table} group by 1 order by 2 desc"
                ).fetchall()
            ]
        return rows
    finally:
        con.close()


def load_landing(paths: PromoPaths, first: date, last: date, timer: StepTimer | None = None) -> dg.Definitions:
    """Ingest what is in `landing/` (catalogue, then the events of [first, last] in one run) and build
    the features: the initial backfill of a new shop, simulated or real."""

    from orchestration.definitions import build_definitions

    timer = timer or StepTimer(log=paths.home / "logs" / "load.log")
    instance = get_instance(paths.dagster_home)
    defs = build_definitions()
    timer.job("ingest users, products, offers", defs, instance, "ingest_catalog_job")
    timer.job(f"ingest events {first} .. {last}", defs, instance, "ingest_events_job", partition_range=(str(first), str(last)))
    timer.job("dbt build (features, tests as checks)", defs, instance, "features_job")
    timer.job("train the copy generator", defs, instance, "copywriting_job")
    quarantined = quarantine_summary(paths)
    print("  quarantine: " + (", ".join(f"{t}.{r}={n:,}" for t, r, n in quarantined) or "nothing rejected"))
    return defs


def run_demo(paths: PromoPaths, options: DemoOptions) -> tuple[Scorecard, float]:
    """Run the whole story; returns the closed-loop scorecard and the wall time in seconds."""
    started = time.perf_counter()
    timer = StepTimer(log=paths.home / "logs" / "demo.log")
    if options.fresh and paths.home.exists():
        shutil.rmtree(paths.home)
    paths.home.mkdir(parents=True, exist_ok=True)
    print(f"promoloop demo in {paths.home} (dbt's output: {timer.log})")
    instance = get_instance(paths.dagster_home)

    shop = timer.run(
        f"simulate {options.n_users} users, {options.n_products} products, {options.history_days} days",
        simulate_shop,
        paths,
        options.n_users,
        options.n_products,
        options.history_days,
        options.seed,
        options.start,
        options.loop_days,
    )
    first = shop.config.start
    last = first + timedelta(days=options.history_days - 1)
    defs = load_landing(paths, first, last, timer)
    # From here on the sensors own the landing folders: start their cursors past what is loaded.
    cursors: dict[str, str | None] = {}
    for name in ("events_landing_sensor", "feedback_landing_sensor"):
        run_sensor_cursor_only(defs, instance, name, cursors)
    from simulator import Shop

    card = Scorecard()
    plan = PlanSettings()
    for offset in range(options.loop_days):
        day = last + timedelta(days=offset + 1)
        timer.job(f"{day}: daily scoring job", defs, instance, "daily_scoring_job", partition_key=str(day))
        shop = Shop.load(paths.home)
        row = timer.run(
            f"{day}: value today's plan and the reference policies with the ground truth",
            compare_policies_on_day, paths, shop, day, plan.budget, {"sms": plan.sms_quota}, options.seed + offset,
        )
        card.days.append(row)
        print("    true incremental margin: " + ", ".join(f"{p} {row.get(f'{p}_margin', 0):,.1f}" for p in POLICIES))
        outcome = timer.run(f"{day}: customers respond", shop.advance_day, day, read_export(paths, day))
        print(f"    {outcome}")
        timer.run(f"{day}: sensors load events and feedback", tick_landing_sensors, defs, instance, cursors)
        timer.job(f"{day}: features", defs, instance, "features_job")
        results = timer.run(f"{day}: retrain sensor", run_sensor, defs, instance, "retrain_sensor", cursors)
        for result in results:
            card.gates.extend(gate_records(result, shop, day))
            for g in card.gates[-1:]:
                print(f"    retraining: {g.action} {g.version}: {g.reason}")

    report = write_report(paths, card, time.perf_counter() - started)
    week = card.last_week()
    print(f"\nclosed-loop report: {report}")
    if week.get("oracle", 0) > 0:
        print(
            f"last {min(7, len(card.days))} days, true incremental margin: platform {week['platform']:,.1f} = "
            f"{week['platform'] / week['oracle']:.1%} of the oracle {week['oracle']:,.1f}; rule {week['rule']:,.1f}, "
            f"random {week['random']:,.1f} ({week['random'] / week['oracle']:.1%})"
        )
    print_sample_messages(paths, last + timedelta(days=options.loop_days))

    print("\nwarehouse tables:")
    for table, rows in warehouse_summary(paths):
        print(f"  {table:<45} {rows:>10,}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s; slowest steps:")
    for label, seconds in sorted(timer.rows, key=lambda r: -r[1])[:8]:
        print(f"  {seconds:7.1f} s  {label}")
    print(f"\nDagster UI: DAGSTER_HOME={paths.dagster_home} dagster dev -w workspace.yaml")
    return card, time.perf_counter() - started


def tick_landing_sensors(defs: dg.Definitions, instance: dg.DagsterInstance, cursors: dict[str, str | None]) -> int:
    return sum(len(run_sensor(defs, instance, name, cursors)) for name in ("events_landing_sensor", "feedback_landing_sensor"))


def read_export(paths: PromoPaths, day: date):
    """The day's delivery file as the channel systems (here: the simulated customers) receive it."""
    import polars as pl

    path = paths.exports / f"date={day}" / "delivery.parquet"
    return pl.read_parquet(path) if path.exists() else None


def run_sensor_cursor_only(
    defs: dg.Definitions, instance: dg.DagsterInstance, name: str, cursors: dict[str, str | None]
) -> None:
    """Advance a landing sensor's cursor past files the initial load already ingested."""
    sensor = defs.resolve_sensor_def(name)
    result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=None, definitions=defs))
    cursors[name] = result.cursor




def print_sample_messages(paths: PromoPaths, day: date, per_group: int = 2) -> None:
    """A few of the day's messages per channel and language, as the customers received them."""
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        rows = con.sql(
            f"""select channel, locale, message_source, message from delivery.messages
                where decision_date = DATE '{day}'
                qualify row_number() over (partition by channel, locale order by decision_id) <= {per_group}
                order by channel, locale"""
        ).fetchall()
    finally:
        con.close()
    print(f"\nsample messages of {day}:")
    for channel, locale, source, message in rows:
        print(f"  [{channel}/{locale}, {source}] {message}")
