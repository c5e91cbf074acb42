"""The daily scoring chain, partitioned by day. `promo_candidates` is the dbt model
`fct_promo_candidates` built for the partition's date (incremental: re-running a day replaces it)."""


import json

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.dbt import manifest_path, translator
from orchestration.defs.features import CANDIDATES_MODEL
from orchestration.partitions import daily_partitions
from orchestration.resources import PromoHome


@dbt_assets(
    manifest=manifest_path(),
    select=CANDIDATES_MODEL,
    dagster_dbt_translator=translator(),
    partitions_def=daily_partitions(),
    pool="duckdb",
    name="promo_candidates",
)
def promo_candidates(context: dg.AssetExecutionContext, dbt: DbtCliResource, promo: PromoHome):
    promo.export_env()
    day = context.partition_key
    yield from dbt.cli(["build", "--vars", json.dumps({"scoring_date": day})], context=context).stream()
