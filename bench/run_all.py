"""`promoloop bench` / `make bench`: run every benchmark script and print the results table.

Each script writes bench/results/<name>.json; this prints them as the Markdown table the README's
"Performance" section shows.

The scale run is opt-in, so `make bench` stays within minutes: `promoloop bench scale` runs it at 20,000
users (about 10 minutes here), `promoloop bench scale_full` at 1,000,000 users, 100,000 products and 90
days (about an hour here, tens of GB under /tmp).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
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
    "copy_ranker",
    "predictor_simulator",
    "scoring_throughput",
    "closed_loop",
    "closed_loop_pacing",  # reads the closed loop's home, so it runs after it
)
# The closed loop's home, kept for closed_loop_pacing (which re-plans its served days); cleared before a run.
CLOSED_LOOP_HOME = Path(tempfile.gettempdir()) / "promoloop-bench-closed-loop"
HOME_ARGS = {"closed_loop": ["--home", str(CLOSED_LOOP_HOME)], "closed_loop_pacing": ["--home", str(CLOSED_LOOP_HOME)]}
# Opt-in names -> the scale run's arguments (bench/scale.py).
SCALE_RUNS = {
    "scale": ["--users", "20000", "--products", "2000", "--days", "14", "--sample-users", "5000"],
    "scale_full": [],
}


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
        if name not in BENCHMARKS and name not in SCALE_RUNS:
            known = ", ".join((*BENCHMARKS, *SCALE_RUNS))
            raise SystemExit(f"unknown benchmark {name!r}: choose from {known}")
        if name == "closed_loop":
            shutil.rmtree(CLOSED_LOOP_HOME, ignore_errors=True)
        command = (["-m", "bench.scale", *SCALE_RUNS[name]] if name in SCALE_RUNS
                   else ["-m", f"bench.{name}", *HOME_ARGS.get(name, [])])
        print(f"== {' '.join(command[1:])}", flush=True)
        failed += subprocess.run([sys.executable, *command], cwd=Path(__file__).resolve().parent.parent).returncode != 0
    print(results_table())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_all(sys.argv[1:]))
