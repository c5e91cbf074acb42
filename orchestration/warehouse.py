"""Writes to the DuckDB warehouse: raw tables, quarantine and private contacts, one partition at a time.

Each write is one transaction: delete what the partition held (rows and earlier quarantine), insert the
new batch, commit; on any error roll back, so a failed run leaves earlier data untouched and re-running a
day gives the same rows, never duplicates.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from orchestration.contract import LANDING_TABLES, LandingTable
from orchestration.landing import QUARANTINE_SCHEMA, LandingBatch, References

SQL_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "timestamp": "TIMESTAMP"}
LINEAGE = "_source_file VARCHAR, _source_line BIGINT, _run_id VARCHAR, _loaded_at TIMESTAMP"
PARTITION_COLUMN = {"events": "event_date", "feedback": "feedback_date"}

DECISIONS_DDL = """
create table if not exists delivery.decisions (
    decision_id VARCHAR, decision_date DATE, decided_at TIMESTAMP, user_id VARCHAR, action VARCHAR,
    is_holdout BOOLEAN, is_exploration BOOLEAN, offer_id VARCHAR, product_id VARCHAR, channel VARCHAR,
    send_at TIMESTAMP, send_hour INTEGER, propensity DOUBLE, policy_version VARCHAR, model_version VARCHAR,
    expected_uplift DOUBLE, expected_margin DOUBLE, expected_cost DOUBLE, candidate_count INTEGER,
    reason VARCHAR
)
"""


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only)


def raw_columns_sql(table: LandingTable) -> str:
    cols = [f'"{c.name}" {SQL_TYPES[c.type]}' for c in table.columns if not c.pii]
    if table.name in PARTITION_COLUMN:
        cols.append(f"{PARTITION_COLUMN[table.name]} DATE")
    if table.name == "feedback":
        cols.append("feedback_id VARCHAR")
    return ", ".join(cols) + ", " + LINEAGE


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    for schema in ("raw", "quarantine", "private", "delivery"):
        con.execute(f"create schema if not exists {schema}")
    quarantine_cols = ", ".join(f"{name} {_sql_type(dtype)}" for name, dtype in QUARANTINE_SCHEMA.items())
    for table in LANDING_TABLES.values():
        con.execute(f"create table if not exists raw.{table.name} ({raw_columns_sql(table)})")
        con.execute(f"create table if not exists quarantine.{table.name} ({quarantine_cols})")
    con.execute("create table if not exists private.user_contacts (user_id VARCHAR, email VARCHAR, phone VARCHAR)")
    con.execute(DECISIONS_DDL)


def _sql_type(dtype: pl.DataType) -> str:
    if dtype == pl.Int64:
        return "BIGINT"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"
    return "VARCHAR"


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
        ).fetchall()[0][0]
    )


def columns_of(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The column names of `table` (schema-qualified; it must exist)."""
    return {row[0] for row in con.execute(f"describe {table}").fetchall()}


# Each logged decision with the deciding model's score of the same action on the same day (d, s) and its
# outcome (o): what the report's serving calibration and the plan's spend correction read. Matching the day
# too reads only those days of delivery.scores (millions of rows a day at scale).
SERVED_TABLES = (("delivery", "decisions"), ("delivery", "scores"), ("marts", "fct_delivery_outcomes"))
SERVED_JOIN = """
from delivery.decisions d
join delivery.scores s
  on s.user_id = d.user_id and s.product_id = d.product_id and s.offer_id = d.offer_id
 and s.channel = d.channel and s.send_at = d.send_at and s.model_version = d.model_version
 and s.decision_date = d.decision_date
join marts.fct_delivery_outcomes o on o.decision_id = d.decision_id
"""


def served_tables_exist(con: duckdb.DuckDBPyConnection) -> bool:
    return all(table_exists(con, schema, name) for schema, name in SERVED_TABLES)


def _lookup(con: duckdb.DuckDBPyConnection, sql: str) -> callable:
    """A function Series -> bool Series answering `sql` (with `{values}` as a one-column relation `v`)."""

    def check(values: pl.Series) -> pl.Series:
        frame = pl.DataFrame({"v": values.cast(pl.Utf8), "i": pl.int_range(len(values), eager=True)})
        con.register("_lookup_values", frame)
        try:
            hits = con.sql(sql.format(values="_lookup_values")).pl()
        finally:
            con.unregister("_lookup_values")
        mask = pl.Series("hit", [False] * len(values))
        if hits.height:
            mask = mask.scatter(hits["i"].to_list(), True)
        return mask

    return check


def reference_context(con: duckdb.DuckDBPyConnection, table: LandingTable, day: date | None) -> References:
    """How a batch of `table` is checked against what the warehouse already holds."""
    refs = References()
    if table.name == "events":
        refs.key_exists_elsewhere = _lookup(
            con,
            f"select i from {{values}} join raw.events e on e.event_id = v where e.event_date <> DATE '{day}'",
        )
    if table.name == "feedback":
        refs.key_exists_elsewhere = _lookup(
            con,
            f"select i from {{values}} join raw.feedback f on f.feedback_id = v where f.feedback_date <> DATE '{day}'",
        )
        refs.known["delivery_id"] = _lookup(
            con, "select i from {values} where v in (select decision_id from delivery.decisions)"
        )
    for column, target in table.references.items():
        key = LANDING_TABLES[target].key
        refs.known[column] = _lookup(con, f"select i from {{values}} where v in (select {key} from raw.{target})")
    return refs


def write_partition(con: duckdb.DuckDBPyConnection, table: LandingTable, day: date | None, batch: LandingBatch, run_id: str = "") -> None:
    """Replace one partition (or the whole snapshot) of raw.<table> and its quarantine rows, atomically."""
    loaded = batch.loaded.with_columns(
        pl.lit(run_id).alias("_run_id"), pl.lit(None, pl.Datetime("us")).alias("_loaded_at")
    )
    part_col = PARTITION_COLUMN.get(table.name)
    if part_col:
        loaded = loaded.with_columns(pl.lit(day).alias(part_col))
    target_cols = [r[0] for r in con.execute(f"describe raw.{table.name}").fetchall()]
    con.execute("begin transaction")
    try:
        if part_col:
            con.execute(f"delete from raw.{table.name} where {part_col} = ?", [day])
            con.execute(f"delete from quarantine.{table.name} where partition_key = ?", [str(day)])
        else:
            con.execute(f"delete from raw.{table.name}")
            con.execute(f"delete from quarantine.{table.name}")
        con.register("_batch", loaded)
        select = ", ".join("current_timestamp" if c == "_loaded_at" else f'"{c}"' for c in target_cols)
        con.execute(f'insert into raw.{table.name} ({", ".join(chr(34) + c + chr(34) for c in target_cols)}) select {select} from _batch')
        con.unregister("_batch")
        if batch.quarantined.height:
            con.register("_quarantine", batch.quarantined)
            con.execute(f"insert into quarantine.{table.name} select {', '.join(QUARANTINE_SCHEMA)} from _quarantine")
            con.unregister("_quarantine")
        if batch.contacts is not None:
            con.execute("delete from private.user_contacts")
            con.register("_contacts", batch.contacts)
            con.execute("insert into private.user_contacts select user_id, email, phone from _contacts")
            con.unregister("_contacts")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
