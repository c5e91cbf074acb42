"""The closed-loop benchmark: `python -m bench.closed_loop [--home DIR] [--days 14] [--seed 7] [--start 2026-10-20]`.

Runs `promoloop demo` (simulated shop, demo size, fixed seed) and scores the platform's last 7 days against
the oracle, random and rule policies with the simulator's ground truth (orchestration/closed_loop.py). Writes
bench/results/closed_loop_oracle_share.json (the platform's share of the oracle's true incremental margin
over the last 7 days), closed_loop_vs_rule.json (platform / rule) and closed_loop_demo_minutes.json (the
whole demo's wall time, training included).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import date
from pathlib import Path

from bench.common import write_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=None, help="PROMO_HOME for the run (default: a temporary folder)")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default="2026-10-20",
                        help="the shop's first history day (fixed, so a rerun on another day gives the same figures)")
    args = parser.parse_args(argv)
    home = Path(args.home or tempfile.mkdtemp(prefix="promoloop-closed-loop-")).resolve()
    os.environ["PROMO_HOME"] = str(home)

    from orchestration.demo import DemoOptions, run_demo
    from orchestration.settings import PromoPaths

    options = DemoOptions(loop_days=args.days, seed=args.seed, start=date.fromisoformat(args.start))
    card, seconds = run_demo(PromoPaths(home), options)
    week = card.last_week(7)
    oracle, platform, rule, random = (week[p] for p in ("oracle", "platform", "rule", "random"))
    share = platform / oracle if oracle > 0 else 0.0
    vs_rule = platform / rule if rule > 0 else 0.0
    extra = {
        "days": args.days, "seed": args.seed, "start": args.start, "last_7_days_margin": week,
        "random_share": random / oracle if oracle > 0 else None,
        "rule_share": rule / oracle if oracle > 0 else None,
        "gates": [{"day": str(g.day), "action": g.action, "reason": g.reason} for g in card.gates],
    }
    print(f"\nlast 7 days: platform {platform:,.1f}, oracle {oracle:,.1f} (share {share:.1%}), rule {rule:,.1f} "
          f"(platform/rule {vs_rule:.2f}x), random {random:,.1f} ({extra['random_share']:.1%} of the oracle)")
    write_result("closed_loop_oracle_share", round(share, 4), "share of oracle incremental margin", round(oracle, 1),
                 round(share, 4), ">= 0.70", share >= 0.70, extra)
    write_result("closed_loop_vs_rule", round(vs_rule, 3), "x rule-based incremental margin", round(rule, 1),
                 round(vs_rule, 3), ">= 1.5", vs_rule >= 1.5, extra)
    write_result("closed_loop_demo_minutes", round(seconds / 60, 2), "minutes", None, None, "<= 15", seconds <= 900,
                 {"days": args.days})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
