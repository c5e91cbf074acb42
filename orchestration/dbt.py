"""The dbt project as Dagster sees it: project handle, manifest, and how dbt nodes map to asset keys."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject

from orchestration.settings import DBT_PROJECT_DIR

# dbt models that Dagster names after what they are in the product, not after their table.
MODEL_ASSET_KEYS = {"fct_promo_candidates": dg.AssetKey("promo_candidates")}
# The policy log is written by `promo_plan` and read by features for *earlier* days; keying it apart from
# `promo_plan` keeps the graph acyclic (features -> scores -> plan -> tomorrow's features).
DECISION_LOG_KEY = dg.AssetKey(["delivery", "decision_log"])


@cache
def dbt_project() -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so an unactivated virtualenv still finds it."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def manifest_path():
    """The parsed manifest. `make setup` (or `promoloop parse`) writes it; we never parse at import time."""
    path = dbt_project().manifest_path
    if not path.exists():
        raise FileNotFoundError(
            f"dbt manifest not found at {path}: run `make setup` or `promoloop parse` to parse the dbt project"
        )
    return path


class PromoDbtTranslator(DagsterDbtTranslator):
    """Sources carry their Dagster key in `meta.dagster.asset_key`; models are keyed `<schema>/<name>`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "model" and dbt_resource_props["name"] in MODEL_ASSET_KEYS:
            return MODEL_ASSET_KEYS[dbt_resource_props["name"]]
        if dbt_resource_props["resource_type"] == "source" and dbt_resource_props["name"] == "decisions":
            return DECISION_LOG_KEY
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["name"] in MODEL_ASSET_KEYS:
            return "scoring"
        return "features"


def translator() -> PromoDbtTranslator:
    return PromoDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def dbt_build(
    dbt: DbtCliResource, args: list[str], context: dg.AssetExecutionContext, runs_dir: Path
) -> Iterator[Any]:
    """`dbt <args>` for an asset, keeping dbt's partial-parse state per home.

    dbt re-parses the whole project (about 2.5 s here) when the profile differs from the one it last parsed
    with, and the profile holds the warehouse path, which is each home's own; the manifest parsed at set-up
    therefore never serves a Dagster run. Each home keeps the state of its last successful invocation and
    hands it to the next (dbt's own change detection re-parses edited files), so only the first run on a
    home pays for the full parse."""
    target = runs_dir / "target" / f"{context.run_id[:8]}-{uuid.uuid4().hex[:8]}"
    target.mkdir(parents=True)
    saved = runs_dir / PARTIAL_PARSE_FILE
    if saved.exists():
        shutil.copy(saved, target / PARTIAL_PARSE_FILE)  # dagster-dbt copies its own only into an empty target
    yield from dbt.cli(args, context=context, target_path=target).stream()
    fresh = target / PARTIAL_PARSE_FILE
    if fresh.exists():
        tmp = runs_dir / f"{PARTIAL_PARSE_FILE}.{uuid.uuid4().hex[:8]}.tmp"
        shutil.copy(fresh, tmp)
        tmp.replace(saved)  # atomic: a concurrent invocation reads the old state or the new, never half
