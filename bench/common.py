"""Shared plumbing for benchmark scripts: one result format, written next to the scripts.

Every script prints its figure beside a reference measured in the same run and calls `write_result`, so
`bench/results/*.json` can be compared across machines and dates.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_description() -> str:
    """A short, stable description of where the figure was measured."""
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", {torch.cuda.get_device_name(0)}"
    except ImportError:  # pragma: no cover - torch is a runtime dependency
        pass
    return f"{platform.machine()} {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}{gpu}"


def write_result(
    name: str,
    value: float,
    unit: str,
    reference: float | None,
    ratio: float | None,
    target: str,
    passed: bool,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `bench/results/<name>.json` in the project's result format and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "name": name,
        "value": value,
        "unit": unit,
        "reference": reference,
        "ratio": ratio,
        "target": target,
        "passed": bool(passed),
        "command": _command(),
        "machine": machine_description(),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if extra:
        record["extra"] = extra
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path


def _command() -> str:
    """How to rerun this: `python -m bench.<script> <args>` (sys.argv[0] is the script's file path)."""
    script = Path(sys.argv[0])
    module = f"bench.{script.stem}" if script.parent.name == "bench" else str(script)
    return " ".join(["python", "-m", module, *(shlex.quote(a) for a in sys.argv[1:])])


@contextmanager
def timed(label: str, sink: dict[str, float]):
    """Measure wall time of a block into `sink[label]` (seconds)."""
    start = time.perf_counter()
    yield
    sink[label] = time.perf_counter() - start
