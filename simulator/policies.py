"""Reference policies for the closed-loop benchmark, judged by the simulator's ground truth.

Each morning the platform scores and plans a day's action set (users x candidate offers x consented channel
x send hour). On the same action set, for the same users (those the platform could contact today: not in the
global holdout, not frequency-capped by the sends so far), with the same budget and channel quotas, three
reference policies choose too:

- **oracle**: knows every action's true expected incremental margin and offer cost and solves the same
  budgeted allocation the platform uses (`ml.delivery.allocation.allocate`) on them: the best any policy can
  do with this candidate set and budget.
- **random**: a uniformly random action for users drawn in random order, until the budget is spent.
- **rule**: the marketer's rule of thumb, "10 % off the most recently viewed product to the most active
  users": for users by descending activity, the action with the recently-viewed candidate and the offer
  closest to 10 % off (push first, then email, then SMS; the default hour), until the budget is spent.

Every policy, the platform's included, is valued by `Shop.true_effect` on the actions it chose: expected
incremental margin (net of the channel's cost, as the simulator computes it) and expected offer cost. Counterfactual policies do not change
the shop's state (fatigue, recent views): the world follows the platform's own sends. Budget is metered with
the true expected offer cost for the reference policies (the oracle needs it; random and rule use it only
as their spending meter); the platform's plan spends by its own estimates and its true spend is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ml.delivery.allocation import AllocationConfig, CandidateSet, allocate
from ml.delivery.planner import CHANNELS

POLICIES = ("platform", "oracle", "random", "rule")
ACTION_KEY = ("user_id", "product_id", "offer_id", "channel", "send_hour")
CHANNEL_PREFERENCE = {"push": 0, "email": 1, "sms": 2}


@dataclass(frozen=True)
class PolicyValue:
    policy: str
    sends: int
    incremental_margin: float  # true expected, net of channel cost
    incremental_conversions: float  # true expected
    offer_cost: float  # true expected discount paid


def with_truth(actions: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Attach `Shop.true_effect` columns (computed on `actions`, same row order): `true_value` is the true
    expected incremental margin, already net of the channel's cost."""
    return actions.with_columns(
        truth["expected_incremental_margin"].alias("true_value"),
        truth["uplift"].alias("true_uplift"),
        truth["offer_cost"].alias("true_cost"),
    )


def oracle_plan(actions: pl.DataFrame, budget: float, channel_quota: dict[str, int]) -> pl.DataFrame:
    """The best plan under the budget and quotas, knowing the truth (rows of `actions` chosen)."""
    frame = actions.sort(list(ACTION_KEY)).with_row_index("_row")
    if frame.is_empty():
        return frame.drop("_row")
    user_index = frame["user_id"].rle_id().to_numpy()
    channel = frame["channel"].replace_strict({c: i for i, c in enumerate(CHANNELS)}, return_dtype=pl.Int64).to_numpy()
    quota = {i: float(channel_quota[c]) for i, c in enumerate(CHANNELS) if c in channel_quota}
    result = allocate(
        CandidateSet(user_index, frame["true_value"].to_numpy(), frame["true_cost"].to_numpy(), channel,
                     int(user_index.max()) + 1, len(CHANNELS)),
        AllocationConfig(budget=budget, channel_quota=quota, compute_lp_bound=False),
    )
    rows = result.chosen[:, 0]
    return frame[rows[rows >= 0]].drop("_row")


def _fill_budget(ordered: pl.DataFrame, budget: float, channel_quota: dict[str, int]) -> pl.DataFrame:
    """Take rows in order (one per user already) while the budget and the quotas last."""
    cost = ordered["true_cost"].to_numpy()
    channel = ordered["channel"].to_list()
    used = {c: 0 for c in channel_quota}
    keep, spend = [], 0.0
    for i, (c, ch) in enumerate(zip(cost, channel, strict=True)):
        if spend + c > budget:
            continue
        if ch in used:
            if used[ch] >= channel_quota[ch]:
                continue
            used[ch] += 1
        spend += c
        keep.append(i)
    return ordered[keep]


