"""Run a Great Expectations 1.x suite (JSON in `expectations/suites/`) against a warehouse table.

Suites are data. A few kwargs are placeholders filled at validation time, because they depend on the
partition being checked: `$partition_start` / `$partition_end` (the day's bounds), `$previous_rows_low` /
`$previous_rows_high` (the previous partition's row count ± `drift_tolerance`) and `$fresh_after`.
Each expectation's `meta.severity` is `error` (blocks downstream work) or `warn` (drift, shown only).

Validation pulls only the rows of the partition being checked from DuckDB into pandas with int64 and
datetime64[ns] columns (GX's pandas path is ~13x slower on int32 / datetime64[us], measured); the bench
compares it with plain DuckDB SQL (bench/validation.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

SUITES_DIR = Path(__file__).resolve().parent / "suites"


@dataclass
class FailedExpectation:
    expectation: str
    column: str | None
    severity: str
    unexpected_count: int | None
    sample: list[Any]
    observed: Any = None


@dataclass
class ValidationSummary:
    suite: str
    rows: int
    evaluated: int
    failed: list[FailedExpectation] = field(default_factory=list)

    @classmethod
    def combine(cls, parts: list[ValidationSummary]) -> ValidationSummary:
        """One summary of a suite validated in parts (a backfill, a few days at a time)."""
        if not parts:
            raise ValueError("nothing was validated")
        return cls(
            suite=parts[0].suite,
            rows=sum(p.rows for p in parts),
            evaluated=sum(p.evaluated for p in parts),
            failed=[f for p in parts for f in p.failed],
        )

    def passed(self, severity: str) -> bool:
        return not any(f.severity == severity for f in self.failed)

    @property
    def success(self) -> bool:
        return not self.failed

    def to_metadata(self, severity: str | None = None) -> dict[str, Any]:
        failed = [f for f in self.failed if severity is None or f.severity == severity]
        lines = ["| expectation | column | unexpected | sample |", "|---|---|---:|---|"]
        for f in failed:
            sample = ", ".join(map(str, f.sample[:5])) if f.sample else (str(f.observed) if f.observed is not None else "")
            lines.append(f"| {f.expectation} | {f.column or ''} | {f.unexpected_count if f.unexpected_count is not None else ''} | {sample[:120]} |")
        return {
            "suite": self.suite,
            "rows_validated": self.rows,
            "expectations_evaluated": self.evaluated,
            "expectations_failed": len(failed),
            "failures": "\n".join(lines) if failed else "none",
        }


def load_suite(name: str) -> dict[str, Any]:
    path = SUITES_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {name!r} at {path}")
    return json.loads(path.read_text())


def _fill(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        if value[1:] not in params:
            raise KeyError(f"suite placeholder {value} needs parameter {value[1:]!r}")
        return params[value[1:]]
    return value


@cache
def _context():
    """One ephemeral GX context per process (creating one costs ~100 ms; importing GX, seconds)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Metric progress bars would flood the demo's and Dagster's logs (two per suite run).
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("promoloop").add_dataframe_asset("table").add_batch_definition_whole_dataframe("all")
    )
    return context, batch_definition


def validate_frame(frame: pd.DataFrame, suite_name: str, params: dict[str, Any] | None = None) -> ValidationSummary:
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    params = params or {}
    spec = load_suite(suite_name)
    suite = gx.ExpectationSuite(name=f"{suite_name}")
    for exp in spec["expectations"]:
        placeholders = [k for k, v in exp["kwargs"].items() if isinstance(v, str) and v.startswith("$")]
        kwargs = {k: _fill(v, params) for k, v in exp["kwargs"].items()}
        if any(kwargs[k] is None for k in placeholders):
            continue  # nothing to compare with yet (e.g. the first partition has no previous one)
        suite.add_expectation_configuration(ExpectationConfiguration(type=exp["type"], kwargs=kwargs, meta=exp.get("meta", {})))
    _, batch_definition = _context()
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}
    )
    failed = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        failed.append(
            FailedExpectation(
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                severity=(cfg.meta or {}).get("severity", "error"),
                unexpected_count=r.result.get("unexpected_count"),
                sample=[_jsonable(v) for v in r.result.get("partial_unexpected_list") or []],
                observed=_jsonable(r.result.get("observed_value")),
            )
        )
    return ValidationSummary(suite=suite_name, rows=len(frame), evaluated=len(result.results), failed=failed)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def read_frame(con: duckdb.DuckDBPyConnection, table: str, where: str | None = None) -> pd.DataFrame:
    """The rows to validate, with the dtypes GX's pandas engine is fast on."""
    # Through Arrow with pyarrow-backed strings: 5-10x faster than DuckDB's object-string pandas export.
    arrow = con.sql(f"select * from {table}" + (f" where {where}" if where else "")).to_arrow_table()
    # DuckDB's HUGEINT (e.g. sum() of integers) arrives as decimal128: pandas would hold Python Decimal
    # objects, which GX converts one by one with an inspect.stack() each (minutes inside a deep Dagster
    # stack). Numbers as float64 validate the same and fast.
    for i, column in enumerate(arrow.schema):
        if pa.types.is_decimal(column.type):
            arrow = arrow.set_column(i, column.name, arrow.column(i).cast(pa.float64()))
    frame = arrow.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}.get)
    for column, dtype in frame.dtypes.items():
        if pd.api.types.is_datetime64_any_dtype(dtype):
            frame[column] = frame[column].astype("datetime64[ns]")
        elif pd.api.types.is_integer_dtype(dtype):
            frame[column] = frame[column].astype("int64") if not frame[column].isna().any() else frame[column].astype("float64")
    return frame


def validate_table(
    con: duckdb.DuckDBPyConnection,
    suite_name: str,
    table: str,
    where: str | None = None,
    params: dict[str, Any] | None = None,
) -> ValidationSummary:
    return validate_frame(read_frame(con, table, where), suite_name, params)


def drift_params(previous_rows: int | None, tolerance: float = 0.5) -> dict[str, Any]:
    if not previous_rows:
        return {"previous_rows_low": None, "previous_rows_high": None}
    return {
        "previous_rows_low": int(previous_rows * (1 - tolerance)),
        "previous_rows_high": int(previous_rows * (1 + tolerance)),
    }


def partition_params(start: datetime, end: datetime) -> dict[str, Any]:
    return {"partition_start": pd.Timestamp(start), "partition_end": pd.Timestamp(end)}
