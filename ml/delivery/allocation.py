"""Budgeted allocation of promotion actions: a multiple-choice knapsack solved by Lagrangian relaxation.

Each user has candidate actions (product + offer + channel + send hour) with an expected incremental margin
(`value`) and an expected offer cost. We pick at most `max_per_user` actions per user so that the total
expected cost stays within the day's budget and per-channel quotas (e.g. SMS) hold, maximizing total value.
Consent, frequency caps and eligibility are hard rules applied before anything else, and an action whose
value is not positive is never chosen.

Why Lagrangian: pricing the budget (λ) and the channel quotas (μ_c) decouples users, so each user just
takes their best action by `value − λ·cost − μ_channel` if positive. That is one vectorized segmented argmax
per (λ, μ), and the dual gives a certified upper bound (= the LP relaxation bound at the optimal
multipliers), so the optimality gap is known, not hoped for. With a million users only a handful of users
sit "between" two decisions at the optimal multipliers, so the integer solution is within a tiny fraction of
the LP bound after a greedy fill of the leftover budget.

Speed at 1M users x 20 actions comes from never bisecting over all rows: multipliers are first estimated
on a user sample, then every user whose decision is the same at all corners of a small box around the
estimate is frozen (a user's best value is convex piecewise-linear in (λ, μ), so a decision optimal at
every corner is optimal inside the box), and the exact search runs on the few remaining users.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp


@dataclass(frozen=True)
class CandidateSet:
    """Flat, CSR-like candidate actions: row i is one action for user `user_index[i]` (sorted ascending)."""

    user_index: np.ndarray  # (N,) int, sorted ascending, in [0, n_users)
    value: np.ndarray  # (N,) float: expected incremental margin of the action
    cost: np.ndarray  # (N,) float >= 0: expected offer cost (money)
    channel: np.ndarray  # (N,) int code in [0, n_channels)
    n_users: int
    n_channels: int
    eligible: np.ndarray | None = None  # (N,) bool: quiet hours, product rules... applied upstream
    consent: np.ndarray | None = None  # (n_users, n_channels) bool: hard rule per channel
    remaining_cap: np.ndarray | None = None  # (n_users,) int: sends left under the frequency cap (0 = none today)


@dataclass(frozen=True)
class AllocationConfig:
    """The day's constraints and the solver's knobs."""

    budget: float
    max_per_user: int = 1
    channel_quota: Mapping[int, float] = field(default_factory=dict)  # channel code -> max sends today
    compute_lp_bound: bool = True
    lp_max_variables: int = 2_000_000  # above this the certified Lagrangian dual bound replaces HiGHS
    # HiGHS's time on an LP depends on more than its size (a 100k-user day's plan ran over 10 minutes in it,
    # the 2M-variable bench instance takes 15 s); past this the dual bound is certified instead.
    lp_time_limit_s: float = 60.0
    sample_users: int = 40_000  # users in the multiplier-estimation sample (only for large problems)
    box_width: float = 0.03  # relative half-width of the freezing box around the sample's multipliers
    seed: int = 0


@dataclass(frozen=True)
class AllocationResult:
    """What was chosen and how good it provably is."""

    chosen: np.ndarray  # (n_users, max_per_user) int64: candidate row indices, -1 padded
    objective: float  # total value of the chosen actions
    spend: float  # total expected cost
    budget: float
    lambda_budget: float  # price of one unit of budget at the solution
    mu_channel: np.ndarray  # (n_channels,) price of one send per channel quota
    channel_counts: np.ndarray  # (n_channels,) sends per channel
    lp_bound: float  # upper bound on the best achievable objective
    lp_bound_method: str  # "highs_lp", "lagrangian_dual", "milp" or "none"
    gap: float  # (lp_bound - objective) / lp_bound; 0 when the bound is 0
    solve_seconds: float  # allocation time, excluding the bound
    bound_seconds: float
    method: str  # "lagrangian" or "milp"


class _OutOfBox(Exception):
    """The optimal multipliers are outside the freezing box: widen it."""


@dataclass
class _Arrays:
    """Kept candidate rows grouped in per-user segments (only users with at least one kept row)."""

    value: np.ndarray  # (M,) float64
    cost: np.ndarray  # (M,) float64
    channel: np.ndarray  # (M,) int64
    starts: np.ndarray  # (S,) segment start offsets
    seg_len: np.ndarray  # (S,)
    seg_id: np.ndarray  # (M,) segment of each row
    seg_limit: np.ndarray  # (S,) max actions for that user today
    k_max: int

    @property
    def n_segments(self) -> int:
        return len(self.starts)

    def subset(self, seg_mask: np.ndarray) -> tuple[_Arrays, np.ndarray]:
        """Keep the segments in `seg_mask`; returns the sub-arrays and the kept row positions."""
        rows = np.flatnonzero(np.repeat(seg_mask, self.seg_len))
        seg_len = self.seg_len[seg_mask]
        starts = np.zeros(len(seg_len), dtype=np.int64)
        np.cumsum(seg_len[:-1], out=starts[1:])
        sub = _Arrays(
            value=self.value[rows],
            cost=self.cost[rows],
            channel=self.channel[rows],
            starts=starts,
            seg_len=seg_len,
            seg_id=np.repeat(np.arange(len(seg_len), dtype=np.int64), seg_len),
            seg_limit=self.seg_limit[seg_mask],
            k_max=self.k_max,
        )
        return sub, rows


def validate_candidates(cands: CandidateSet) -> None:
    """Raise ValueError naming the field and the first bad row when the candidate arrays are malformed."""
    n = len(cands.user_index)
    for name in ("value", "cost", "channel", "eligible"):
        arr = getattr(cands, name)
        if arr is not None and np.shape(arr) != (n,):
            raise ValueError(f"candidates.{name} has shape {np.shape(arr)}, expected ({n},) like user_index")
    if cands.n_users < 0 or cands.n_channels < 1:
        raise ValueError(f"n_users={cands.n_users}, n_channels={cands.n_channels}: need n_users >= 0, n_channels >= 1")
    if cands.consent is not None and np.shape(cands.consent) != (cands.n_users, cands.n_channels):
        raise ValueError(
            f"candidates.consent has shape {np.shape(cands.consent)}, expected ({cands.n_users}, {cands.n_channels})"
        )
    if cands.remaining_cap is not None and np.shape(cands.remaining_cap) != (cands.n_users,):
        raise ValueError(f"candidates.remaining_cap has shape {np.shape(cands.remaining_cap)}, expected ({cands.n_users},)")
    if n == 0:
        return
    users = np.asarray(cands.user_index)
    if not np.issubdtype(users.dtype, np.integer):
        raise ValueError(f"candidates.user_index must be integers, got {users.dtype}")
    if users[0] < 0 or users[-1] >= cands.n_users:
        raise ValueError(f"candidates.user_index out of range [0, {cands.n_users})")
    unsorted = np.flatnonzero(users[1:] < users[:-1])
    if len(unsorted):
        raise ValueError(f"candidates.user_index must be sorted ascending; row {unsorted[0] + 1} breaks the order")
    for name in ("value", "cost"):
        bad = np.flatnonzero(~np.isfinite(getattr(cands, name)))
        if len(bad):
            raise ValueError(f"candidates.{name} is not finite at row {bad[0]}")
    bad = np.flatnonzero(np.asarray(cands.cost) < 0)
    if len(bad):
        raise ValueError(f"candidates.cost is negative at row {bad[0]} ({cands.cost[bad[0]]})")
    ch = np.asarray(cands.channel)
    bad = np.flatnonzero((ch < 0) | (ch >= cands.n_channels))
    if len(bad):
        raise ValueError(f"candidates.channel out of range [0, {cands.n_channels}) at row {bad[0]} ({ch[bad[0]]})")


def _validate_config(cfg: AllocationConfig, n_channels: int) -> np.ndarray:
    """Check the config and return per-channel quotas (inf where none)."""
    if not np.isfinite(cfg.budget) or cfg.budget < 0:
        raise ValueError(f"config.budget must be a finite number >= 0, got {cfg.budget}")
    if cfg.max_per_user < 1:
        raise ValueError(f"config.max_per_user must be >= 1, got {cfg.max_per_user}")
    quotas = np.full(n_channels, np.inf)
    for ch, q in cfg.channel_quota.items():
        if not 0 <= int(ch) < n_channels:
            raise ValueError(f"config.channel_quota has channel {ch}, outside [0, {n_channels})")
        if q < 0:
            raise ValueError(f"config.channel_quota[{ch}] must be >= 0, got {q}")
        quotas[int(ch)] = float(q)
    return quotas


def _keep_mask(cands: CandidateSet) -> np.ndarray:
    """Rows that may be chosen at all: eligible, consented channel, user under cap, positive value."""
    keep = np.asarray(cands.value) > 0
    if cands.eligible is not None:
        keep &= np.asarray(cands.eligible, dtype=bool)
    users = np.asarray(cands.user_index)
    if cands.consent is not None:
        flat = np.asarray(cands.consent, dtype=bool).ravel()
        keep &= flat[users.astype(np.int64) * cands.n_channels + np.asarray(cands.channel)]
    if cands.remaining_cap is not None:
        keep &= (np.asarray(cands.remaining_cap) > 0)[users]
    return keep


def _build_arrays(cands: CandidateSet, rows: np.ndarray, max_per_user: int) -> tuple[_Arrays, np.ndarray]:
    """Group the kept `rows` into user segments; returns the arrays and the user of each segment."""
    users = np.asarray(cands.user_index)[rows]
    new_seg = np.ones(len(rows), dtype=bool)
    new_seg[1:] = users[1:] != users[:-1]
    starts = np.flatnonzero(new_seg)
    seg_user = users[starts].astype(np.int64)
    seg_len = np.diff(np.append(starts, len(rows)))
    limit = np.full(len(starts), max_per_user, dtype=np.int64)
    if cands.remaining_cap is not None:
        limit = np.minimum(limit, np.asarray(cands.remaining_cap, dtype=np.int64)[seg_user])
    arrays = _Arrays(
        value=np.asarray(cands.value, dtype=np.float64)[rows],
        cost=np.asarray(cands.cost, dtype=np.float64)[rows],
        channel=np.asarray(cands.channel)[rows].astype(np.int64),
        starts=starts.astype(np.int64),
        seg_len=seg_len,
        seg_id=np.cumsum(new_seg, dtype=np.int64) - 1,
        seg_limit=limit,
        k_max=int(min(max_per_user, limit.max(initial=1))),
    )
    return arrays, seg_user


def _base_values(arr: _Arrays, mu: np.ndarray) -> np.ndarray:
    """value − μ_channel per row (the part of the reduced value that does not depend on λ)."""
    if not np.any(mu):
        return arr.value
    return arr.value - mu[arr.channel]


def _decide(arr: _Arrays, base: np.ndarray, lam: float) -> np.ndarray:
    """(M,) bool: each user's best ≤ limit rows by base − λ·cost, only those with a positive reduced value."""
    reduced = arr.cost * (-lam)
    reduced += base
    mask = np.zeros(len(reduced), dtype=bool)
    if len(reduced) == 0:
        return mask
    for round_index in range(arr.k_max):
        seg_max = np.maximum.reduceat(reduced, arr.starts)
        allowed = (seg_max > 0) & (arr.seg_limit > round_index)
        target = np.repeat(np.where(allowed, seg_max, np.inf), arr.seg_len)
        hits = np.flatnonzero(reduced == target)
        if len(hits) == 0:
            break
        seg_of_hit = arr.seg_id[hits]
        first = np.ones(len(hits), dtype=bool)
        first[1:] = seg_of_hit[1:] != seg_of_hit[:-1]
        picked = hits[first]
        mask[picked] = True
        if round_index + 1 < arr.k_max:
            reduced[picked] = -np.inf
    return mask


