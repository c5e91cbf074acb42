"""The Dagster code location over a small simulated shop: the graph is one connected lineage, partitions
are idempotent, and training examples are point-in-time."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.demo import StepTimer, run_job
from orchestration.instance import get_instance
from orchestration.settings import PromoPaths
from tests.conftest import SMALL_SHOP


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from orchestration.definitions import build_definitions

    return build_definitions()


def _sql(home: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_definitions_load_as_one_connected_graph(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw/users", "raw/events", "raw/feedback", "marts/fct_training_examples", "promo_candidates"} <= keys
    # Every dbt source resolves to an ingestion asset: lineage runs from landing tables to the marts.
    upstream = graph.get(dg.AssetKey(["staging", "stg_events"])).parent_keys
    assert upstream == {dg.AssetKey(["raw", "events"])}
    assert dg.AssetKey(["marts", "fct_user_features"]) in graph.get(dg.AssetKey("promo_candidates")).parent_keys
    checks = {c.name for c in graph.asset_check_keys}
    assert any(name.startswith("unique_") for name in checks)  # dbt tests became asset checks
    # Singular tests too, including those reading two models (attached by their `meta.dagster.ref`):
    # without a check, a failing one would only be logged as an observation.
    singular = {p.stem for p in (Path(__file__).resolve().parent.parent / "dbt_project" / "tests").glob("*.sql")}
    assert singular and singular <= checks, singular - checks
    candidate_checks = {c.name for c in graph.asset_check_keys if c.asset_key == dg.AssetKey("promo_candidates")}
    assert {"assert_candidate_offers_cover_their_product", "assert_candidates_only_for_contactable_users"} <= candidate_checks
    for key in ("raw/events", "marts/fct_user_features", "promo_candidates"):
        assert defs.resolve_assets_def(dg.AssetKey.from_user_string(key)).op.pool == "duckdb", key
    assert defs.resolve_schedule_def("daily_scoring_schedule").cron_schedule == "0 6 * * *"


def test_rematerializing_an_event_partition_keeps_row_counts(pipeline_home: Path, defs: dg.Definitions) -> None:
    paths = PromoPaths(pipeline_home)
    instance = get_instance(paths.dagster_home)
    day = str(date.today() - timedelta(days=2))
    before = _sql(pipeline_home, "select count(*), count(distinct event_id) from raw.events")[0]
    run_job(defs, instance, "ingest_events_job", partition_key=day)
    after = _sql(pipeline_home, "select count(*), count(distinct event_id) from raw.events")[0]
    assert before == after and after[0] == after[1]


def test_training_examples_never_see_the_decision_day_or_later(pipeline_home: Path, defs: dg.Definitions) -> None:
    """Plant a decision and events around it; the training example's features see only the past."""
    paths = PromoPaths(pipeline_home)
    instance = get_instance(paths.dagster_home)
    start = date.today() - timedelta(days=SMALL_SHOP["history_days"])
    decision_day = start + timedelta(days=2)
    midnight = datetime(decision_day.year, decision_day.month, decision_day.day)
    user, product, offer = "u0000001", "p000001", "o001"
    planted = {
        decision_day - timedelta(days=1): [("pit-before", "view", midnight - timedelta(minutes=1))],
        decision_day: [
            ("pit-at-cut", "view", midnight),  # the first instant of the decision day
            ("pit-after-decision", "cart", midnight + timedelta(hours=7)),
            ("pit-bought", "purchase", midnight + timedelta(hours=11)),  # after send_at: the label
        ],
    }
    header = "event_id,user_id,event_type,event_at,product_id,session_id,quantity,price,platform\n"
    for day, rows in planted.items():
        lines = [f"{eid},{user},{etype},{at.isoformat()},{product},s-pit,1,10.0,app\n" for eid, etype, at in rows]
        (paths.landing_partition("events", day) / "planted.csv").write_text(header + "".join(lines))
        run_job(defs, instance, "ingest_events_job", partition_key=str(day))
    con = duckdb.connect(str(paths.warehouse))
    con.execute(
        "insert into delivery.decisions (decision_id, decision_date, decided_at, user_id, action, is_holdout, "
        "is_exploration, offer_id, product_id, channel, send_at, send_hour, propensity, policy_version, "
        "model_version, candidate_count, reason) values (?, ?, ?, ?, 'send', false, true, ?, ?, 'push', ?, 18, "
        "0.25, 'test', 'none', 4, 'planted')",
        ["pit-decision", decision_day, midnight + timedelta(hours=6), user, offer, product, midnight + timedelta(hours=10)],
    )
    con.close()
    run_job(defs, instance, "features_job")
    row = _sql(
        pipeline_home,
        "select seq_product_ids, seq_event_types, seq_age_hours, u_product_views_7d, u_product_carts_30d, "
        "u_product_purchases_90d, label_convert from marts.fct_training_examples where decision_id = 'pit-decision'",
    )
    assert row, "the planted decision has a training example"
    seq_products, seq_types, seq_age, views_7d, carts_30d, purchases_90d, label = row[0]
    assert seq_products[0] == product and seq_types[0] == "view"  # the event one minute before the day
    assert abs(seq_age[0] - 1 / 60) < 1e-6
    assert min(seq_age) > 0  # nothing at or after the cut
    assert views_7d >= 1 and carts_30d == 0 and purchases_90d == 0  # the cart and purchase are in the future
    assert label is True  # ... and the purchase after send_at is the outcome
    # The user's funnel features count only carts (and views, purchases) of the 90 days before the cut.
    funnel = _sql(
        pipeline_home,
        "select u_carts_90d, u_carts_per_view_90d, u_purchases_per_cart_90d from marts.fct_training_examples "
        "where decision_id = 'pit-decision'",
    )[0]
    past = _sql(
        pipeline_home,
        "select count(*) filter (where event_type in ('cart', 'favorite')), count(*) filter (where event_type = 'view'), "
        "count(*) filter (where event_type = 'purchase') from raw.events "
        f"where user_id = '{user}' and event_at < TIMESTAMP '{midnight}' and event_at >= TIMESTAMP '{midnight}' - interval 90 day",
    )[0]
    assert funnel == pytest.approx((past[0], (past[0] + 1) / (past[1] + 10), (past[2] + 1) / (past[0] + 2)))


