"""bench/closed_loop_pacing.py's paced plan: the same scores re-planned with the budget that spends the day's
budget in true cost, whatever the scores' cost bias."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from bench.closed_loop_pacing import KEY, paced_plan, true_value_of
from ml.delivery.planner import PlanConfig
from orchestration.defs.scoring import PlanInputs, RecentSpend

DAY = date(2026, 11, 30)


def _inputs(n_users: int) -> PlanInputs:
    scored = pl.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(n_users)], "product_id": "p1", "offer_id": "o1", "channel": "push",
            "send_hour": 12, "send_at": datetime(2026, 11, 30, 12), "expected_uplift": 0.05,
            "expected_margin": [2.0 + (i % 7) / 10 for i in range(n_users)], "expected_cost": 1.0,
        }
    )
    cfg = PlanConfig(budget=100.0, epsilon=0.0, holdout_share=0.0, channel_quota={}, seed=1)
    return PlanInputs(cfg, RecentSpend(), "m:1", scored, pl.DataFrame({"user_id": [], "n_sends": []},
                                                                      schema={"user_id": pl.Utf8, "n_sends": pl.Int32}))


@pytest.mark.parametrize("true_over_predicted", [0.5, 2.0])
def test_paced_plan_spends_the_budget_in_true_cost_whatever_the_bias(true_over_predicted: float) -> None:
    inputs = _inputs(600)
    valued = inputs.scored.select(KEY).with_columns(
        pl.lit(1.5).alias("true_value"), pl.lit(true_over_predicted).alias("true_cost")
    )
    paced = paced_plan(inputs, DAY, valued, budget=100.0, steps=12)
    assert 100.0 - 2 * true_over_predicted < paced["cost"] <= 100.0  # within one send of the budget
    assert paced["planned_budget"] == pytest.approx(100.0 / true_over_predicted, rel=0.05)
    assert paced["value"] == pytest.approx(1.5 * paced["sends"])
    assert true_value_of(inputs.scored.head(3), valued) == (pytest.approx(4.5), pytest.approx(3 * true_over_predicted))
