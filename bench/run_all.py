"""`promoloop bench` / `make bench`: run every benchmark script and print the results table.

Each script writes bench/results/<name>.json; this prints them as the Markdown table the README's
"Performance" section shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import RESULTS_DIR

BENCHMARKS = (
    "feature_build",
    "validation",
    "allocation",
    "open_bandit_ope",
    "hillstrom_uplift",
    "predictor_throughput",
    "ddp_throughput",
    "generator",
    "closed_loop",
)


def results_table() -> str:
    lines = [
        "| result | value | reference | ratio | target | passed | machine | date | command |",
        "|---|---:|---:|---:|---|---|---|---|---|",
    ]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        r = json.loads(path.read_text())
        lines.append(
            f"| {r['name']} | {r['value']} {r['unit']} | {r['reference']} | {r['ratio']} | {r['target']} | "
            f"{'yes' if r['passed'] else 'no'} | {r['machine']} | {r['date'][:10]} | `{r['command']}` |"
        )
    return "\n".join(lines)


def run_all(names: list[str] | None = None) -> int:
    failed = 0
    for name in names or BENCHMARKS:
        print(f"== bench.{name}", flush=True)
        failed += subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=Path(__file__).resolve().parent.parent).returncode != 0
    print(results_table())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_all(sys.argv[1:]))
