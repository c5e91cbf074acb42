"""The allocator and the daily plan: hard rules hold against planted temptations, the solution is
near-optimal against an exact MILP, and propensities are exact."""

from datetime import date, datetime

import numpy as np
import polars as pl
import pytest

from ml.delivery.allocation import AllocationProblem, allocate, exact_optimum, lp_relaxation_bound
from ml.delivery.planner import PlanConfig, holdout_users, plan_day

DAY = date(2026, 11, 2)


def random_problem(seed: int, n_users: int = 12, per_user: int = 4, budget: float = 3.0, sms_quota: float = 3) -> AllocationProblem:
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(n_users), per_user)
    value = rng.normal(1.0, 1.0, len(user))
    cost = rng.uniform(0.1, 1.0, len(user)) * (1 + np.maximum(value, 0))
    return AllocationProblem(user, value, cost, rng.integers(0, 3, len(user)), budget, np.array([np.inf, sms_quota, np.inf]))


def _feasible(p: AllocationProblem, chosen: np.ndarray) -> bool:
    users = p.user[chosen]
    counts = np.bincount(p.channel[chosen], minlength=len(p.channel_quota))
    return len(users) == len(set(users)) and p.cost[chosen].sum() <= p.budget + 1e-9 and (counts <= p.channel_quota).all()


@pytest.mark.parametrize("seed", range(25))
def test_matches_exact_milp_within_a_tenth_of_a_percent(seed: int) -> None:
    p = random_problem(seed, n_users=400, per_user=5, budget=60.0, sms_quota=40)
    result = allocate(p)
    best = exact_optimum(p)
    assert _feasible(p, result.chosen)
    assert best * (1 - 1e-3) <= result.objective <= best + 1e-6
    assert result.dual_bound >= best - 1e-6  # the dual bound really bounds the optimum


@pytest.mark.parametrize("seed", range(3))
def test_dual_solution_alone_is_near_the_lp_bound_at_scale(seed: int) -> None:
    from ml.delivery.allocation import _allocate_dual

    p = random_problem(seed, n_users=20_000, per_user=8, budget=3000.0, sms_quota=2000)
    result = _allocate_dual(p)
    assert _feasible(p, result.chosen)
    assert result.gap < 5e-4


def test_dual_bound_equals_the_lp_relaxation() -> None:
    p = random_problem(1, n_users=200, per_user=5, budget=30.0, sms_quota=20)
    result = allocate(p)
    assert result.dual_bound == pytest.approx(lp_relaxation_bound(p), rel=1e-3)


def test_small_instances_stay_feasible_and_close() -> None:
    for seed in range(20):
        p = random_problem(seed)
        r = allocate(p)
        chosen_users = p.user[r.chosen]
        assert len(chosen_users) == len(set(chosen_users))  # one action per user
        assert r.spend <= p.budget + 1e-9
        assert r.channel_counts[1] <= 3
        assert (p.value[r.chosen] > 0).all()


def test_budget_too_small_sends_nothing_and_negative_values_are_never_sent() -> None:
    user = np.array([0, 0, 1])
    p = AllocationProblem(user, np.array([5.0, -1.0, -2.0]), np.array([10.0, 0.0, 0.0]), np.zeros(3, int), 1.0, np.array([np.inf]))
    r = allocate(p)
    assert not r.chosen.any() and r.spend == 0


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
    # sms has a quota, so exploration draws among {push, nothing}: P(sms) = 0.7, P(push) = P(nothing) = 0.15.
    freq = plan.group_by("action", "channel").len()
    sms = freq.filter((pl.col("action") == "send") & (pl.col("channel") == "sms"))["len"].item() / len(users)
    assert sms == pytest.approx(0.7, abs=0.03)
    logged = plan.filter((pl.col("action") == "send") & (pl.col("channel") == "sms"))["propensity"].unique().to_list()
    assert logged == [pytest.approx(0.7)]
    push = plan.filter(pl.col("channel") == "push")
    assert push.height / len(users) == pytest.approx(0.15, abs=0.03)
    assert push["propensity"].unique().to_list() == [pytest.approx(0.15)]


def test_holdout_is_stable_and_about_five_percent() -> None:
    ids = pl.Series([f"u{i}" for i in range(20000)])
    mask = holdout_users(ids, 0.05)
    assert abs(mask.mean() - 0.05) < 0.006
    shuffled = ids.sample(fraction=1.0, shuffle=True, seed=1)
    assert set(ids.filter(pl.Series(mask))) == set(shuffled.filter(pl.Series(holdout_users(shuffled, 0.05))))
