"""dbt feature models as Dagster assets: every model but the daily candidates, built with `dbt build`
so that dbt tests run as asset checks and a failing test stops what depends on it."""


import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.dbt import DECISION_LOG_KEY, dbt_build, manifest_path, translator
from orchestration.resources import PromoHome

CANDIDATES_MODEL = "fct_promo_candidates"


@dbt_assets(
    manifest=manifest_path(),
    exclude=CANDIDATES_MODEL,
    dagster_dbt_translator=translator(),
    pool="duckdb",
    name="feature_models",
)
def feature_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, promo: PromoHome):
    promo.export_env()
    yield from dbt_build(dbt, ["build"], context, promo.paths.dbt_runs)


decision_log = dg.AssetSpec(
    key=DECISION_LOG_KEY,
    description=(
        "delivery.decisions, the policy log `promo_plan` appends to (one row per user considered per day, "
        "with propensity, policy and model version). Features read it for days before the one being scored."
    ),
    group_name="scoring",
)
