"""The daily scoring job end to end on a small simulated shop: a backfill of three past days produces
exports that keep every rule."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl


def test_backfill_of_three_days_exports_within_the_rules(
    pipeline_home: Path, tmp_path: Path, monkeypatch
) -> None:
    from orchestration.definitions import build_definitions
    from orchestration.demo import run_job
    from orchestration.instance import get_instance
    from orchestration.settings import PromoPaths

    home = tmp_path / "home"  # a copy: the session's shop stays as the other tests expect it
    shutil.copytree(pipeline_home, home)
    monkeypatch.setenv("PROMO_HOME", str(home))
    paths = PromoPaths(home)
    defs = build_definitions()
    instance = get_instance(paths.dagster_home)
    last_history_day = date.today() - timedelta(days=1)
    days = [last_history_day - timedelta(days=k) for k in (2, 1, 0)]
    for day in days:
        run_job(defs, instance, "daily_scoring_job", str(day))  # raises unless every blocking check passed

    def read(sql: str) -> pl.DataFrame:
        con = duckdb.connect(str(paths.warehouse), read_only=True)
        try:
            return con.sql(sql).pl()
        finally:
            con.close()

    decisions = read("select * from delivery.decisions order by decision_id").filter(
        pl.col("decision_date").is_in(days)  # the copied shop may hold other days' decisions
    )
    assert sorted(decisions["decision_date"].unique().to_list()) == days
    for day in days:
        export = pl.read_parquet(paths.exports / f"date={day}" / "delivery.parquet")
        sends = decisions.filter((pl.col("decision_date") == day) & (pl.col("action") == "send"))
        assert export.height == sends.filter(~pl.col("is_holdout")).height > 0
        assert export["propensity"].is_between(0.0, 1.0, closed="right").all()
        assert export["model_version"].null_count() == 0
        assert export["message"].str.len_chars().min() > 0
        held_out = set(decisions.filter(pl.col("is_holdout"))["user_id"].to_list())
        assert held_out and not held_out & set(export["user_id"].to_list())
        assert sends["expected_cost"].sum() <= 300.0 + 1e-6  # the default day budget
