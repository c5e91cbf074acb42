"""`python -m simulator --users 5000 --days 30 --home /tmp/shop`: write a simulated shop and report how long
it took and the peak memory (the figures quoted in the README come from this)."""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date
from pathlib import Path

from simulator import ShopConfig, simulate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="folder to write landing/ and simulator/ into")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--offers", type=int, default=16)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 10, 1))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fmt", choices=("parquet", "csv"), default="parquet")
    args = parser.parse_args(argv)
    config = ShopConfig(
        n_users=args.users, n_products=args.products, n_offers=args.offers, history_days=args.days,
        start=args.start, seed=args.seed, fmt=args.fmt,
    )
    began = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"day {done}/{total}  {time.perf_counter() - began:.1f} s", flush=True)

    simulate(args.home, config, progress=progress)
    elapsed = time.perf_counter() - began
    events = sum(f.stat().st_size for f in (args.home / "landing" / "events").rglob("*.*"))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.users} users x {args.days} days: {elapsed:.1f} s, peak RSS {peak_mib:,.0f} MiB, "
          f"event files {events / 2**20:,.1f} MiB")


if __name__ == "__main__":
    main()
