"""The promoloop code location: every asset, check, job, schedule and sensor, wired to its resources.

The executor comes from `PROMO_EXECUTOR` (orchestration/executors.py; default multiprocess). The demo and the
tests call `execute_in_process`, which runs in-process whatever is selected here.
"""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.dbt import dbt_executable, dbt_project
from orchestration.defs import copywriting, features, ingest, quality, scoring, training
from orchestration.defs.jobs import all_jobs
from orchestration.defs.schedules import daily_scoring_schedule
from orchestration.defs.sensors import all_sensors
from orchestration.executors import executor_from_env
from orchestration.resources import PromoHome


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[
            *ingest.ingest_assets,
            features.feature_models,
            features.decision_log,
            *scoring.scoring_assets,
            *training.training_assets,
            *copywriting.copywriting_assets,
        ],
        asset_checks=[*quality.quality_checks, *scoring.output_checks],
        jobs=all_jobs(),
        schedules=[daily_scoring_schedule()],
        sensors=all_sensors(),
        executor=executor_from_env(),
        resources={
            "promo": PromoHome(),
            "dbt": DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable()),
        },
    )


defs = build_definitions()
