"""The dbt project as Dagster sees it: project handle, manifest, and how dbt nodes map to asset keys."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

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
