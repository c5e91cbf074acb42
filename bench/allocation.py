"""Allocation at scale: 1,000,000 users x 20 candidate actions, budget and an SMS quota binding, beside a
single vectorized per-user argmax over the same arrays (the floor any allocator pays), in the same run.

    python -m bench.allocation [--users 1000000] [--actions 20] [--seed 0]

Targets: <= 5 s; gap to the dual (= LP relaxation) bound <= 0.01 %.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench.common import write_result
from ml.delivery.allocation import AllocationProblem, _segment_choice, allocate


def make_problem(n_users: int, per_user: int, seed: int) -> AllocationProblem:
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    user = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    # Mostly small incremental margins, a long right tail, a third negative (discounts to sure things).
    value = rng.lognormal(-1.0, 1.2, n) - rng.exponential(0.4, n)
    cost = (0.2 + 0.5 * np.maximum(value, 0)) * rng.uniform(0.5, 1.5, n)
    channel = rng.integers(0, 3, n)
    consent = rng.random((n_users, 3)) < np.array([0.7, 0.4, 0.55])
    eligible = consent[user, channel]
    positive_cost = cost[eligible & (value > 0)].sum()
    return AllocationProblem(
        user=user[eligible],
        value=value[eligible],
        cost=cost[eligible],
        channel=channel[eligible],
        budget=0.15 * positive_cost,
        channel_quota=np.array([np.inf, n_users * 0.02, np.inf]),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    p = make_problem(args.users, args.actions, args.seed)
    start = time.perf_counter()
    starts = np.flatnonzero(np.r_[True, p.user[1:] != p.user[:-1]])
    _segment_choice(starts, p.value)
    floor = time.perf_counter() - start
    result = allocate(p)
    gap_pct = 100 * result.gap
    print(f"{len(p.user):,} eligible actions for {args.users:,} users")
    print(f"one argmax pass (floor): {floor:6.2f} s")
    print(f"allocation            : {result.seconds:6.2f} s  ({result.seconds / floor:.1f}x the floor; target <= 5 s)")
    print(f"objective {result.objective:,.1f}, dual (LP) bound {result.dual_bound:,.1f}, gap {gap_pct:.5f} % (target <= 0.01 %)")
    print(f"spend {result.spend:,.1f} of {p.budget:,.1f}; sends by channel {result.channel_counts.tolist()}")
    write_result(
        "allocation_1m_seconds", round(result.seconds, 3), "s", reference=round(floor, 3),
        ratio=round(result.seconds / floor, 2), target="<= 5 s", passed=result.seconds <= 5.0,
        extra={"users": args.users, "actions": len(p.user)},
    )
    write_result(
        "allocation_gap_percent", round(gap_pct, 6), "%", reference=round(result.dual_bound, 3), ratio=None,
        target="<= 0.01", passed=gap_pct <= 0.01, extra={"objective": result.objective, "bound": result.dual_bound},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
