"""The daily plan around the allocator: hard rules hold against planted temptations, the plan is
reproducible, and logged propensities match how often each action is really chosen."""

from datetime import date, datetime

import polars as pl
import pytest

from ml.delivery.planner import PlanConfig, plan_day

DAY = date(2026, 11, 2)


def _scored(users: list[str], value: dict[tuple[str, str], float]) -> pl.DataFrame:
    rows = []
    for u in users:
        for channel in ("push", "sms"):
            rows.append(
                {
                    "user_id": u, "product_id": "p1", "offer_id": "o1", "channel": channel, "send_hour": 12,
                    "send_at": datetime(2026, 11, 2, 12), "candidate_source": "viewed_not_bought",
                    "candidate_reason": "viewed 2× in 7 days, not bought", "expected_uplift": 0.01,
                    "expected_margin": value.get((u, channel), 1.0), "expected_cost": 1.0,
                }
            )
    return pl.DataFrame(rows)


def test_plan_respects_caps_holdout_budget_and_logs_exact_propensities() -> None:
    users = [f"u{i:04d}" for i in range(400)]
    cfg = PlanConfig(budget=100.0, epsilon=0.2, holdout_share=0.05, channel_quota={"sms": 30}, seed=3)
    # The best score of all is a capped user's: they must not be contacted anyway.
    scored = _scored(users, {("u0007", "push"): 50.0})
    recent = pl.DataFrame({"user_id": ["u0007"], "n_sends": [2]})
    plan = plan_day(scored, DAY, cfg, "m1", recent)
    assert plan.height == len(users) and plan["decision_id"].is_unique().all()
    assert plan.filter(pl.col("user_id") == "u0007")["action"].item() == "none"
    sends = plan.filter(pl.col("action") == "send")
    assert sends["expected_cost"].sum() <= cfg.budget
    assert sends.filter(pl.col("channel") == "sms").height <= 30
    hold = plan.filter(pl.col("is_holdout"))
    assert hold.height > 0 and (hold["action"] == "none").all() and (hold["propensity"] == 1.0).all()
    assert plan["propensity"].is_between(0, 1, closed="right").all()
    assert (plan["product_id"].is_not_null()).all()  # "nothing" rows log the counterfactual action
    # Same day, same seed: the same plan.
    assert plan.equals(plan_day(scored, DAY, cfg, "m1", recent))


def test_exploration_propensities_match_frequencies() -> None:
    users = [f"u{i:05d}" for i in range(3000)]
    cfg = PlanConfig(budget=1e9, epsilon=0.3, holdout_share=0.0, channel_quota={"sms": 10**6}, seed=5)
    scored = _scored(users, {(u, "sms"): 2.0 for u in users})  # greedy: sms for everyone
    plan = plan_day(scored, DAY, cfg, "m1")
    # Greedy is sms for everyone; exploration draws among {push, sms, nothing}: P(sms) = 0.7 + 0.3/3 = 0.8.
    freq = plan.group_by("action", "channel").len()
    sms = freq.filter((pl.col("action") == "send") & (pl.col("channel") == "sms"))["len"].item() / len(users)
    assert sms == pytest.approx(0.8, abs=0.03)
    logged = plan.filter((pl.col("action") == "send") & (pl.col("channel") == "sms"))["propensity"].unique().to_list()
    assert logged == [pytest.approx(0.8)]
    push = plan.filter(pl.col("channel") == "push")
    assert push.height / len(users) == pytest.approx(0.1, abs=0.03)
    assert push["propensity"].unique().to_list() == [pytest.approx(0.1)]
