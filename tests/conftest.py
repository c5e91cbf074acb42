"""Shared fixtures: the dbt manifest (parsed once), and a small simulated shop run through Dagster."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pytest

SMALL_SHOP = {"n_users": 300, "n_products": 60, "history_days": 6, "seed": 11}


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """Dagster loads dbt assets from the manifest: parse the project once per test session."""
    from orchestration.cli import cmd_parse

    assert cmd_parse(None) == 0
    path = Path(__file__).resolve().parent.parent / "dbt_project" / "target" / "manifest.json"
    assert path.exists()
    return path


@pytest.fixture(scope="session")
def pipeline_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small shop simulated and loaded through the real jobs: ingestion, dbt features."""
    from orchestration.demo import run_job, simulate_shop
    from orchestration.instance import get_instance
    from orchestration.settings import PromoPaths

    home = tmp_path_factory.mktemp("promo_home")
    os.environ["PROMO_HOME"] = str(home)
    paths = PromoPaths(home)
    start = date.today() - timedelta(days=SMALL_SHOP["history_days"])
    shop = simulate_shop(paths, SMALL_SHOP["n_users"], SMALL_SHOP["n_products"], SMALL_SHOP["history_days"], SMALL_SHOP["seed"], start)
    from orchestration.definitions import build_definitions

    defs = build_definitions()
    instance = get_instance(paths.dagster_home)
    last = start + timedelta(days=SMALL_SHOP["history_days"] - 1)
    run_job(defs, instance, "ingest_catalog_job")
    run_job(defs, instance, "ingest_events_job", partition_range=(str(start), str(last)))
    run_job(defs, instance, "features_job")
    assert shop.config.start == start
    return home


@pytest.fixture(autouse=True)
def _fresh_warehouse_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run exports PROMO_WAREHOUSE for dbt; a test that sets up another home must not inherit it."""
    monkeypatch.delenv("PROMO_WAREHOUSE", raising=False)
