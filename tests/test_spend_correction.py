"""The spend correction: predicted offer costs scaled by realized over predicted spend of recent sends whose
outcome is known, so a model whose picks over-predict their conversions still spends its budget."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from ml.delivery.planner import PlanConfig, plan_day
from ml.delivery.policy import COST_FACTOR_BOUNDS, observed_share, spend_correction
from orchestration.defs.scoring import PlanSettings, RecentSpend, day_plan_config, recent_spend

DAY = date(2026, 11, 30)


def test_spend_correction_weighs_evidence_against_its_prior_and_its_noise_and_is_bounded() -> None:
    assert spend_correction(0.0, 0.0, 0.0, prior=300.0) == 1.0  # nothing known yet: the model's own costs
    assert spend_correction(0.0, 0.0, 0.0, prior=0.0) == 1.0
    assert spend_correction(1200.0, 600.0, 0.0, prior=300.0) == pytest.approx(900 / 1500)
    # A day of evidence against one day of prior moves half way; a month of it nearly all the way.
    assert spend_correction(300.0, 150.0, 0.0, prior=300.0) == pytest.approx(0.75)
    assert spend_correction(9000.0, 4500.0, 0.0, prior=300.0) == pytest.approx(4800 / 9300)
    # Noisy realized spend (sd 150) keeps the factor nearer 1: the ratio's upper bound, at 1 sd or 2.
    assert spend_correction(1200.0, 600.0, 150.0**2, prior=300.0) == pytest.approx(1050 / 1500)
    assert spend_correction(1200.0, 600.0, 150.0**2, prior=300.0, sds=2.0) == pytest.approx(1200 / 1500)
    assert spend_correction(100.0, 1000.0, 0.0, prior=0.0) == COST_FACTOR_BOUNDS[1]
    assert spend_correction(100.0, 0.0, 0.0, prior=0.0) == COST_FACTOR_BOUNDS[0]
    with pytest.raises(ValueError, match="must be >= 0"):
        spend_correction(-1.0, 0.0, 0.0, prior=1.0)


def _scored(n_users: int) -> pl.DataFrame:
    """Every user one push action worth more than it costs: the budget alone decides how many are sent."""
    return pl.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(n_users)], "product_id": "p1", "offer_id": "o1", "channel": "push",
            "send_hour": 12, "send_at": datetime(2026, 11, 30, 12), "expected_uplift": 0.05,
            "expected_margin": [2.0 + (i % 7) / 10 for i in range(n_users)], "expected_cost": 1.0,
        }
    )


def test_a_cost_factor_below_one_sends_more_and_logs_the_corrected_costs_within_budget() -> None:
    scored = _scored(600)
    base = PlanConfig(budget=100.0, epsilon=0.1, holdout_share=0.0, channel_quota={}, seed=1)
    plain = plan_day(scored, DAY, base, "m1")
    halved = plan_day(scored, DAY, PlanConfig(**{**base.__dict__, "cost_factor": 0.5}), "m1")
    assert plain.summary.cost_factor == 1.0 and halved.summary.cost_factor == 0.5
    assert halved.summary.sends > 1.6 * plain.summary.sends  # about twice as many at half the cost each
    sent = halved.decisions.filter(pl.col("action") == "send")
    assert (sent["expected_cost"] == 0.5).all()  # the log holds the cost the plan budgeted
    assert halved.summary.expected_spend == pytest.approx(sent["expected_cost"].sum())
    assert halved.summary.expected_spend <= base.budget + 1e-9
    with pytest.raises(ValueError, match="cost_factor"):
        PlanConfig(cost_factor=0.0)


SEND_AT = datetime(2026, 11, 27, 12)


def _warehouse(rows: list[dict], timed_mart: bool = True) -> duckdb.DuckDBPyConnection:
    """One decision per row with the deciding model's score and its outcome; see the defaults. A redemption's
    time is `delay_hours` after the send; `timed_mart=False` builds the outcomes mart of an earlier version
    (no redemption times, no observed hours)."""
    con = duckdb.connect()
    defaults = {
        "decision_date": DAY - timedelta(days=3), "action": "send", "model_version": "m:1", "score_version": "m:1",
        "p_convert_send": 0.1, "o_depth": 0.2, "p_price": 50.0, "label_attributed_convert": False,
        "window_closed": True, "observed_hours": 48.0, "delay_hours": None,
    }
    frame = pl.DataFrame(
        [{**defaults, **row, "decision_id": f"d{i}", "user_id": f"u{i}"} for i, row in enumerate(rows)],
        schema_overrides={"delay_hours": pl.Float64},
    ).with_columns(
        pl.lit("p1").alias("product_id"), pl.lit("o1").alias("offer_id"), pl.lit("push").alias("channel"),
        pl.lit(SEND_AT).alias("send_at"),
        (pl.lit(SEND_AT) + pl.duration(seconds=pl.col("delay_hours") * 3600)).alias("attributed_convert_at"),
    )
    keys = "user_id, product_id, offer_id, channel, send_at"
    con.register("frame", frame.to_arrow())
    for schema in ("delivery", "marts"):
        con.execute(f"create schema {schema}")
    con.execute(f"create table delivery.decisions as select decision_id, decision_date, {keys}, action, model_version from frame")
    con.execute(
        f"create table delivery.scores as select decision_date, {keys}, score_version as model_version,"
        " p_convert_send, o_depth, p_price from frame"
    )
    timed = ", attributed_convert_at, observed_hours" if timed_mart else ""
    con.execute(
        f"create table marts.fct_delivery_outcomes as select decision_id, label_attributed_convert, window_closed{timed} from frame"
    )
    return con


def test_recent_spend_counts_closed_model_scored_sends_of_the_window_only() -> None:
    con = _warehouse(
        [
            {"label_attributed_convert": True},  # predicted 0.1 * 0.2 * 50 = 1.0, realized 10.0
            {"p_convert_send": 0.3},  # predicted 3.0, nothing redeemed
            {"decision_date": DAY - timedelta(days=7), "label_attributed_convert": True},  # first day of the window
            # Left out: "nothing", an open window (too few redemptions to tell how late they come), a
            # cold-start send, scores or sends of another model, outside the window.
            {"action": "none", "label_attributed_convert": True},
            {"window_closed": False, "observed_hours": 20.0, "label_attributed_convert": True, "delay_hours": 2.0},
            {"model_version": "none", "score_version": "none", "label_attributed_convert": True},
            {"score_version": "m:0", "label_attributed_convert": True},  # scores not of the deciding model
            {"model_version": "m:0", "score_version": "m:0", "label_attributed_convert": True},  # another model
            {"decision_date": DAY - timedelta(days=8), "label_attributed_convert": True},
            {"decision_date": DAY, "label_attributed_convert": True},
        ]
    )
    spend = recent_spend(con, DAY, 7, "m:1")
    assert spend.sends == 3
    assert spend.predicted == pytest.approx(5.0) and spend.realized == pytest.approx(20.0)
    # Under the model each send redeems its 10.0 with probability p: variance 100 p (1 - p).
    assert spend.variance == pytest.approx(100 * (0.09 + 0.21 + 0.09))
    assert recent_spend(con, DAY, 0, "m:1") == RecentSpend()
    assert recent_spend(con, DAY, 7, "m:0").sends == 1  # another model's sends are its own evidence
    assert recent_spend(con, DAY, 7, "none") == RecentSpend()  # the cold-start policy budgets on a prior
    # The day's config: the factor from that evidence, one day's budget as the prior, at 0 sd and 1.
    cfg, evidence = day_plan_config(con, PlanSettings(budget=30.0, spend_correction_sds=0.0), DAY, "m:1")
    assert cfg.cost_factor == pytest.approx((20.0 + 30.0) / (5.0 + 30.0)) and evidence == spend
    cautious, _ = day_plan_config(con, PlanSettings(budget=30.0), DAY, "m:1")
    assert cautious.cost_factor == pytest.approx((20.0 + 30.0 + spend.variance**0.5) / (5.0 + 30.0))
    off, _ = day_plan_config(con, PlanSettings(budget=10.0, spend_correction_days=0), DAY, "m:1")
    assert off.cost_factor == 1.0


def test_no_warehouse_tables_yet_means_no_correction() -> None:
    con = duckdb.connect()
    assert recent_spend(con, DAY, 7, "m:1") == RecentSpend()
    cfg, _ = day_plan_config(con, PlanSettings(), DAY, "m:1")
    assert cfg.cost_factor == 1.0 and cfg.budget == 300.0


def test_observed_share_is_the_redemption_delays_distribution_at_the_hours_observed() -> None:
    delays = np.array([1.0] * 20 + [10.0] * 10 + [30.0] * 10)  # 40 redemptions: half within 1 h
    closed = np.array([True, False, False, False, False])
    share = observed_share(delays, np.array([48.0, 0.0, 1.0, 12.0, 40.0]), closed)
    assert share.tolist() == [1.0, 0.0, 0.5, 0.75, 1.0]
    # Too few redemptions to tell how late they come: only closed windows count.
    assert observed_share(delays[:29], np.array([48.0, 12.0]), np.array([True, False]), min_delays=30).tolist() == [1.0, 0.0]


def test_recent_spend_counts_open_windows_by_the_share_of_redemptions_seen_so_far() -> None:
    # Closed, redeemed sends of any model tell how late coupons come (a property of the customers): another
    # model's 29 within 2 hours and 10 after 30, the serving model's one after 1. Then an open send of the
    # serving model observed 12 hours has seen 30/40 of its expected redemptions.
    late = [{"model_version": "m:0", "score_version": "m:0", "label_attributed_convert": True, "delay_hours": d}
            for d in [2.0] * 29 + [30.0] * 10]
    con = _warehouse(
        [
            *late,
            {"label_attributed_convert": True, "delay_hours": 1.0},  # closed: predicted 1.0, realized 10.0
            {"window_closed": False, "observed_hours": 12.0, "label_attributed_convert": True, "delay_hours": 1.0},
            {"window_closed": False, "observed_hours": 12.0, "p_convert_send": 0.2},  # predicted 2.0 x 3/4 so far
            {"window_closed": False, "observed_hours": 0.0, "p_convert_send": 0.5},  # sent this hour: nothing yet
        ]
    )
    spend = recent_spend(con, DAY, 7, "m:1")
    assert (spend.sends, spend.open_sends) == (3, 2)
    assert spend.predicted == pytest.approx(1.0 + 0.75 + 1.5) and spend.realized == pytest.approx(20.0)
    p = np.array([0.1, 0.075, 0.15])  # P(redeemed by now)
    assert spend.variance == pytest.approx(float((100 * p * (1 - p)).sum()))
    # A mart built before the redemption times existed: only closed windows, as before.
    old = recent_spend(_warehouse([*late, {"window_closed": False, "label_attributed_convert": True}], timed_mart=False),
                       DAY, 7, "m:1")
    assert old == RecentSpend()