def _usage(arr: _Arrays, mask: np.ndarray, n_channels: int) -> tuple[float, np.ndarray]:
    return float(arr.cost[mask].sum()), np.bincount(arr.channel[mask], minlength=n_channels).astype(np.float64)


def _solve_lambda(
    arr: _Arrays,
    base: np.ndarray,
    budget: float,
    box: tuple[float, float],
    check_box: bool,
    tol: float,
    guess: float | None = None,
) -> tuple[float, float, np.ndarray]:
    """Smallest λ in `box` with spend ≤ budget, by bisection that freezes settled users.

    `guess` (the λ of a nearby μ) starts from a narrow bracket around it, widened geometrically.
    Returns (λ_lo, λ_hi, decisions at λ_hi): spend(λ_hi) ≤ budget < spend(λ_lo) unless λ_hi == λ_lo.
    """
    lo_box, hi_box = box
    if guess is not None and lo_box < guess < hi_box:
        step = guess * 1e-3
        while True:
            lam_hi = min(guess + step, hi_box)
            mask_hi = _decide(arr, base, lam_hi)
            if arr.cost[mask_hi].sum() <= budget or lam_hi >= hi_box:
                break
            step *= 8
        step = guess * 1e-3
        while True:
            lam_lo = max(guess - step, lo_box)
            mask_lo = _decide(arr, base, lam_lo)
            if arr.cost[mask_lo].sum() > budget or lam_lo <= lo_box:
                break
            step *= 8
    else:
        lam_lo, lam_hi = lo_box, hi_box
        mask_hi = _decide(arr, base, lam_hi)
        mask_lo = _decide(arr, base, lam_lo) if lam_lo < lam_hi else mask_hi
    if arr.cost[mask_hi].sum() > budget:
        raise _OutOfBox("lambda above the box")
    if lam_hi <= lam_lo:
        return lam_hi, lam_hi, mask_hi
    if arr.cost[mask_lo].sum() <= budget:
        if check_box and lam_lo > 0:
            raise _OutOfBox("lambda below the box")
        return lam_lo, lam_lo, mask_lo
    result = mask_hi.copy()
    cur, cur_base, rows = arr, base, np.arange(len(base))
    frozen_spend = 0.0
    for _ in range(200):
        if lam_hi - lam_lo <= tol * lam_hi:
            break
        moving = np.logical_or.reduceat(mask_lo != mask_hi, cur.starts)
        if int(moving.sum()) <= 1:  # one user straddles the budget: the fill decides their action
            break
        n_moving = int(moving.sum())
        if n_moving < 0.5 * cur.n_segments:
            result[rows] = mask_hi
            settled_rows = ~np.repeat(moving, cur.seg_len)
            frozen_spend += float(cur.cost[mask_hi & settled_rows].sum())
            cur, keep_rows = cur.subset(moving)
            cur_base, rows = cur_base[keep_rows], rows[keep_rows]
            mask_lo, mask_hi = mask_lo[keep_rows], mask_hi[keep_rows]
        lam_mid = 0.5 * (lam_lo + lam_hi)
        mask_mid = _decide(cur, cur_base, lam_mid)
        if frozen_spend + cur.cost[mask_mid].sum() <= budget:
            lam_hi, mask_hi = lam_mid, mask_mid
        else:
            lam_lo, mask_lo = lam_mid, mask_mid
    result[rows] = mask_hi
    return lam_lo, lam_hi, result


