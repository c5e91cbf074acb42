"""The daily scoring job end to end on a small simulated shop: a backfill of three past days produces
exports that keep every rule (the blocking SQL checks and the GX suites of the plan and the export pass);
with a trained champion the plan records its certified optimality gap, and re-running a day gives the same
plan."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from orchestration.settings import PromoPaths


@pytest.fixture
def shop(pipeline_home: Path, tmp_path: Path, monkeypatch) -> tuple[PromoPaths, dg.Definitions, dg.DagsterInstance]:
    """A copy of the session's small shop (the other tests expect it unchanged), its definitions and instance."""
    from orchestration.definitions import build_definitions
    from orchestration.instance import get_instance

    home = tmp_path / "home"
    shutil.copytree(pipeline_home, home)
    monkeypatch.setenv("PROMO_HOME", str(home))
    paths = PromoPaths(home)
    return paths, build_definitions(), get_instance(paths.dagster_home)


def test_backfill_of_three_days_exports_within_the_rules(shop) -> None:
    from orchestration.demo import run_job

    paths, defs, instance = shop
    last_history_day = date.today() - timedelta(days=1)
    days = [last_history_day - timedelta(days=k) for k in (2, 1, 0)]
    checks_seen: set[str] = set()
    for day in days:
        result = run_job(defs, instance, "daily_scoring_job", str(day))  # raises unless every blocking check passed
        evaluations = result.get_asset_check_evaluations()
        failed = [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed and e.check_name != "gx_drift"]
        assert not failed, failed
        checks_seen |= {f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations}
    assert {"promo_plan:plan_respects_the_rules", "promo_plan:gx_contract", "promo_plan:serving_model_is_calibrated",
            "delivery_export:export_respects_the_rules", "delivery_export:gx_contract"} <= checks_seen

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

    # The export check catches planted faults: a held-out user exported, a message that failed compliance,
    # a user over the cap, a CSV file that went missing.
    from orchestration.defs.scoring import export_violations

    day = days[-1]
    folder = paths.exports / f"date={day}"
    held_out_user = decisions.filter(pl.col("is_holdout") & (pl.col("decision_date") == day))["decision_id"][0]
    con = duckdb.connect(str(paths.warehouse))
    try:
        assert not any(export_violations(con, folder, day, 2).values())
        con.execute(
            """insert into delivery.exports by name
               select decision_id as delivery_id, decision_date as export_date, user_id, channel, send_at, offer_id,
                      product_id, 'hello' as message, 1.0 as propensity, policy_version, model_version, expected_cost
               from delivery.decisions where decision_id = ?""",
            [held_out_user],
        )
        one_message = con.execute("select delivery_id from delivery.exports where export_date = ? and delivery_id <> ? limit 1",
                                  [day, held_out_user]).fetchone()[0]
        con.execute("update delivery.messages set compliance_passed = false where decision_id = ?", [one_message])
        con.execute("insert into delivery.exports select * replace (export_date - 1 as export_date, delivery_id || 'x' as delivery_id) "
                    "from delivery.exports where delivery_id = ?", [one_message])
        con.execute("insert into delivery.exports select * replace (export_date - 2 as export_date, delivery_id || 'y' as delivery_id) "
                    "from delivery.exports where delivery_id = ?", [one_message])
        (folder / "delivery.csv").unlink()
        found = export_violations(con, folder, day, 2)
    finally:
        con.close()
    assert found["holdout_users_exported"] == 1 and found["messages_not_compliant"] == 2  # the new row has none
    assert found["users_over_cap_in_exports"] == 1 and found["export_files_missing"] == 1
    assert found["export_files_not_matching_table"] == 1  # the parquet file lacks the planted row


def test_a_champion_scored_day_records_its_gap_and_reruns_to_the_same_plan(shop, tmp_path: Path) -> None:
    from ml.predictor.predict import MODEL_NAME, publish_predictor
    from ml.predictor.synthetic import synthetic_examples
    from ml.predictor.train import TrainConfig, train_predictor
    from ml.registry import Registry
    from orchestration.demo import run_job

    paths, defs, instance = shop
    day = date.today() - timedelta(days=1)
    # A cold-start day first: its summary (nulls where no model) must not leave delivery.plans untyped.
    run_job(defs, instance, "daily_scoring_job", str(day - timedelta(days=1)))
    registry = Registry(paths.artifacts)
    trained = train_predictor(
        synthetic_examples(n_rows=1500, n_days=4, seed=1), TrainConfig(epochs=1, progress=False), tmp_path / "model"
    )
    version = publish_predictor(registry, trained.out_dir, metrics={}, data_window=trained.data_window)
    registry.promote(MODEL_NAME, version.version, reason="test champion")

    def plan_of_the_day() -> tuple[pl.DataFrame, dict]:
        run_job(defs, instance, "daily_scoring_job", str(day))
        con = duckdb.connect(str(paths.warehouse), read_only=True)
        try:
            decisions = con.sql(f"select * exclude (decided_at) from delivery.decisions where decision_date = DATE '{day}' order by decision_id").pl()
            summary = con.sql(f"select * from delivery.plans where decision_date = DATE '{day}'").pl()
        finally:
            con.close()
        assert summary.height == 1  # replaced, never appended
        return decisions, summary.row(0, named=True)

    first, summary = plan_of_the_day()
    assert first["model_version"].unique().to_list() == [f"{MODEL_NAME}:{version.version}"]
    assert summary["lp_bound_method"] == "highs_lp" and summary["optimality_gap"] is not None
    assert 0.0 <= summary["optimality_gap"] < 0.05
    assert summary["allocation_objective"] <= summary["lp_bound"] + 1e-9
    assert summary["sends"] == first.filter(pl.col("action") == "send").height
    assert summary["expected_spend"] <= summary["budget"] + 1e-6
    # `promoloop report` shows the same day: spend, and the allocator's share of the budget after the reserve.
    from orchestration.report import daily_report

    daily = daily_report(paths, day)[0].row(0, named=True)
    assert daily["expected_spend"] == pytest.approx(summary["expected_spend"], abs=0.01)
    assert daily["allocator_budget"] == pytest.approx(summary["allocator_budget"], abs=0.01)
    assert 0 < daily["allocator_budget"] < daily["budget"]  # the exploration reserve came off
    assert daily["budget_multiplier"] == pytest.approx(summary["lambda_budget"], abs=1e-3)
    # The champion's first day: none of its sends has an outcome yet, so its costs are its own.
    assert summary["cost_factor"] == 1.0 and daily["cost_factor"] == 1.0
    second, again = plan_of_the_day()
    assert second.equals(first)  # same day, same data, same seed: the same plan
    assert again["optimality_gap"] == summary["optimality_gap"]
