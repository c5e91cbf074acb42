"""The Dagster instance promoloop runs against: `$PROMO_HOME/dagster`, so the demo's runs show in the UI."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

# One writer for DuckDB: every asset that writes the warehouse is in pool "duckdb"; one trainer at a time.
DAGSTER_YAML = """\
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 4
telemetry:
  enabled: false
"""


def ensure_dagster_home(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return dagster_home


def get_instance(dagster_home: Path) -> dg.DagsterInstance:
    os.environ["DAGSTER_HOME"] = str(ensure_dagster_home(dagster_home))
    return dg.DagsterInstance.get()
