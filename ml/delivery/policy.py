"""The logging policy around the allocator: a stable global holdout, ε-greedy exploration with exact
propensities, campaign budget pacing, and the correction of predicted spend by realized spend.

Why: every decision is logged with the probability that the logging policy chose it, so any later policy
can be evaluated offline (ml/delivery/ope.py). That only works when the probability is exact and the
exploration covers every eligible action, including "send nothing". The holdout (same users every day)
measures the incrementality of the whole programme.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np


def stable_unit_interval(keys: Iterable[object], salt: str) -> np.ndarray:
    """A number in [0, 1) per key that depends only on (salt, key): same across runs, machines and orders."""
    out = [
        int.from_bytes(hashlib.blake2b(f"{salt}|{key}".encode(), digest_size=7).digest(), "little") for key in keys
    ]
    return np.asarray(out, dtype=np.float64) / float(2**56)


def holdout_mask(user_ids: Iterable[object], share: float = 0.05, salt: str = "promoloop-holdout") -> np.ndarray:
    """(n,) bool: the global holdout, about `share` of users, the same users every day whatever the order."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"holdout share must be in [0, 1], got {share}")
    return stable_unit_interval(user_ids, salt) < share


def _eligible_counts(user_index: np.ndarray, eligible: np.ndarray, n_users: int) -> np.ndarray:
    return np.bincount(user_index[eligible], minlength=n_users)


def _check_layout(user_index: np.ndarray, eligible: np.ndarray, greedy: np.ndarray, n_users: int) -> None:
    if user_index.shape != eligible.shape:
        raise ValueError(f"eligible has shape {eligible.shape}, user_index {user_index.shape}: one entry per candidate row")
    if len(user_index) and (np.any(np.diff(user_index) < 0) or user_index[0] < 0 or user_index[-1] >= n_users):
        raise ValueError(f"user_index must be sorted ascending and within [0, {n_users})")
    if greedy.shape != (n_users,):
        raise ValueError(f"greedy has shape {greedy.shape}, expected ({n_users},): one row index (or -1) per user")
    sent = np.flatnonzero(greedy >= 0)
    rows = greedy[sent]
    if len(rows) and rows.max() >= len(user_index):
        raise ValueError(f"greedy row {rows.max()} is beyond the {len(user_index)} candidate rows")
    wrong_user = sent[user_index[rows] != sent]
    if len(wrong_user):
        raise ValueError(f"greedy action of user {wrong_user[0]} is a row of another user")
    ineligible = sent[~eligible[rows]]
    if len(ineligible):
        raise ValueError(f"greedy action of user {ineligible[0]} is not eligible (consent, cap or quiet hours)")


