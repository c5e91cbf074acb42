"""Great Expectations suites as Dagster asset checks. Each checked asset gets two checks from one suite:
`gx_contract` (blocking, ERROR: a failing table stops what depends on it in the run) and `gx_drift`
(WARN: shown, never blocking). Partitioned assets are validated on the days the run loaded."""

from datetime import date, datetime, timedelta

import dagster as dg

from orchestration.resources import PromoHome

# asset key -> (suite, warehouse table, partition column or None)
CHECKED = {
    ("raw", "users"): ("raw_users", "raw.users", None),
    ("raw", "products"): ("raw_products", "raw.products", None),
    ("raw", "offers"): ("raw_offers", "raw.offers", None),
    ("raw", "events"): ("raw_events", "raw.events", "event_date"),
    ("raw", "feedback"): ("raw_feedback", "raw.feedback", "feedback_date"),
    ("marts", "fct_user_features"): ("user_features", "marts.fct_user_features", None),
    ("marts", "fct_training_examples"): ("training_examples", "marts.fct_training_examples", None),
    ("promo_plan",): ("delivery_decisions", "delivery.decisions", "decision_date"),
    ("delivery_export",): ("delivery_exports", "delivery.exports", "export_date"),
}


# Rows pulled into pandas per GX validation: 30 days of a million users' events at once took 12 GiB.
MAX_ROWS_PER_VALIDATION = 2_000_000


def run_partition_days(tags: dict[str, str]) -> tuple[date, date] | None:
    """The days a run materialized: one partition, a single-run range, or None (unpartitioned)."""
    if "dagster/partition" in tags:
        day = date.fromisoformat(tags["dagster/partition"])
        return day, day
    if "dagster/asset_partition_range_start" in tags:
        return (
            date.fromisoformat(tags["dagster/asset_partition_range_start"]),
            date.fromisoformat(tags["dagster/asset_partition_range_end"]),
        )
    return None


def day_chunks(first: date, last: date, rows_per_day: dict[date, int], max_rows: int) -> list[tuple[date, date]]:
    """Consecutive runs of days holding at most `max_rows` rows each (a day over it stands alone), so a
    backfill's validation holds a few days in memory at a time, never the whole range."""
    chunks: list[tuple[date, date]] = []
    start, rows, day = first, 0, first
    while day <= last:
        n = rows_per_day.get(day, 0)
        if day > start and rows + n > max_rows:
            chunks.append((start, day - timedelta(days=1)))
            start, rows = day, 0
        rows += n
        day += timedelta(days=1)
    chunks.append((start, last))
    return chunks


def build_gx_checks(key: tuple[str, ...], suite: str, table: str, partition_column: str | None):
    asset_key = dg.AssetKey(list(key))

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec("gx_contract", asset=asset_key, blocking=True, description=f"GX suite {suite}: errors"),
            dg.AssetCheckSpec("gx_drift", asset=asset_key, description=f"GX suite {suite}: drift warnings"),
        ],
        name=f"gx_{'_'.join(key)}",
        pool="duckdb",
    )
    def gx_checks(context: dg.AssetCheckExecutionContext, promo: PromoHome):
        from expectations.runner import ValidationSummary, drift_params, partition_params, validate_table

        days = run_partition_days(context.run.tags) if partition_column else None
        with promo.connect() as con:
            if days:
                counts = dict(con.execute(
                    f"""select {partition_column}, count(*) from {table}
                        where {partition_column} between ? - 1 and ? group by 1""", list(days)
                ).fetchall())
                summaries = []
                for start, end in day_chunks(days[0], days[1], counts, MAX_ROWS_PER_VALIDATION):
                    params = partition_params(
                        datetime(start.year, start.month, start.day),
                        datetime(end.year, end.month, end.day) + timedelta(days=1),
                    )
                    previous = counts.get(start - timedelta(days=1), 0)
                    params.update(drift_params(previous * ((end - start).days + 1) if previous else None))
                    where = f"{partition_column} between DATE '{start}' and DATE '{end}'"
                    summaries.append(validate_table(con, suite, table, where=where, params=params))
                summary = ValidationSummary.combine(summaries)
            else:
                summary = validate_table(con, suite, table, params=drift_params(None))
        scope = f"{days[0]}..{days[1]}" if days else "whole table"
        yield dg.AssetCheckResult(
            check_name="gx_contract",
            asset_key=asset_key,
            passed=summary.passed("error"),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={**_md(summary.to_metadata("error")), "scope": scope},
        )
        yield dg.AssetCheckResult(
            check_name="gx_drift",
            asset_key=asset_key,
            passed=summary.passed("warn"),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**_md(summary.to_metadata("warn")), "scope": scope},
        )

    return gx_checks


def _md(meta: dict) -> dict:
    out = dict(meta)
    out["failures"] = dg.MetadataValue.md(meta["failures"])
    return out


quality_checks = [build_gx_checks(key, *spec) for key, spec in CHECKED.items()]
