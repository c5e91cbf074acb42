"""`promoloop report`'s serving calibration: predicted against realized conversions of the champion's
decisions, by arm and by offer type, only where the outcome is known and the scores are the deciding model's."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import numpy as np
import polars as pl
import pytest

from orchestration.report import ratio_interval, serving_calibration

DAY = date(2026, 11, 26)
SEND_AT = datetime(2026, 11, 26, 12)


def _warehouse(rows: list[dict]) -> duckdb.DuckDBPyConnection:
    """One decision per row with its score and outcome; keys a row may change: see the defaults."""
    con = duckdb.connect()
    defaults = {
        "decision_date": DAY, "action": "send", "is_holdout": False, "is_exploration": False, "model_version": "m:1",
        "score_version": "m:1", "p_convert_send": 0.1, "p_convert_none": 0.02, "label_convert": False,
        "window_closed": True, "offer_id": "o1",
    }
    frame = pl.DataFrame(
        [{**defaults, **row, "decision_id": f"d{i}", "user_id": f"u{i}"} for i, row in enumerate(rows)]
    ).with_columns(
        pl.lit("p1").alias("product_id"), pl.lit("push").alias("channel"),
        pl.lit(SEND_AT).alias("send_at"),
    )
    keys = "user_id, product_id, offer_id, channel, send_at"
    con.register("frame", frame.to_arrow())
    for schema in ("delivery", "marts"):
        con.execute(f"create schema {schema}")
    con.execute(
        f"create table delivery.decisions as select decision_id, decision_date, {keys}, action, is_holdout,"
        " is_exploration, model_version from frame"
    )
    con.execute(
        f"create table delivery.scores as select decision_date, {keys}, score_version as model_version,"
        " p_convert_send, p_convert_none from frame"
    )
    con.execute("create table marts.fct_delivery_outcomes as select decision_id, label_convert, window_closed from frame")
    return con


def _with_offers(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    con.execute("create schema raw")
    con.execute("create table raw.offers as select * from (values ('o1', 'free_shipping'), ('o2', 'percent_off')) t(offer_id, offer_type)")
    return con


def test_serving_calibration_counts_each_arm_where_the_outcome_is_known() -> None:
    con = _warehouse(
        [
            {"p_convert_send": 0.2, "label_convert": True},  # planned send
            {"p_convert_send": 0.3},  # planned send
            {"is_exploration": True, "p_convert_send": 0.25, "label_convert": True},
            {"action": "none", "p_convert_none": 0.05},
            {"action": "none", "p_convert_none": 0.15, "label_convert": True},
            # Left out: the holdout, a cold-start day, an open window, scores of another model.
            {"is_holdout": True, "action": "none", "label_convert": True},
            {"model_version": "none", "score_version": "none", "label_convert": True},
            {"window_closed": False, "label_convert": True},
            {"score_version": "m:0", "label_convert": True},
        ]
    )
    by_arm = {row["arm"]: row for row in serving_calibration(con).iter_rows(named=True)}
    assert set(by_arm) == {"planned send", "explored send", "nothing"}
    assert by_arm["planned send"]["decisions"] == 2 and by_arm["planned send"]["conversions"] == 1
    assert by_arm["planned send"]["predicted_conversions"] == pytest.approx(0.5)
    assert by_arm["planned send"]["realized_over_predicted"] == pytest.approx(2.0)
    assert by_arm["explored send"]["predicted_conversions"] == pytest.approx(0.25)
    # "nothing" is predicted by the no-send head, not the send head.
    assert by_arm["nothing"]["predicted_conversions"] == pytest.approx(0.2)
    assert by_arm["nothing"]["realized_over_predicted"] == pytest.approx(5.0)
    assert serving_calibration(con, date(2026, 11, 27)).is_empty()


def test_serving_calibration_is_empty_before_there_are_outcomes() -> None:
    con = duckdb.connect()
    con.execute("create schema delivery")
    con.execute("create table delivery.decisions (decision_id varchar)")
    assert serving_calibration(con).is_empty()


def test_daily_report_shows_factor_one_for_days_planned_before_the_spend_correction(tmp_path) -> None:
    from orchestration.report import daily_report
    from orchestration.settings import PromoPaths

    paths = PromoPaths(tmp_path)
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(paths.warehouse))
    for schema in ("delivery", "raw"):
        con.execute(f"create schema {schema}")
    con.execute(
        """create table delivery.decisions as select * from (values
           (DATE '2026-11-26', 'send', false, false, 'push', 'o1', 2.0, 1.0, 'p', 'm:1'),
           (DATE '2026-11-27', 'send', false, false, 'push', 'o1', 1.5, 1.0, 'p', 'm:1'))
           t(decision_date, action, is_holdout, is_exploration, channel, offer_id, expected_cost, expected_margin,
             policy_version, model_version)"""
    )
    con.execute("create table raw.offers as select 'o1' as offer_id, 'percent_off' as offer_type")
    # A warehouse from before the correction: delivery.plans without the column ...
    con.execute(
        """create table delivery.plans as select DATE '2026-11-26' as decision_date, 300.0 as budget,
           150.0 as allocator_budget, 2.0 as lambda_budget, 1.0 as expected_incremental_conversions,
           0.001 as optimality_gap, 'highs_lp' as lp_bound_method"""
    )
    con.close()
    assert daily_report(paths)[0]["cost_factor"].to_list() == [1.0, None]  # 11-27 has no plan row
    # ... then a day planned by this code adds it, and the earlier day's row holds null.
    con = duckdb.connect(str(paths.warehouse))
    con.execute("alter table delivery.plans add column cost_factor DOUBLE")
    con.execute(
        "insert into delivery.plans values (DATE '2026-11-27', 300.0, 160.0, 2.0, 1.0, 0.001, 'highs_lp', 0.85)"
    )
    con.close()
    assert daily_report(paths)[0].sort("day")["cost_factor"].to_list() == [1.0, 0.85]


def test_serving_calibration_by_offer_type_counts_sends_with_an_exact_interval() -> None:
    con = _with_offers(_warehouse(
        [
            {"offer_id": "o1", "p_convert_send": 0.5, "label_convert": True},
            {"offer_id": "o1", "p_convert_send": 0.5, "label_convert": True},
            {"offer_id": "o1", "p_convert_send": 0.5, "label_convert": True},
            {"offer_id": "o1", "p_convert_send": 0.5},  # 3 conversions of 2 predicted
            {"offer_id": "o2", "is_exploration": True, "p_convert_send": 0.4},  # none of 0.4
            {"offer_id": "o2", "action": "none", "label_convert": True},  # not a send: not in this table
            {"offer_id": "o2", "window_closed": False, "label_convert": True},
        ]
    ))
    rows = {(r["offer_type"], r["arm"]): r for r in serving_calibration(con, by_offer_type=True).iter_rows(named=True)}
    assert set(rows) == {("free_shipping", "planned send"), ("percent_off", "explored send")}
    free = rows[("free_shipping", "planned send")]
    assert (free["decisions"], free["conversions"], free["predicted_conversions"]) == (4, 3, 2.0)
    # Garwood's 95 % interval of a count of 3 is [0.619, 8.767]; over 2 predicted conversions:
    assert free["realized_over_predicted"] == pytest.approx(1.5)
    assert (free["ratio_low"], free["ratio_high"]) == (pytest.approx(0.309, abs=1e-3), pytest.approx(4.384, abs=1e-3))
    none_seen = rows[("percent_off", "explored send")]
    assert none_seen["ratio_low"] == 0.0 and none_seen["ratio_high"] == pytest.approx(3.689 / 0.4, abs=1e-2)
    # The overall table needs no offers table; the one by offer type is empty without it.
    assert serving_calibration(_warehouse([{"label_convert": True}]), by_offer_type=True).is_empty()


def test_ratio_interval_has_no_ratio_where_nothing_was_predicted() -> None:
    low, high = ratio_interval(np.array([0, 2]), np.array([0.0, 1.0]))
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert low[1] == pytest.approx(0.2422, abs=1e-4) and high[1] == pytest.approx(7.2247, abs=1e-4)


def test_explored_calibration_flags_only_a_segment_whose_interval_excludes_one() -> None:
    from orchestration.report import explored_calibration

    rows = (
        # Free shipping: 40 explored sends predicted at 0.5 each (20 conversions), none came: off.
        [{"offer_id": "o1", "is_exploration": True, "p_convert_send": 0.5} for _ in range(40)]
        # Percent off: 40 predicted at 0.1 (4), 4 came: calibrated.
        + [{"offer_id": "o2", "is_exploration": True, "p_convert_send": 0.1, "label_convert": i < 4} for i in range(40)]
        # Planned sends (the winner's curse, not drift), another model's and older days' sends: not read.
        + [{"offer_id": "o2", "p_convert_send": 0.9} for _ in range(20)]
        + [{"offer_id": "o2", "is_exploration": True, "model_version": "m:0", "score_version": "m:0",
            "p_convert_send": 0.9} for _ in range(20)]
        + [{"offer_id": "o2", "is_exploration": True, "decision_date": date(2026, 11, 1), "p_convert_send": 0.9}
           for _ in range(20)]
    )
    segments = explored_calibration(_with_offers(_warehouse(rows)), "m:1", since=date(2026, 11, 20))
    by_type = {r["offer_type"]: r for r in segments.iter_rows(named=True)}
    assert set(by_type) == {"all", "free_shipping", "percent_off"}
    assert by_type["free_shipping"]["miscalibrated"] and not by_type["percent_off"]["miscalibrated"]
    assert (by_type["all"]["decisions"], by_type["all"]["conversions"]) == (80, 4)
    assert by_type["all"]["predicted_conversions"] == pytest.approx(24.0)
    # Three segments: each interval at 1 - 0.05 / 3, wider than the report's 95 %.
    assert by_type["percent_off"]["ratio_high"] > ratio_interval(np.array([4]), np.array([4.0]))[1][0]
    assert explored_calibration(_with_offers(_warehouse(rows)), "m:2", since=date(2026, 11, 20)).is_empty()