def test_demo_steps_keep_dbt_output_in_the_log(
    pipeline_home: Path, defs: dg.Definitions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dagster-dbt echoes every dbt node line to stdout; the demo's terminal keeps one line per step."""
    instance = get_instance(PromoPaths(pipeline_home).dagster_home)
    timer = StepTimer(log=tmp_path / "logs" / "demo.log")
    timer.job("features", defs, instance, "features_job")
    terminal = capsys.readouterr().out
    assert terminal.splitlines()[0] == "  … features" and terminal.splitlines()[1].startswith("  ✓ features (")
    assert "fct_user_features" not in terminal
    log = timer.log.read_text()
    assert log.startswith("===== features\n") and "fct_user_features" in log and "Completed successfully" in log
    with pytest.raises(Exception, match="no_such_job"):
        timer.job("broken", defs, instance, "no_such_job")
    assert f"  ✗ broken failed; its output is in {timer.log}" in capsys.readouterr().err


def test_a_fixed_start_must_end_before_today(tmp_path: Path) -> None:
    """Benchmarks fix the shop's first day; one whose days would reach today or later (no partition exists
    for them yet) is refused before anything is simulated."""
    from orchestration.demo import simulate_shop

    paths = PromoPaths(tmp_path / "home")
    start = date.today() - timedelta(days=40)
    with pytest.raises(ValueError, match=rf"start {start}: 30 history and 11 later days would end on {date.today()}, not before today"):
        simulate_shop(paths, 10, 5, 30, 1, start, 11)
    assert not paths.home.exists()