@dataclass
class _Solution:
    lam_lo: float
    lam_hi: float
    mu: np.ndarray
    mask: np.ndarray  # decisions at (lam_hi, mu): feasible


def _solve_multipliers(
    arr: _Arrays,
    budget: float,
    quotas: np.ndarray,
    lam_box: tuple[float, float],
    mu_box: np.ndarray,
    check_box: bool,
    tol: float,
) -> _Solution:
    """Nested search: for quota multipliers μ (coordinate bisection) the inner λ bisection meets the budget.

    min over λ of the dual is convex in μ, and its slope in μ_c is quota_c − sends_c at the inner optimum,
    so sends_c falls as μ_c rises and bisection finds the price at which the quota just holds.
    """
    n_channels = len(quotas)
    mu_tol = max(tol, 1e-9)  # each μ step costs a λ search; beyond this the fill covers the last user
    mu = mu_box[:, 1].copy()
    last_lam: list[float] = []

    def evaluate(mu_vec: np.ndarray) -> _Solution:
        base = _base_values(arr, mu_vec)
        guess = last_lam[-1] if last_lam else None
        lo, hi, mask = _solve_lambda(arr, base, budget, lam_box, check_box, tol, guess)
        last_lam.append(hi)
        return _Solution(lo, hi, mu_vec.copy(), mask)

    def sends(solution: _Solution, c: int) -> float:
        return float(np.count_nonzero(arr.channel[solution.mask] == c))

    searchable = [c for c in range(n_channels) if np.isfinite(quotas[c]) and mu_box[c, 1] > mu_box[c, 0]]
    best = evaluate(mu)
    rounds = 1 if len(searchable) <= 1 else 8
    for _ in range(rounds):
        changed = False
        for c in searchable:
            lo, hi = float(mu_box[c, 0]), float(mu_box[c, 1])
            probe = mu.copy()
            probe[c] = hi
            at_hi = evaluate(probe)
            if sends(at_hi, c) > quotas[c]:
                raise _OutOfBox(f"mu[{c}] above the box")
            probe[c] = lo
            at_lo = evaluate(probe)
            if sends(at_lo, c) <= quotas[c]:
                if check_box and lo > 0:
                    raise _OutOfBox(f"mu[{c}] below the box")
                at_hi, hi = at_lo, lo
            else:
                for _ in range(200):
                    if hi - lo <= mu_tol * hi:
                        break
                    probe[c] = 0.5 * (lo + hi)
                    at_mid = evaluate(probe)
                    if sends(at_mid, c) <= quotas[c]:
                        hi, at_hi = float(probe[c]), at_mid
                    else:
                        lo = float(probe[c])
            changed |= hi != mu[c]
            mu[c] = hi
            best = at_hi
        if not changed:
            break
    counts = _usage(arr, best.mask, n_channels)[1]
    if check_box and np.any(counts > quotas):
        raise _OutOfBox("a quota that the box did not price is exceeded")
    return best


