"""The closed loop's yardsticks (simulator/policies.py): the oracle is the best under the budget, the
random policy is reproducible for a seed, and every policy stays within the budget and the quotas."""

from __future__ import annotations

import numpy as np
import polars as pl

from simulator.policies import compare_day, oracle_plan, random_plan, rule_plan


def _actions(seed: int = 0, n_users: int = 400, per_user: int = 6) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    return pl.DataFrame({
        "user_id": [f"u{i // per_user:04d}" for i in range(n)],
        "product_id": [f"p{rng.integers(50):02d}-{i % per_user}" for i in range(n)],
        "offer_id": "o1",
        "channel": rng.choice(["push", "sms", "email"], n),
        "send_hour": pl.Series(rng.choice([10, 12], n), dtype=pl.Int32),
        "candidate_source": rng.choice(["viewed_not_bought", "category_affinity"], n),
        "o_depth": rng.choice([0.05, 0.1, 0.2], n),
        "true_value": rng.normal(0.2, 1.0, n),
        "true_uplift": rng.uniform(-0.01, 0.05, n),
        "true_cost": rng.uniform(0.1, 1.0, n),
    })


def test_oracle_beats_every_other_policy_within_the_same_budget_and_quota() -> None:
    actions = _actions()
    activity = pl.DataFrame({"user_id": actions["user_id"].unique(), "activity": 1})
    users = actions["user_id"].unique()
    values = {v.policy: v for v in compare_day(actions, actions.head(0).select("user_id", "product_id", "offer_id", "channel", "send_hour"),
                                               budget=60.0, channel_quota={"sms": 20}, eligible_users=users,
                                               activity=activity, seed=1)}
    assert values["platform"].sends == 0
    for name in ("oracle", "random", "rule"):
        assert values[name].offer_cost <= 60.0 + 1e-9
    assert values["oracle"].incremental_margin >= max(values["random"].incremental_margin, values["rule"].incremental_margin)
    for plan in (oracle_plan(actions, 60.0, {"sms": 20}), random_plan(actions, 60.0, {"sms": 20}, 1),
                 rule_plan(actions, 60.0, {"sms": 20}, activity)):
        assert plan["user_id"].is_unique().all()
        assert (plan["channel"] == "sms").sum() <= 20


def test_random_policy_is_reproducible_for_a_seed_whatever_the_row_order() -> None:
    actions = _actions()
    shuffled = actions.sample(fraction=1.0, shuffle=True, seed=5)
    a = random_plan(actions, 60.0, {}, seed=3).sort("user_id")
    b = random_plan(shuffled, 60.0, {}, seed=3).sort("user_id")
    assert a.equals(b)
    assert not a.equals(random_plan(actions, 60.0, {}, seed=4).sort("user_id"))
