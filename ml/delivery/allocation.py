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


EXACT_MAX_ACTIONS = 5_000  # below this HiGHS solves the integer problem exactly in well under a second


def allocate(problem: AllocationProblem, iterations: int = 40, quota_rounds: int = 6) -> AllocationResult:
    """Dual (Lagrangian) solution with a greedy repair; small problems are then solved exactly by HiGHS,
    where an integrality gap of one user would otherwise be a visible share of the value."""
    result = _allocate_dual(problem, iterations, quota_rounds)
    positive = int((problem.value > 0).sum())
    if 0 < positive <= EXACT_MAX_ACTIONS:
        started = time.perf_counter()
        chosen = _exact_choice(problem)
        if chosen is not None:
            p = problem
            return AllocationResult(
                chosen=chosen,
                objective=float(p.value[chosen].sum()),
                spend=float(p.cost[chosen].sum()),
                channel_counts=np.bincount(p.channel[chosen], minlength=len(p.channel_quota)),
                lam=result.lam,
                mu=result.mu,
                dual_bound=result.dual_bound,
                seconds=result.seconds + time.perf_counter() - started,
            )
    return result


def _allocate_dual(problem: AllocationProblem, iterations: int = 40, quota_rounds: int = 6) -> AllocationResult:
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
    take = _enforce_quotas(sub, take)
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


def _enforce_quotas(p: AllocationProblem, take: np.ndarray) -> np.ndarray:
    """If the multiplier search ended with a channel over its quota, drop that channel's weakest sends."""
    keep = np.ones(len(take), dtype=bool)
    for c, quota in enumerate(p.channel_quota):
        on_c = np.flatnonzero(p.channel[take] == c)
        if np.isfinite(quota) and len(on_c) > quota:
            weakest = on_c[np.argsort(p.value[take[on_c]], kind="stable")][: len(on_c) - int(quota)]
            keep[weakest] = False
    return take[keep]


def _fill_leftover(p: AllocationProblem, starts: np.ndarray, take: np.ndarray, passes: int = 3, limit: int = 20_000) -> np.ndarray:
    """Spend what the multipliers left unused, greedily: for each user, move to a better action (or from
    nothing to one) when budget and quotas allow, best extra value per extra cost first. At scale the dual
    solution is already within a hair of the bound; on a few hundred users this closes most of the gap."""
    n_users = len(starts)
    user_pos = np.searchsorted(starts, np.arange(len(p.user)), side="right") - 1  # (A,) user slot
    current = np.full(n_users, -1, dtype=np.int64)
    current[user_pos[take]] = take
    spend = float(p.cost[take].sum())
    counts = np.bincount(p.channel[take], minlength=len(p.channel_quota)).astype(float)
    for _ in range(passes):
        cur = current[user_pos]
        has = cur >= 0
        cur_v = np.where(has, p.value[np.maximum(cur, 0)], 0.0)
        cur_c = np.where(has, p.cost[np.maximum(cur, 0)], 0.0)
        dv = p.value - cur_v
        dc = p.cost - cur_c
        cand = np.flatnonzero(dv > 1e-12)
        if len(cand) == 0:
            break
        priority = np.where(dc[cand] <= 0, np.inf, dv[cand] / np.maximum(dc[cand], 1e-12))
        order = cand[np.argsort(-priority, kind="stable")][:limit]
        changed = False
        touched = np.zeros(n_users, dtype=bool)
        for a in order:
            u = user_pos[a]
            if touched[u]:
                continue
            old = current[u]
            extra = p.cost[a] - (p.cost[old] if old >= 0 else 0.0)
            new_c = p.channel[a]
            if spend + extra > p.budget + 1e-12:
                continue
            if (old < 0 or p.channel[old] != new_c) and counts[new_c] + 1 > p.channel_quota[new_c]:
                continue
            if old >= 0:
                counts[p.channel[old]] -= 1
            counts[new_c] += 1
            spend += extra
            current[u] = a
            touched[u] = True
            changed = True
        if not changed:
            break
    return current[current >= 0]


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
    chosen = _exact_choice(p, time_limit=60.0)
    if chosen is None:
        raise RuntimeError("HiGHS MILP found no solution")
    return float(p.value[chosen].sum())


def _exact_choice(p: AllocationProblem, time_limit: float = 2.0) -> np.ndarray | None:
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
    # Only positive-value actions can be in an optimal plan; fixing the rest to 0 shrinks the search.
    upper = (p.value > 0).astype(float)
    res = milp(
        -p.value,
        constraints=constraints,
        integrality=np.ones(n),
        bounds=Bounds(0, upper),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-7},
    )
    if res.x is None:
        return None
    return res.x > 0.5