def _multiplier_caps(arr: _Arrays, n_channels: int) -> tuple[float, np.ndarray]:
    """λ and μ_c above which nothing (with cost > 0, resp. on channel c) can have a positive reduced value."""
    priced = arr.cost > 0
    lam_max = float((arr.value[priced] / arr.cost[priced]).max(initial=0.0)) * (1 + 1e-9) + 1e-12
    mu_max = np.array([arr.value[arr.channel == c].max(initial=0.0) for c in range(n_channels)])
    return lam_max, mu_max * (1 + 1e-9) + 1e-12


def _full_box(arr: _Arrays, quotas: np.ndarray) -> tuple[tuple[float, float], np.ndarray]:
    lam_max, mu_max = _multiplier_caps(arr, len(quotas))
    mu_box = np.zeros((len(quotas), 2))
    mu_box[:, 1] = np.where(np.isfinite(quotas), mu_max, 0.0)
    return (0.0, lam_max), mu_box


def _box_corners(lam_box: tuple[float, float], mu_box: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """All corners of the box; channels with a zero-width μ range add no corners."""
    axes = [sorted({lam_box[0], lam_box[1]})]
    axes += [sorted({float(lo), float(hi)}) for lo, hi in mu_box]
    return [(point[0], np.array(point[1:])) for point in itertools.product(*axes)]


def _solve_in_box(
    arr: _Arrays, budget: float, quotas: np.ndarray, estimate: _Solution, width: float, tol: float
) -> _Solution:
    """Freeze users whose decision is the same at every corner of a box around `estimate`, solve the rest.

    The box widens (x4) when the optimum lies outside it; past 100 % the plain search runs on all rows.
    """
    lam_hat, mu_hat = estimate.lam_hi, estimate.mu
    lam_cap, mu_cap = 0.0, np.zeros(len(quotas))
    widened = False
    while width < 1.0:
        if widened and not lam_cap:
            lam_cap, mu_cap = _multiplier_caps(arr, len(quotas))
        # A multiplier that was 0 in the estimate gets a range only once the first box proved too small.
        lam_box = (lam_hat * (1 - width), lam_hat * (1 + width) if lam_hat > 0 else width * lam_cap * widened)
        mu_width = min(2 * width, 0.99)  # quota prices are estimated less precisely than λ
        mu_upper = np.where(mu_hat > 0, mu_hat * (1 + mu_width), width * mu_cap * widened * np.isfinite(quotas))
        mu_box = np.stack([mu_hat * (1 - mu_width), mu_upper], axis=1)
        bases: dict[bytes, np.ndarray] = {}
        corners = []
        for lam_corner, mu_corner in _box_corners(lam_box, mu_box):
            key = mu_corner.tobytes()
            if key not in bases:
                bases[key] = _base_values(arr, mu_corner)
            base = bases[key]
            corners.append(_decide(arr, base, lam_corner))
        differs = np.zeros(len(arr.value), dtype=bool)
        for mask in corners[1:]:
            differs |= mask != corners[0]
        moving = np.logical_or.reduceat(differs, arr.starts)
        settled_rows = corners[0] & ~np.repeat(moving, arr.seg_len)
        settled_spend, settled_counts = _usage(arr, settled_rows, len(quotas))
        sub, rows = arr.subset(moving)
        try:
            part = _solve_multipliers(sub, budget - settled_spend, quotas - settled_counts, lam_box, mu_box, True, tol)
        except _OutOfBox:
            width, widened = width * 4, True
            continue
        settled_rows[rows] = part.mask
        return _Solution(part.lam_lo, part.lam_hi, part.mu, settled_rows)
    lam_box, mu_box = _full_box(arr, quotas)
    return _solve_multipliers(arr, budget, quotas, lam_box, mu_box, False, tol)


def _solve_large(arr: _Arrays, budget: float, quotas: np.ndarray, cfg: AllocationConfig, tol: float) -> _Solution:
    """Zoom in: multipliers from a user sample, refined on an 8x larger sample, then exact on everyone.

    Budget and quotas are scaled to each sample's share of users; each stage only searches a box around
    the previous stage's multipliers, so the full data is touched a handful of times.
    """
    draw = np.random.default_rng(cfg.seed).random(arr.n_segments)  # nested samples: u < share
    estimate: _Solution | None = None
    for size, width in ((cfg.sample_users, 0.0), (8 * cfg.sample_users, cfg.box_width)):
        if size > arr.n_segments / 2:
            break
        sample, _ = arr.subset(draw < size / arr.n_segments)
        scale = sample.n_segments / arr.n_segments
        if estimate is None:
            lam_box, mu_box = _full_box(sample, quotas)
            estimate = _solve_multipliers(sample, budget * scale, quotas * scale, lam_box, mu_box, False, 1e-4)
        else:
            estimate = _solve_in_box(sample, budget * scale, quotas * scale, estimate, width, 1e-6)
    if estimate is None:
        lam_box, mu_box = _full_box(arr, quotas)
        return _solve_multipliers(arr, budget, quotas, lam_box, mu_box, False, tol)
    return _solve_in_box(arr, budget, quotas, estimate, cfg.box_width / 4, tol)


def _repair_and_fill(arr: _Arrays, mask: np.ndarray, budget: float, quotas: np.ndarray, lam: float) -> np.ndarray:
    """Make the decisions feasible (drop the least efficient sends) and spend leftover budget greedily.

    The fill adds an action for users with a free slot, or (when a user may get one action) swaps to a more
    valuable action when the extra cost fits; one move per user, largest value gained first.
    """
    n_channels = len(quotas)
    spend, counts = _usage(arr, mask, n_channels)
    if spend > budget or np.any(counts > quotas):
        picked = np.flatnonzero(mask)
        efficiency = arr.value[picked] - lam * arr.cost[picked]
        order = picked[np.lexsort((picked, efficiency))]  # least efficient first
        for c in np.flatnonzero(counts > quotas):
            on_c = order[arr.channel[order] == c]
            mask[on_c[: int(counts[c] - np.floor(quotas[c]))]] = False
        spend, counts = _usage(arr, mask, n_channels)
        if spend > budget:
            remaining = order[mask[order]]
            overshoot = np.cumsum(arr.cost[remaining]) - (spend - budget)
            mask[remaining[: int(np.searchsorted(overshoot, 0.0, side="left")) + 1]] = False
            spend, counts = _usage(arr, mask, n_channels)
    if len(mask) == 0:
        return mask
    n_selected = np.add.reduceat(mask.astype(np.int64), arr.starts)
    left = budget - spend
    current = np.full(arr.n_segments, -1, dtype=np.int64)  # the user's single pick, for swaps
    picked = np.flatnonzero(mask)
    current[arr.seg_id[picked]] = picked
    has_current = current >= 0
    row_cur_value = np.repeat(np.where(has_current, arr.value[np.maximum(current, 0)], 0.0), arr.seg_len)
    row_cur_cost = np.repeat(np.where(has_current, arr.cost[np.maximum(current, 0)], 0.0), arr.seg_len)
    free_slot = np.repeat(n_selected < arr.seg_limit, arr.seg_len)
    swappable = np.repeat((n_selected == 1) & (arr.seg_limit == 1), arr.seg_len)
    add = ~mask & free_slot & (arr.cost <= left)
    swap = ~mask & swappable & (arr.value > row_cur_value) & (arr.cost - row_cur_cost <= left)
    cands = np.flatnonzero(add | swap)
    is_swap = swap[cands]
    gain = arr.value[cands] - np.where(is_swap, row_cur_value[cands], 0.0)
    extra = arr.cost[cands] - np.where(is_swap, row_cur_cost[cands], 0.0)
    old_row = np.where(is_swap, current[arr.seg_id[cands]], -1)
    touched = np.zeros(arr.n_segments, dtype=bool)
    counts_now = counts.copy()
    block = 2048
    while len(cands):
        # What can still fit: the leftover only shrinks, so filter, then take the best few by gain.
        new_channel = arr.channel[cands]
        same_channel = (old_row >= 0) & (arr.channel[np.maximum(old_row, 0)] == new_channel)
        alive = (extra <= left) & ~touched[arr.seg_id[cands]] & (same_channel | (counts_now[new_channel] + 1 <= quotas[new_channel]))
        cands, gain, extra, old_row = cands[alive], gain[alive], extra[alive], old_row[alive]
        if len(cands) == 0:
            break
        score = gain / np.maximum(extra, 1e-12)
        top = np.argpartition(-score, block)[:block] if len(cands) > block else np.arange(len(cands))
        top = top[np.lexsort((cands[top], -score[top]))]
        for i in top.tolist():
            row, old, ch = int(cands[i]), int(old_row[i]), int(arr.channel[cands[i]])
            seg = int(arr.seg_id[row])
            moves_channel = old < 0 or int(arr.channel[old]) != ch
            if touched[seg] or extra[i] > left or (moves_channel and counts_now[ch] + 1 > quotas[ch]):
                continue
            if old >= 0:
                mask[old] = False
                counts_now[int(arr.channel[old])] -= 1
            mask[row] = True
            counts_now[ch] += 1
            left -= extra[i]
            touched[seg] = True
        done = np.zeros(len(cands), dtype=bool)
        done[top] = True
        cands, gain, extra, old_row = cands[~done], gain[~done], extra[~done], old_row[~done]
    return mask


def _dual_bound(arr: _Arrays, budget: float, quotas: np.ndarray, lam: float, mu: np.ndarray) -> float:
    """Lagrangian dual value: a valid upper bound on the LP (hence the integer) optimum for any λ, μ ≥ 0."""
    base = _base_values(arr, mu)
    mask = _decide(arr, base, lam)
    priced = np.isfinite(quotas)
    return float(lam * budget + (mu[priced] * quotas[priced]).sum() + (base[mask] - lam * arr.cost[mask]).sum())


def _constraint_matrix(arr: _Arrays, budget: float, quotas: np.ndarray) -> tuple[sparse.csr_array, np.ndarray]:
    """A x ≤ b over the kept rows: one row per user (≤ limit), the budget, one per channel with a quota."""
    m = len(arr.value)
    quota_channels = np.flatnonzero(np.isfinite(quotas))
    rows = [arr.seg_id, np.full(m, arr.n_segments)]
    cols = [np.arange(m), np.arange(m)]
    vals = [np.ones(m), arr.cost]
    for offset, c in enumerate(quota_channels):
        on_c = np.flatnonzero(arr.channel == c)
        rows.append(np.full(len(on_c), arr.n_segments + 1 + offset))
        cols.append(on_c)
        vals.append(np.ones(len(on_c)))
    n_rows = arr.n_segments + 1 + len(quota_channels)
    matrix = sparse.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, m))
    rhs = np.concatenate([arr.seg_limit.astype(np.float64), [budget], quotas[quota_channels]])
    return matrix, rhs


