"""Budgeted allocation: at most one action per user, expected offer cost within the day's budget, channel
quotas — a multiple-choice knapsack, solved through its Lagrangian dual.

For multipliers lam (budget) and mu[c] (channel quotas) every user independently takes the action with the
best `value - lam*cost - mu[channel]` if it is positive. Bisection finds the smallest multipliers whose
choices fit. The dual function at those multipliers,
    D(lam, mu) = sum_u max(0, max_a(value - lam*cost - mu[ch])) + lam*budget + sum_c mu[c]*quota[c],
is an upper bound on the LP relaxation (and so on the best integer plan), which gives the optimality gap of
every run at full scale; `lp_relaxation_bound` (HiGHS) checks the bound on small instances.

Actions come flat and grouped by user (`user` sorted ascending), one row per eligible action: consent,
caps and quiet hours are applied before, so an ineligible action is simply absent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AllocationProblem:
    user: np.ndarray  # (A,) int64, sorted ascending
    value: np.ndarray  # (A,) expected incremental margin of the action
    cost: np.ndarray  # (A,) expected offer cost charged to the budget
    channel: np.ndarray  # (A,) int channel code
    budget: float
    channel_quota: np.ndarray  # (C,) max sends per channel; np.inf when unlimited

    def __post_init__(self) -> None:
        n = len(self.user)
        for name in ("value", "cost", "channel"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"AllocationProblem.{name} has {len(getattr(self, name))} rows, user has {n}")
        if n and np.any(np.diff(self.user) < 0):
            raise ValueError("AllocationProblem.user must be sorted ascending (actions grouped by user)")
        if np.any(self.cost < 0):
            raise ValueError("AllocationProblem.cost must be >= 0")


@dataclass(frozen=True)
class AllocationResult:
    chosen: np.ndarray  # (A,) bool: the action is sent
    objective: float  # total value of the chosen actions
    spend: float
    channel_counts: np.ndarray  # (C,)
    lam: float
    mu: np.ndarray
    dual_bound: float  # upper bound on the LP relaxation
    seconds: float

    @property
    def gap(self) -> float:
        """Relative gap to the dual (LP) bound; 0 when both are 0."""
        if self.dual_bound <= 0:
            return 0.0
        return max(0.0, (self.dual_bound - self.objective) / self.dual_bound)


def _segment_choice(user_starts: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per user, the index of the best action and its score (first index on ties)."""
    best = np.maximum.reduceat(score, user_starts)  # (U,)
    counts = np.diff(np.append(user_starts, len(score)))
    is_best = score == np.repeat(best, counts)
    # First best index per user: positions of is_best, first one at or after each start.
    idx = np.flatnonzero(is_best)
    first = idx[np.searchsorted(idx, user_starts)]
    return first, best


def _choose(p: AllocationProblem, starts: np.ndarray, lam: float, mu: np.ndarray) -> tuple[np.ndarray, float]:
    score = p.value - lam * p.cost - mu[p.channel]
    first, best = _segment_choice(starts, score)
    take = first[best > 0]
    dual = float(np.maximum(best, 0.0).sum())
    return take, dual