def action_probabilities(
    user_index: np.ndarray, eligible: np.ndarray, greedy: np.ndarray, n_users: int, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """The ε-greedy logging policy's distribution: (per candidate row (N,), of "nothing" per user (n_users,)).

    With probability 1 − ε the greedy choice (a row, or nothing when `greedy` is −1); with probability ε a
    uniform pick among the user's eligible rows and "nothing". Ineligible rows get 0; each user's
    probabilities sum to 1.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    user_index = np.asarray(user_index)
    eligible = np.asarray(eligible, dtype=bool)
    greedy = np.asarray(greedy)
    _check_layout(user_index, eligible, greedy, n_users)
    uniform = epsilon / (_eligible_counts(user_index, eligible, n_users) + 1.0)  # (n_users,)
    row_prob = np.where(eligible, uniform[user_index], 0.0)
    sent = np.flatnonzero(greedy >= 0)
    row_prob[greedy[sent]] += 1.0 - epsilon
    nothing_prob = uniform + np.where(greedy < 0, 1.0 - epsilon, 0.0)
    return row_prob, nothing_prob


@dataclass(frozen=True)
class ExplorationResult:
    """The logged action per user and the probability the logging policy gave it."""

    action: np.ndarray  # (n_users,) candidate row sent, -1 = nothing
    propensity: np.ndarray  # (n_users,) probability of `action` under the logging policy, in (0, 1]
    is_exploration: np.ndarray  # (n_users,) bool: the ε branch chose (it may coincide with greedy)
    budget_clipped: np.ndarray  # (n_users,) bool: exploration reverted to greedy because the reserve ran out
    exploration_spend: float  # extra expected cost of exploration over the greedy plan (may be negative)


def explore(
    user_index: np.ndarray,
    eligible: np.ndarray,
    cost: np.ndarray,
    channel: np.ndarray,
    greedy: np.ndarray,
    n_users: int,
    day: date,
    epsilon: float = 0.1,
    seed: int = 0,
    budget_reserve: float = np.inf,
    channel_headroom: Mapping[int, float] | None = None,
) -> ExplorationResult:
    """ε-greedy over each user's eligible rows plus "nothing", reproducible per (seed, day).

    Only eligible rows can be explored (consent, caps and quiet hours are applied in `eligible`; pass
    holdout users with no eligible row and greedy −1). Explored sends count against `budget_reserve` (the
    budget held back from the allocator for exploration) and `channel_headroom` (sends still allowed per
    channel after the greedy plan). If a day's draws would overrun them, explorations are reverted to the
    greedy action in a seeded random order; those rows are flagged `budget_clipped`, their logged
    propensity is the nominal one and is therefore not exact: leave them out of off-policy estimates.
    Size the reserve with `exploration_reserve` so that this is rare.
    """
    user_index = np.asarray(user_index)
    eligible = np.asarray(eligible, dtype=bool)
    cost = np.asarray(cost, dtype=np.float64)
    channel = np.asarray(channel)
    greedy = np.asarray(greedy, dtype=np.int64)
    row_prob, nothing_prob = action_probabilities(user_index, eligible, greedy, n_users, epsilon)
    rng = np.random.default_rng([seed, day.toordinal()])
    coin = rng.random(n_users) < epsilon
    n_eligible = _eligible_counts(user_index, eligible, n_users)
    option = np.floor(rng.random(n_users) * (n_eligible + 1)).astype(np.int64)  # == n_eligible: nothing
    order = rng.permutation(n_users)

    eligible_rows = np.flatnonzero(eligible)
    first_eligible = np.searchsorted(user_index[eligible_rows], np.arange(n_users))  # offset into eligible_rows
    explored_row = np.where(
        option < n_eligible, eligible_rows[np.minimum(first_eligible + option, max(len(eligible_rows) - 1, 0))], -1
    )
    explored_row = np.where(n_eligible > 0, explored_row, -1)
    action = np.where(coin, explored_row, greedy)

    def cost_of(rows: np.ndarray) -> np.ndarray:
        return np.where(rows >= 0, cost[np.maximum(rows, 0)], 0.0)

    extra = cost_of(action) - cost_of(greedy)
    clipped = np.zeros(n_users, dtype=bool)
    headroom = dict(channel_headroom or {})
    changed = coin & (action != greedy)
    if np.isfinite(budget_reserve) or headroom:
        left = float(budget_reserve)
        for user in order[changed[order]].tolist():
            new_ch = int(channel[action[user]]) if action[user] >= 0 else None
            old_ch = int(channel[greedy[user]]) if greedy[user] >= 0 else None
            over_quota = new_ch is not None and new_ch != old_ch and headroom.get(new_ch, np.inf) < 1
            if extra[user] > left or over_quota:
                action[user] = greedy[user]
                clipped[user] = True
                continue
            left -= extra[user]
            if new_ch != old_ch:
                if new_ch is not None and new_ch in headroom:
                    headroom[new_ch] -= 1
                if old_ch is not None and old_ch in headroom:
                    headroom[old_ch] += 1
    propensity = np.where(action >= 0, row_prob[np.maximum(action, 0)], nothing_prob)
    spend = float((cost_of(action) - cost_of(greedy)).sum())
    return ExplorationResult(action, propensity, coin & ~clipped, clipped, spend)


def exploration_reserve(
    user_index: np.ndarray,
    eligible: np.ndarray,
    cost: np.ndarray,
    n_users: int,
    epsilon: float,
    sigmas: float = 4.0,
    greedy: np.ndarray | None = None,
) -> float:
    """Budget to hold back for exploration: its expected extra cost over the plan plus `sigmas` standard
    deviations.

    Without `greedy` (the plan not yet known) each explored user's extra cost is bounded by the cost of the
    explored option, as if the plan sent them nothing: conservative. With `greedy` (row per user, −1 =
    nothing) the extra cost of an explored user is exactly the explored option's cost minus the plan's, so
    the mean and variance are exact: the explored draws do not depend on the plan (`explore`).
    """
    user_index = np.asarray(user_index)
    eligible = np.asarray(eligible, dtype=bool)
    cost = np.asarray(cost, dtype=np.float64)
    options = _eligible_counts(user_index, eligible, n_users) + 1.0  # (n_users,) rows + "nothing"
    mean_cost = np.bincount(user_index[eligible], weights=cost[eligible], minlength=n_users) / options
    mean_sq = np.bincount(user_index[eligible], weights=cost[eligible] ** 2, minlength=n_users) / options
    planned = np.zeros(n_users)
    if greedy is not None:
        greedy = np.asarray(greedy)
        planned = np.where(greedy >= 0, cost[np.maximum(greedy, 0)], 0.0)
    # extra = coin * (c_option - c_planned), coin ~ Bernoulli(epsilon), option uniform over `options`.
    expected = epsilon * (mean_cost - planned)
    second_moment = epsilon * (mean_sq - 2.0 * planned * mean_cost + planned**2)
    variance = second_moment - expected**2
    return float(expected.sum() + sigmas * np.sqrt(max(variance.sum(), 0.0)))


def pace_budget(
    campaign_budget: float,
    start: date,
    end: date,
    day: date,
    spent_so_far: float,
    weights: Sequence[float] | None = None,
) -> float:
    """Today's share of what is left of a campaign budget, over the days left (start..end inclusive).

    Under-spend carries forward because the remaining budget is re-spread each day. `weights` are seven
    weekday weights (Monday first), e.g. more on weekends; None spreads evenly.
    """
    if end < start:
        raise ValueError(f"campaign end {end} is before its start {start}")
    if not start <= day <= end:
        raise ValueError(f"day {day} is outside the campaign {start}..{end}")
    if campaign_budget < 0 or spent_so_far < 0:
        raise ValueError(f"budget ({campaign_budget}) and spent_so_far ({spent_so_far}) must be >= 0")
    weekday_weights = np.ones(7) if weights is None else np.asarray(weights, dtype=np.float64)
    if weekday_weights.shape != (7,) or np.any(weekday_weights < 0) or not np.isfinite(weekday_weights).all():
        raise ValueError(f"weights must be 7 non-negative weekday weights (Monday first), got {weights}")
    remaining = max(campaign_budget - spent_so_far, 0.0)
    days_left = np.arange(day.toordinal(), end.toordinal() + 1)
    left_weights = weekday_weights[[date.fromordinal(int(d)).weekday() for d in days_left]]
    total = left_weights.sum()
    if total == 0:
        return remaining if day == end else 0.0
    return float(remaining * left_weights[0] / total)


# Bounds on the spend correction: a safety net against a broken feedback feed, not the usual range.
COST_FACTOR_BOUNDS = (0.5, 2.0)


def spend_correction(predicted: float, realized: float, variance: float, prior: float, sds: float = 1.0) -> float:
    """The factor to multiply predicted offer costs by so that planned spend matches what sends realize.

    Why: the budget is spent on the model's predicted cost, and the sends a plan picks are the ones the
    model rates highest, so their predictions are biased up (the winner's curse: on the closed loop the
    champion's sends realized well under their predicted conversions) and the plan under-spends the
    budget. The ratio realized / predicted of recent sends corrects the level (a send whose outcome window
    is still open is predicted at the share of its redemptions seen so far, `observed_share`). Realized spend is a sum of a few large redemptions, so the estimate is held to the safe side:
    `prior` is pseudo-evidence at ratio 1 (money of predicted cost), `variance` that of the realized sum
    (under the model, sum of cost^2 p (1 - p)), and the factor is the ratio's upper bound at `sds` standard
    deviations (spending less than the budget is the lesser error), clipped to COST_FACTOR_BOUNDS.
    """
    if min(predicted, realized, variance, prior, sds) < 0:
        raise ValueError(
            f"predicted ({predicted}), realized ({realized}), variance ({variance}), prior ({prior}) and sds ({sds}) "
            "must be >= 0"
        )
    if predicted + prior == 0:
        return 1.0
    low, high = COST_FACTOR_BOUNDS
    return float(np.clip((realized + prior + sds * np.sqrt(variance)) / (predicted + prior), low, high))


MIN_DELAYS = 30  # redemptions needed to estimate how late they come; fewer: only closed windows count


def observed_share(
    delays_hours: np.ndarray, observed_hours: np.ndarray, closed: np.ndarray, min_delays: int = MIN_DELAYS
) -> np.ndarray:
    """For each send, the share of its expected redemptions already seen: 1 where its window has closed;
    where it is open, the share of closed windows' redemptions (`delays_hours`, send to redemption) that
    came within the hours it has been observed (a delayed-feedback correction, as ad systems pace on
    conversions still arriving).

    Why: a 48-hour window keeps a new champion's first two days of sends out of the spend correction, and
    those are the days it under-spends most (bench/closed_loop_pacing.py); most coupons are redeemed within
    hours of the message, so yesterday's sends already say much about the bias. With fewer than `min_delays`
    redemptions to measure the delay, open windows get 0: only closed ones count."""
    observed = np.asarray(observed_hours, dtype=np.float64)
    closed = np.asarray(closed, dtype=bool)
    delays = np.sort(np.asarray(delays_hours, dtype=np.float64))
    if len(delays) < min_delays:
        return closed.astype(np.float64)
    seen = np.searchsorted(delays, observed, side="right") / len(delays)  # empirical CDF at the observed hours
    return np.where(closed, 1.0, seen)