def _lp_relaxation_bound(arr: _Arrays, budget: float, quotas: np.ndarray, time_limit: float) -> float | None:
    """The LP relaxation optimum by HiGHS (sparse; interior point with crossover, ~8x faster than simplex
    here), or None when HiGHS runs out of `time_limit` seconds."""
    if len(arr.value) == 0:
        return 0.0
    matrix, rhs = _constraint_matrix(arr, budget, quotas)
    res = linprog(-arr.value, A_ub=matrix, b_ub=rhs, bounds=(0, 1), method="highs-ipm",
                  options={"time_limit": time_limit})
    if res.status == 1:  # iteration or time limit: not an optimum, so not a bound
        return None
    if res.status != 0:
        raise RuntimeError(f"HiGHS LP failed: {res.message}")
    return float(-res.fun)


def _prepare(cands: CandidateSet, cfg: AllocationConfig) -> tuple[np.ndarray, _Arrays, np.ndarray, np.ndarray]:
    validate_candidates(cands)
    quotas = _validate_config(cfg, cands.n_channels)
    rows = np.flatnonzero(_keep_mask(cands))
    arr, seg_user = _build_arrays(cands, rows, cfg.max_per_user)
    return quotas, arr, rows, seg_user


def _result(
    cands: CandidateSet,
    cfg: AllocationConfig,
    prepared: tuple[np.ndarray, _Arrays, np.ndarray, np.ndarray],
    mask: np.ndarray,
    multipliers: tuple[float, np.ndarray],
    bound: tuple[float, str],
    seconds: tuple[float, float],
    method: str,
) -> AllocationResult:
    _, arr, rows, seg_user = prepared
    chosen = np.full((cands.n_users, cfg.max_per_user), -1, dtype=np.int64)
    picked = np.flatnonzero(mask)
    segs = arr.seg_id[picked]
    slot = np.zeros(len(picked), dtype=np.int64)
    if len(picked):
        new = np.ones(len(picked), dtype=bool)
        new[1:] = segs[1:] != segs[:-1]
        run_start = np.maximum.accumulate(np.where(new, np.arange(len(picked)), 0))
        slot = np.arange(len(picked)) - run_start  # rank among the user's picks, in candidate order
    chosen[seg_user[segs], slot] = rows[picked]
    objective = float(arr.value[mask].sum())
    spend, counts = _usage(arr, mask, cands.n_channels)
    gap = (bound[0] - objective) / bound[0] if bound[0] > 0 else 0.0
    return AllocationResult(
        chosen=chosen,
        objective=objective,
        spend=spend,
        budget=float(cfg.budget),
        lambda_budget=float(multipliers[0]),
        mu_channel=np.asarray(multipliers[1], dtype=np.float64),
        channel_counts=counts.astype(np.int64),
        lp_bound=float(bound[0]),
        lp_bound_method=bound[1],
        gap=float(gap),
        solve_seconds=seconds[0],
        bound_seconds=seconds[1],
        method=method,
    )


