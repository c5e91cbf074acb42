"""PII never leaves ingestion: no dbt model, no model input table carries an email or phone column or value."""

import re
from pathlib import Path

import duckdb

PII_COLUMNS = re.compile(r"^(?!consent_)(.*_)?(email|phone|mobile)(_address|_number)?$", re.I)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
PHONE = re.compile(r"\+\d{1,3}-\d{3,}")


def test_no_pii_outside_private_schema(pipeline_home: Path) -> None:
    con = duckdb.connect(str(pipeline_home / "warehouse.duckdb"), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('raw', 'staging', 'intermediate', 'marts', 'delivery')"
        ).fetchall()
        assert len(tables) > 10
        leaks = []
        for schema, table in tables:
            columns = con.execute(
                "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
                [schema, table],
            ).fetchall()
            leaks += [f"{schema}.{table}.{c}" for c, _ in columns if PII_COLUMNS.search(c)]
            for column, dtype in columns:
                if dtype != "VARCHAR":
                    continue
                values = [v for (v,) in con.execute(f'select distinct "{column}" from {schema}.{table} limit 5000').fetchall() if v]
                leaks += [f"{schema}.{table}.{column}={v}" for v in values if EMAIL.search(v) or PHONE.search(v)][:3]
        assert leaks == []
        # ... and they are kept, for the delivery export alone.
        assert con.execute("select count(*) from private.user_contacts where email like '%@%'").fetchall()[0][0] > 0
    finally:
        con.close()