def allocate(problem: AllocationProblem, iterations: int = 40, quota_rounds: int = 6) -> AllocationResult:
    started = time.perf_counter()
    p = problem
    n_channels = len(p.channel_quota)
    chosen = np.zeros(len(p.user), dtype=bool)
    if len(p.user) == 0:
        return AllocationResult(chosen, 0.0, 0.0, np.zeros(n_channels, int), 0.0, np.zeros(n_channels), 0.0, 0.0)
    # Actions that cannot be worth sending at any multiplier are dropped up front (most of a real problem).
    keep = np.flatnonzero(p.value > 0)
    sub = AllocationProblem(p.user[keep], p.value[keep], p.cost[keep], p.channel[keep], p.budget, p.channel_quota)
    if len(keep) == 0:
        return AllocationResult(chosen, 0.0, 0.0, np.zeros(n_channels, int), 0.0, np.zeros(n_channels), 0.0, time.perf_counter() - started)
    starts = np.flatnonzero(np.r_[True, sub.user[1:] != sub.user[:-1]])
    mu = np.zeros(n_channels)

    def fits_budget(lam: float) -> tuple[bool, np.ndarray]:
        take, _ = _choose(sub, starts, lam, mu)
        return sub.cost[take].sum() <= sub.budget, take

    def solve_lam() -> tuple[float, np.ndarray]:
        ok, take = fits_budget(0.0)
        if ok:
            return 0.0, take
        hi = 1.0
        while not fits_budget(hi)[0]:
            hi *= 4.0
            if hi > 1e12:
                break
        lo = 0.0
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if fits_budget(mid)[0]:
                hi = mid
            else:
                lo = mid
        return hi, fits_budget(hi)[1]

    lam, take = solve_lam()
    for _ in range(quota_rounds):
        counts = np.bincount(sub.channel[take], minlength=n_channels)
        over = np.flatnonzero(counts > p.channel_quota)
        if len(over) == 0:
            break
        for c in over:  # raise the channel's price until its quota holds, at the current lam
            lo, hi = mu[c], max(1.0, mu[c] * 2)
            while True:
                mu[c] = hi
                t, _ = _choose(sub, starts, lam, mu)
                if (sub.channel[t] == c).sum() <= p.channel_quota[c] or hi > 1e12:
                    break
                hi *= 4.0
            for _ in range(iterations):
                mu[c] = 0.5 * (lo + hi)
                t, _ = _choose(sub, starts, lam, mu)
                if (sub.channel[t] == c).sum() <= p.channel_quota[c]:
                    hi = mu[c]
                else:
                    lo = mu[c]
            mu[c] = hi
        lam, take = solve_lam()
    _, dual_sum = _choose(sub, starts, lam, mu)
    finite = np.isfinite(p.channel_quota)
    dual_bound = dual_sum + lam * p.budget + float((mu[finite] * p.channel_quota[finite]).sum())
    take = _fill_leftover(sub, starts, take)
    chosen[keep[take]] = True
    return AllocationResult(
        chosen=chosen,
        objective=float(p.value[chosen].sum()),
        spend=float(p.cost[chosen].sum()),
        channel_counts=np.bincount(p.channel[chosen], minlength=n_channels),
        lam=lam,
        mu=mu,
        dual_bound=dual_bound,
        seconds=time.perf_counter() - started,
    )


def _fill_leftover(p: AllocationProblem, starts: np.ndarray, take: np.ndarray) -> np.ndarray:
    """Spend what the multipliers left unused: give users who got nothing their best action that still fits,
    best value per cost first (budget and quotas respected)."""
    spend = p.cost[take].sum()
    counts = np.bincount(p.channel[take], minlength=len(p.channel_quota))
    served = np.zeros(len(starts), dtype=bool)
    served[np.searchsorted(starts, take, side="right") - 1] = True
    first, _ = _segment_choice(starts, p.value)
    candidates = first[~served]
    if len(candidates) == 0:
        return take
    ratio = p.value[candidates] / np.maximum(p.cost[candidates], 1e-12)
    extra = []
    for i in candidates[np.argsort(-ratio, kind="stable")]:
        c = p.channel[i]
        if spend + p.cost[i] <= p.budget and counts[c] + 1 <= p.channel_quota[c]:
            extra.append(i)
            spend += p.cost[i]
            counts[c] += 1
        if len(extra) > 10_000:  # the dual solution is already within a hair of optimal at scale
            break
    return np.concatenate([take, np.array(extra, dtype=take.dtype)]) if extra else take


def lp_relaxation_bound(p: AllocationProblem) -> float:
    """The LP relaxation's optimum with HiGHS (for checking the dual bound on small/medium instances)."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, vstack

    n = len(p.user)
    users, user_row = np.unique(p.user, return_inverse=True)
    one_per_user = csr_matrix((np.ones(n), (user_row, np.arange(n))), shape=(len(users), n))
    budget_row = csr_matrix(p.cost.reshape(1, -1))
    rows, rhs = [one_per_user, budget_row], [np.ones(len(users)), [p.budget]]
    for c, quota in enumerate(p.channel_quota):
        if np.isfinite(quota):
            rows.append(csr_matrix((p.channel == c).astype(float).reshape(1, -1)))
            rhs.append([quota])
    res = linprog(-p.value, A_ub=vstack(rows), b_ub=np.concatenate(rhs), bounds=(0, 1), method="highs")
    if res.status != 0:
        raise RuntimeError(f"HiGHS LP failed: {res.message}")
    return float(-res.fun)


def exact_optimum(p: AllocationProblem) -> float:
    """The integer optimum with HiGHS MILP (small instances: tests)."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix

    n = len(p.user)
    users, user_row = np.unique(p.user, return_inverse=True)
    constraints = [
        LinearConstraint(csr_matrix((np.ones(n), (user_row, np.arange(n))), shape=(len(users), n)), 0, 1),
        LinearConstraint(p.cost.reshape(1, -1), 0, p.budget),
    ]
    for c, quota in enumerate(p.channel_quota):
        if np.isfinite(quota):
            constraints.append(LinearConstraint((p.channel == c).astype(float).reshape(1, -1), 0, quota))
    res = milp(-p.value, constraints=constraints, integrality=np.ones(n), bounds=Bounds(0, 1))
    if res.status != 0:
        raise RuntimeError(f"HiGHS MILP failed: {res.message}")
    return float(-res.fun)