def allocate(cands: CandidateSet, cfg: AllocationConfig) -> AllocationResult:
    """Choose actions per user under budget, channel quotas, consent and caps (Lagrangian + greedy fill).

    Deterministic for the same inputs and `cfg.seed`.
    """
    start = time.perf_counter()
    prepared = _prepare(cands, cfg)
    quotas, arr, _, _ = prepared
    budget, tol = float(cfg.budget), 1e-12
    no_mu = np.zeros(cands.n_channels)
    if len(arr.value) == 0:
        solution = _Solution(0.0, 0.0, no_mu, np.zeros(0, dtype=bool))
    else:
        unconstrained = _decide(arr, arr.value, 0.0)
        spend0, counts0 = _usage(arr, unconstrained, cands.n_channels)
        if spend0 <= budget and np.all(counts0 <= quotas):
            solution = _Solution(0.0, 0.0, no_mu, unconstrained)
        elif arr.n_segments > 2 * cfg.sample_users:
            solution = _solve_large(arr, budget, quotas, cfg, tol)
        else:
            lam_box, mu_box = _full_box(arr, quotas)
            solution = _solve_multipliers(arr, budget, quotas, lam_box, mu_box, False, tol)
    mask = _repair_and_fill(arr, solution.mask.copy(), budget, quotas, solution.lam_hi)
    solve_seconds = time.perf_counter() - start

    bound_start = time.perf_counter()
    bound = (float("nan"), "none")
    if cfg.compute_lp_bound:
        lp = _lp_relaxation_bound(arr, budget, quotas, cfg.lp_time_limit_s) if len(arr.value) <= cfg.lp_max_variables else None
        if lp is not None:
            bound = (lp, "highs_lp")
        else:
            bound = (_dual_bound(arr, budget, quotas, solution.lam_hi, solution.mu), "lagrangian_dual")
    seconds = (solve_seconds, time.perf_counter() - bound_start)
    return _result(cands, cfg, prepared, mask, (solution.lam_hi, solution.mu), bound, seconds, "lagrangian")


def solve_exact_milp(cands: CandidateSet, cfg: AllocationConfig, time_limit: float = 60.0) -> AllocationResult:
    """The exact optimum by HiGHS MILP: for small instances (tests prove the allocator against it)."""
    start = time.perf_counter()
    prepared = _prepare(cands, cfg)
    quotas, arr, _, _ = prepared
    mask = np.zeros(len(arr.value), dtype=bool)
    if len(arr.value):
        matrix, rhs = _constraint_matrix(arr, float(cfg.budget), quotas)
        res = milp(
            -arr.value,
            constraints=LinearConstraint(matrix, -np.inf, rhs),
            integrality=np.ones(len(arr.value)),
            bounds=Bounds(0, 1),
            options={"time_limit": time_limit, "mip_rel_gap": 1e-9},
        )
        if res.status != 0 or res.x is None:
            raise RuntimeError(f"HiGHS MILP did not reach optimality: {res.message}")
        mask = res.x > 0.5
    objective = float(arr.value[mask].sum())
    seconds = (time.perf_counter() - start, 0.0)
    return _result(cands, cfg, prepared, mask, (float("nan"), np.zeros(cands.n_channels)), (objective, "milp"), seconds, "milp")