def random_plan(actions: pl.DataFrame, budget: float, channel_quota: dict[str, int], seed: int) -> pl.DataFrame:
    """A uniformly random action per user, users in random order, until the budget is spent."""
    frame = actions
    rng = np.random.default_rng(seed)
    picked = (
        frame.sort(list(ACTION_KEY))
        .with_columns(pl.Series("_r", rng.random(frame.height)))
        .sort("_r")
        .unique("user_id", keep="first", maintain_order=True)
    )
    users = picked.sample(fraction=1.0, shuffle=True, seed=seed)
    return _fill_budget(users.drop("_r"), budget, channel_quota)


def rule_plan(
    actions: pl.DataFrame,
    budget: float,
    channel_quota: dict[str, int],
    activity: pl.DataFrame,
    default_hour: int = 12,
) -> pl.DataFrame:
    """"10 % off the most recently viewed product to the most active users" (see the module docstring).

    `activity`: user_id, activity (e.g. events in the last 30 days). Candidates whose source is not a recent
    view fall back to the user's first candidate product."""
    frame = actions
    recent = pl.col("candidate_source").str.contains("view") if "candidate_source" in frame.columns else pl.lit(True)
    ranked = (
        frame.with_columns(
            (~recent).cast(pl.Int8).alias("_not_recent"),
            (pl.col("o_depth").fill_null(0.0) - 0.10).abs().alias("_off_target"),
            pl.col("channel").replace_strict(CHANNEL_PREFERENCE, default=9, return_dtype=pl.Int8).alias("_ch"),
            (pl.col("send_hour") != default_hour).cast(pl.Int8).alias("_hour"),
        )
        .sort("user_id", "_not_recent", "_off_target", "_ch", "_hour", "product_id", "offer_id")
        .unique("user_id", keep="first", maintain_order=True)
        .join(activity, on="user_id", how="left")
        .sort(pl.col("activity").fill_null(0), "user_id", descending=[True, False])
    )
    return _fill_budget(ranked.drop("_not_recent", "_off_target", "_ch", "_hour", "activity"), budget, channel_quota)


def value_of(policy: str, chosen: pl.DataFrame) -> PolicyValue:
    return PolicyValue(
        policy=policy,
        sends=chosen.height,
        incremental_margin=float(chosen["true_value"].sum()) if chosen.height else 0.0,
        incremental_conversions=float(chosen["true_uplift"].sum()) if chosen.height else 0.0,
        offer_cost=float(chosen["true_cost"].sum()) if chosen.height else 0.0,
    )


def compare_day(
    actions: pl.DataFrame,
    platform_sends: pl.DataFrame,
    *,
    budget: float,
    channel_quota: dict[str, int],
    eligible_users: pl.Series,
    activity: pl.DataFrame,
    seed: int,
) -> list[PolicyValue]:
    """The platform's sends and the three reference policies on one day's action set (with truth columns
    from `with_truth`). `platform_sends`: the day's sends (ACTION_KEY columns); `eligible_users`: the users
    the platform could contact today, to whom the reference policies are held too."""
    platform = platform_sends.select(ACTION_KEY).join(actions, on=list(ACTION_KEY), how="left")
    if platform["true_value"].null_count():
        raise ValueError(f"{platform['true_value'].null_count()} platform sends are not in the day's action set")
    open_actions = actions.filter(pl.col("user_id").is_in(eligible_users.implode()))
    return [
        value_of("platform", platform),
        value_of("oracle", oracle_plan(open_actions, budget, channel_quota)),
        value_of("random", random_plan(open_actions, budget, channel_quota, seed)),
        value_of("rule", rule_plan(open_actions, budget, channel_quota, activity)),
    ]
