"""Ingestion: one asset per landing table. Events and feedback are daily-partitioned; re-materializing a day
replaces that day. Row-level validation and quarantine live in `orchestration.landing` (pure) and
`orchestration.warehouse` (writes); this module only wires them to Dagster."""


from datetime import UTC, date, datetime

import dagster as dg

from orchestration import landing, warehouse
from orchestration.contract import LANDING_TABLES, LandingTable
from orchestration.partitions import daily_partitions
from orchestration.resources import PromoHome


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


def _metadata(stats: landing.BatchStats, partitions: list[str]) -> dict[str, dg.MetadataValue]:
    meta: dict[str, dg.MetadataValue] = {
        "rows_read": dg.MetadataValue.int(stats.rows_read),
        "rows_loaded": dg.MetadataValue.int(stats.rows_loaded),
        "rows_quarantined": dg.MetadataValue.int(stats.rows_quarantined),
        "files": dg.MetadataValue.int(stats.files),
        "reconciled": dg.MetadataValue.bool(stats.rows_read == stats.rows_loaded + stats.rows_quarantined),
    }
    if partitions and partitions != [""]:
        meta["partitions"] = dg.MetadataValue.text(f"{partitions[0]} .. {partitions[-1]} ({len(partitions)})")
    if stats.min_time is not None:
        meta["time_range"] = dg.MetadataValue.text(f"{stats.min_time} .. {stats.max_time}")
    if stats.quarantine_reasons:
        meta["quarantine_reasons"] = dg.MetadataValue.json(stats.quarantine_reasons)
    if stats.warnings:
        meta["warnings"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in stats.warnings[:50]))
    if stats.per_file:
        meta["per_file"] = dg.MetadataValue.md(stats.per_file_markdown())
    return meta


def build_ingest_asset(table: LandingTable) -> dg.AssetsDefinition:
    partitioned = table.partitioned
    deps = [raw_key(ref) for ref in sorted(set(table.references.values()))]

    @dg.asset(
        key=raw_key(table.name),
        group_name="ingest",
        pool="duckdb",
        kinds={"duckdb", "polars"},
        deps=deps,
        partitions_def=daily_partitions() if partitioned else None,
        # One run can load a range of days (a backfill or the demo's history) in a single process.
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        description=f"landing/{table.name} typed into raw.{table.name}; rejected rows go to "
        f"quarantine.{table.name} with a reason, file and line.",
    )
    def ingest(context: dg.AssetExecutionContext, promo: PromoHome) -> dg.MaterializeResult:
        days: list[date | None] = (
            [date.fromisoformat(k) for k in context.partition_keys] if partitioned else [None]
        )
        total = landing.BatchStats.empty()
        with promo.connect() as con:
            warehouse.ensure_schemas(con)
            for day in days:
                folder = (
                    promo.paths.landing_partition(table.name, day)
                    if day
                    else promo.paths.landing_table(table.name)
                )
                batch = landing.read_landing(
                    table,
                    landing.list_files(folder),
                    partition=day,
                    now=datetime.now(UTC).replace(tzinfo=None),
                    references=warehouse.reference_context(con, table, day),
                    run_id=context.run_id,
                )
                warehouse.write_partition(con, table, day, batch, run_id=context.run_id)
                total = total + batch.stats
                context.log.info(
                    f"raw.{table.name} {day or ''}: read {batch.stats.rows_read}, loaded "
                    f"{batch.stats.rows_loaded}, quarantined {batch.stats.rows_quarantined}"
                )
        return dg.MaterializeResult(metadata=_metadata(total, [str(d or "") for d in days]))

    return ingest


ingest_assets = [build_ingest_asset(t) for t in LANDING_TABLES.values()]
