"""Reading landing files into typed rows, and deciding row by row what is loaded and what is quarantined.

Pure: no warehouse writes here (see `orchestration.warehouse`). Every row read ends up either loaded or in
quarantine with one reason code, the offending column and value, its source file and line, so for every
file `rows read = rows loaded + rows quarantined`. A file that lacks a required column fails the whole
batch with `LandingFileError` (naming file and column) before anything is written.

CSV line numbers are 1-based file lines (the header is line 1) and assume no newline inside a quoted
field; Parquet rows are numbered from 1.

Pseudonymization: when `PROMO_PSEUDONYMIZE_KEY` is set, every `user_id` is replaced at ingestion by
`"h_" + HMAC-SHA256(key, user_id)[:20]`, the same in users, events and contacts, so joins still work and
the clear id never enters the warehouse. Keep the key in a secret store; rotating it re-keys every user.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from orchestration.contract import Column, LandingTable

DATA_SUFFIXES = (".csv", ".parquet")
TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
TRUE_WORDS = ("true", "t", "1", "yes", "y")
FALSE_WORDS = ("false", "f", "0", "no", "n")
QUARANTINE_SCHEMA = {
    "reason": pl.Utf8,
    "column_name": pl.Utf8,
    "bad_value": pl.Utf8,
    "source_file": pl.Utf8,
    "source_line": pl.Int64,
    "partition_key": pl.Utf8,
    "run_id": pl.Utf8,
    "raw_record": pl.Utf8,
    "quarantined_at": pl.Datetime("us"),
}
POLARS_TYPES = {
    "string": pl.Utf8,
    "int": pl.Int64,
    "float": pl.Float64,
    "bool": pl.Boolean,
    "timestamp": pl.Datetime("us"),
}


class LandingFileError(ValueError):
    """A landing file cannot be read at all (e.g. a required column is missing)."""


@dataclass
class FileStats:
    file: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined


@dataclass
class BatchStats:
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    files: int = 0
    min_time: datetime | None = None
    max_time: datetime | None = None
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    per_file: list[FileStats] = field(default_factory=list)

    @classmethod
    def empty(cls) -> BatchStats:
        return cls()

    def __add__(self, other: BatchStats) -> BatchStats:
        times = [t for t in (self.min_time, other.min_time) if t is not None]
        ends = [t for t in (self.max_time, other.max_time) if t is not None]
        return BatchStats(
            rows_read=self.rows_read + other.rows_read,
            rows_loaded=self.rows_loaded + other.rows_loaded,
            rows_quarantined=self.rows_quarantined + other.rows_quarantined,
            files=self.files + other.files,
            min_time=min(times) if times else None,
            max_time=max(ends) if ends else None,
            quarantine_reasons=dict(Counter(self.quarantine_reasons) + Counter(other.quarantine_reasons)),
            warnings=self.warnings + other.warnings,
            per_file=self.per_file + other.per_file,
        )

    @property
    def reconciled(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined and all(
            f.reconciled for f in self.per_file
        )

    def per_file_markdown(self, limit: int = 30) -> str:
        lines = ["| file | read | loaded | quarantined | ok |", "|---|---:|---:|---:|---|"]
        for f in self.per_file[:limit]:
            ok = "yes" if f.reconciled else "NO"
            lines.append(f"| {f.file} | {f.rows_read} | {f.rows_loaded} | {f.rows_quarantined} | {ok} |")
        if len(self.per_file) > limit:
            lines.append(f"| … {len(self.per_file) - limit} more | | | | |")
        return "\n".join(lines)


@dataclass
class LandingBatch:
    loaded: pl.DataFrame  # raw layout: contract columns (minus PII) + lineage columns
    quarantined: pl.DataFrame  # QUARANTINE_SCHEMA
    contacts: pl.DataFrame | None  # users only: user_id + PII columns
    stats: BatchStats


@dataclass
class References:
    """What a batch is checked against in the warehouse. Each callable gets a Series of values and
    returns a boolean Series (same length): already loaded elsewhere / known."""

    key_exists_elsewhere: Callable[[pl.Series], pl.Series] | None = None
    known: dict[str, Callable[[pl.Series], pl.Series]] = field(default_factory=dict)


def list_files(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)


# ---------------------------------------------------------------------------------------------- reading
def _pseudonymize(values: pl.Expr) -> pl.Expr:
    key = os.environ.get("PROMO_PSEUDONYMIZE_KEY")
    if not key:
        return values
    secret = key.encode()
    return values.map_elements(
        lambda v: "h_" + hmac.new(secret, v.encode(), hashlib.sha256).hexdigest()[:20],
        return_dtype=pl.Utf8,
    )


def _read_csv_lines(path: Path, header_names: list[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Slow, careful path for a CSV with encoding or truncation problems: decode and split line by line.

    Returns (rows as strings with `_source_line`, broken lines as quarantine rows)."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    if not lines:
        return pl.DataFrame(), pl.DataFrame(schema=QUARANTINE_SCHEMA)
    header = next(csv.reader([lines[0].decode("utf-8", errors="replace").rstrip("\r")]))
    good: list[list[str]] = []
    good_lines: list[int] = []
    bad: list[dict] = []
    ends_with_newline = raw.endswith(b"\n")
    for no, line in enumerate(lines[1:], start=2):
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as err:
            bad.append(_broken(path, no, "invalid_utf8", None, line.decode("utf-8", errors="replace"), str(err)))
            continue
        if text == "":
            continue
        fields = next(csv.reader([text]))
        if len(fields) != len(header):
            is_last = no == len(lines)
            reason = "truncated_line" if (is_last and not ends_with_newline and len(fields) < len(header)) else "wrong_field_count"
            bad.append(_broken(path, no, reason, None, text, f"{len(fields)} fields, header has {len(header)}"))
            continue
        good.append(fields)
        good_lines.append(no)
    frame = pl.DataFrame(good, schema=header, orient="row") if good else pl.DataFrame(schema={h: pl.Utf8 for h in header})
    frame = frame.with_columns(pl.Series("_source_line", good_lines, dtype=pl.Int64))
    return frame, pl.DataFrame(bad, schema=QUARANTINE_SCHEMA) if bad else pl.DataFrame(schema=QUARANTINE_SCHEMA)


def _broken(path: Path, line: int, reason: str, column: str | None, text: str, detail: str) -> dict:
    return {
        "reason": reason,
        "column_name": column,
        "bad_value": detail[:200],
        "source_file": str(path),
        "source_line": line,
        "partition_key": None,
        "run_id": None,
        "raw_record": json.dumps({"line": text[:2000]}, ensure_ascii=False),
        "quarantined_at": None,
    }


def _read_file(path: Path) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """One file -> (rows with `_source_line`, rows already broken at parse time, warnings)."""
    warnings: list[str] = []
    if path.suffix.lower() == ".parquet":
        frame = pl.read_parquet(path)
        frame = frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("_source_line"))
        return frame, pl.DataFrame(schema=QUARANTINE_SCHEMA), warnings
    raw = path.read_bytes()
    if not raw.strip():
        warnings.append(f"{path.name}: empty file")
        return pl.DataFrame(), pl.DataFrame(schema=QUARANTINE_SCHEMA), warnings
    try:
        text = raw.decode("utf-8")
        clean = True
    except UnicodeDecodeError:
        clean = False
    if clean:
        body = text.rstrip("\n").split("\n")
        n_header = len(next(csv.reader([body[0].rstrip("\r")])))
        last_fields = len(next(csv.reader([body[-1].rstrip("\r")]))) if len(body) > 1 else n_header
        clean = last_fields == n_header
    if not clean:
        frame, broken = _read_csv_lines(path)
        warnings.append(f"{path.name}: {broken.height} unreadable line(s) quarantined")
        return frame, broken, warnings
    frame = pl.read_csv(io.BytesIO(raw), infer_schema=False)
    frame = frame.with_columns(pl.int_range(2, frame.height + 2, dtype=pl.Int64).alias("_source_line"))
    return frame, pl.DataFrame(schema=QUARANTINE_SCHEMA), warnings


# ---------------------------------------------------------------------------------------------- typing
def _typed(col: Column, dtype: pl.DataType) -> pl.Expr:
    """Cast one column to its contract type; a value that does not parse becomes null."""
    c = pl.col(col.name)
    target = POLARS_TYPES[col.type]
    if dtype == pl.Utf8:
        s = c.str.strip_chars()
        s = pl.when(s == "").then(None).otherwise(s)
        if col.type == "string":
            return s
        if col.type in ("int", "float"):
            return s.cast(pl.Float64, strict=False).cast(target, strict=False) if col.type == "int" else s.cast(target, strict=False)
        if col.type == "bool":
            low = s.str.to_lowercase()
            return pl.when(low.is_in(TRUE_WORDS)).then(True).when(low.is_in(FALSE_WORDS)).then(False).otherwise(None)
        # Timestamps: naive ISO-8601 is UTC; an explicit offset is converted to UTC.
        t = s.str.replace(" ", "T")
        aware = t.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        naive = [t.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in TIMESTAMP_FORMATS]
        return pl.coalesce([*naive, aware])
    if col.type == "timestamp" and isinstance(dtype, pl.Datetime) and dtype.time_zone:
        return c.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(target)
    if col.type == "string":
        return c.cast(pl.Utf8)
    return c.cast(target, strict=False)


def _unparseable_reason(col: Column) -> str:
    return {"int": "unparseable_number", "float": "unparseable_number", "bool": "unparseable_bool", "timestamp": "unparseable_timestamp"}.get(col.type, "unparseable_value")


# ---------------------------------------------------------------------------------------------- validation
def read_landing(
    table: LandingTable,
    files: list[Path],
    partition: date | None,
    now: datetime,
    references: References | None = None,
    run_id: str = "",
) -> LandingBatch:
    """Read `files` of one table (one partition), type them and split loaded from quarantined rows."""
    references = references or References()
    stats = BatchStats(files=len(files))
    frames: list[pl.DataFrame] = []
    broken: list[pl.DataFrame] = []
    for path in files:
        frame, bad, warnings = _read_file(path)
        stats.warnings.extend(warnings)
        fstats = FileStats(file=path.name, rows_read=frame.height + bad.height)
        stats.per_file.append(fstats)
        if frame.width == 0:  # empty file: nothing to load, nothing lost
            continue
        present = [c for c in frame.columns if c != "_source_line"]
        missing = [c for c in table.required if c not in present]
        if missing:
            raise LandingFileError(
                f"{path}: required column {missing[0]!r} is missing from landing/{table.name} "
                f"(found columns: {', '.join(present)})"
            )
        extra = [c for c in present if c not in table.column_names]
        if extra:
            fstats.ignored_columns = extra
            stats.warnings.append(f"{path.name}: ignored unknown column(s) {', '.join(extra)}")
        raw_strings = frame.select(
            [pl.col(c).cast(pl.Utf8).alias(c) if c in present else pl.lit(None, pl.Utf8).alias(c) for c in table.column_names]
        )
        typed = frame.select(
            [
                (_typed(col, frame.schema[col.name]) if col.name in present else pl.lit(None, POLARS_TYPES[col.type])).alias(col.name)
                for col in table.columns
            ]
        )
        record = raw_strings.select(pl.struct(pl.all()).struct.json_encode().alias("raw_record"))
        originals = raw_strings.rename({c: f"_raw_{c}" for c in table.column_names})
        frames.append(
            pl.concat([typed, originals, record], how="horizontal").with_columns(
                pl.lit(str(path)).alias("_source_file"), frame["_source_line"].alias("_source_line")
            )
        )
        if bad.height:
            broken.append(bad)
    if not frames:
        rows = pl.DataFrame(
            schema={**{c.name: POLARS_TYPES[c.type] for c in table.columns}, **{f"_raw_{c}": pl.Utf8 for c in table.column_names}, "raw_record": pl.Utf8, "_source_file": pl.Utf8, "_source_line": pl.Int64}
        )
    else:
        rows = pl.concat(frames, how="vertical_relaxed")
    rows = _apply_rules(table, rows, partition, now, references)
    good = rows.filter(pl.col("_reason").is_null())
    bad_rows = rows.filter(pl.col("_reason").is_not_null())
    quarantine = pl.concat(
        [
            bad_rows.select(
                pl.col("_reason").alias("reason"),
                pl.col("_column").alias("column_name"),
                pl.col("_bad_value").alias("bad_value"),
                pl.col("_source_file").alias("source_file"),
                pl.col("_source_line").alias("source_line"),
                pl.lit(None, pl.Utf8).alias("partition_key"),
                pl.lit(None, pl.Utf8).alias("run_id"),
                pl.col("raw_record"),
                pl.lit(None, pl.Datetime("us")).alias("quarantined_at"),
            ),
            *broken,
        ],
        how="vertical_relaxed",
    ).with_columns(
        pl.lit(str(partition) if partition else None, pl.Utf8).alias("partition_key"),
        pl.lit(run_id).alias("run_id"),
        pl.lit(now).cast(pl.Datetime("us")).alias("quarantined_at"),
    )
    loaded = good.select([c.name for c in table.columns] + ["_source_file", "_source_line"])
    if table.name in ("users", "events") and "user_id" in loaded.columns:
        loaded = loaded.with_columns(_pseudonymize(pl.col("user_id")).alias("user_id"))
    contacts = None
    pii = [c.name for c in table.columns if c.pii]
    if pii:
        contacts = loaded.select("user_id", *pii)
        loaded = loaded.drop(pii)
    if table.name == "feedback":
        loaded = loaded.with_columns(_feedback_id().alias("feedback_id"))
    # Per-file reconciliation.
    loaded_per_file = _rows_per_file(loaded["_source_file"])
    quarantined_per_file = _rows_per_file(quarantine["source_file"])
    for f in stats.per_file:
        f.rows_loaded = loaded_per_file.get(f.file, 0)
        f.rows_quarantined = quarantined_per_file.get(f.file, 0)
    stats.rows_read = sum(f.rows_read for f in stats.per_file)
    stats.rows_loaded = loaded.height
    stats.rows_quarantined = quarantine.height
    stats.quarantine_reasons = dict(Counter(quarantine["reason"].to_list()))
    if table.time_column and loaded.height:
        stats.min_time = loaded[table.time_column].min()
        stats.max_time = loaded[table.time_column].max()
    if not stats.reconciled:  # a bug here would lose rows silently: fail loudly instead
        raise AssertionError(f"landing/{table.name}: rows read != loaded + quarantined: {stats.per_file}")
    return LandingBatch(loaded=loaded, quarantined=quarantine, contacts=contacts, stats=stats)


def _rows_per_file(paths: pl.Series) -> Counter:
    """Rows per file name, counted in polars: a Path per row cost 60 % of reading a 700k-row day."""
    counts: Counter = Counter()
    for path, n in paths.drop_nulls().value_counts().iter_rows():
        counts[Path(path).name] += n
    return counts


def _feedback_id() -> pl.Expr:
    return pl.concat_str(
        [pl.col("delivery_id"), pl.col("event"), pl.col("event_at").dt.strftime("%Y-%m-%dT%H:%M:%S%.f")], separator="|"
    )


def _apply_rules(
    table: LandingTable, rows: pl.DataFrame, partition: date | None, now: datetime, references: References
) -> pl.DataFrame:
    """Attach `_reason`, `_column`, `_bad_value` to each row: the first rule it breaks, or null."""
    checks: list[tuple[pl.Expr, str, str, pl.Expr]] = []  # (failed?, reason, column, value)
    for col in table.columns:
        raw = pl.col(f"_raw_{col.name}")
        typed = pl.col(col.name)
        raw_present = raw.is_not_null() & (raw.str.strip_chars() != "")
        if col.required:
            checks.append((~raw_present, "missing_required", col.name, raw))
        if col.type != "string":
            checks.append((raw_present & typed.is_null(), _unparseable_reason(col), col.name, raw))
        if col.allowed:
            checks.append((typed.is_not_null() & ~typed.is_in(list(col.allowed)), "unknown_value", col.name, raw))
        if col.min_exclusive is not None:
            reason = "non_positive_price" if col.name == "price" else "non_positive_value"
            checks.append((typed.is_not_null() & (typed <= col.min_exclusive), reason, col.name, raw))
        if col.min_value is not None:
            checks.append((typed.is_not_null() & (typed < col.min_value), "out_of_range", col.name, raw))
        if col.max_value is not None:
            checks.append((typed.is_not_null() & (typed > col.max_value), "out_of_range", col.name, raw))
    if table.time_column:
        t = pl.col(table.time_column)
        raw_t = pl.col(f"_raw_{table.time_column}")
        if partition is not None:
            start = datetime(partition.year, partition.month, partition.day)
            end = start + timedelta(days=1)
            checks.append((t.is_not_null() & ((t < start) | (t >= end)), "outside_partition", table.time_column, raw_t))
        checks.append((t.is_not_null() & (t > now), "future_timestamp", table.time_column, raw_t))
    reason = pl.lit(None, pl.Utf8)
    column = pl.lit(None, pl.Utf8)
    value = pl.lit(None, pl.Utf8)
    for failed, r, c, v in reversed(checks):  # the first rule in the list wins
        reason = pl.when(failed).then(pl.lit(r)).otherwise(reason)
        column = pl.when(failed).then(pl.lit(c)).otherwise(column)
        value = pl.when(failed).then(v.cast(pl.Utf8)).otherwise(value)
    rows = rows.with_columns(reason.alias("_reason"), column.alias("_column"), value.alias("_bad_value"))
    # Keys: duplicates within the batch (first occurrence wins) and against other loaded partitions.
    key = "feedback_id" if table.name == "feedback" else table.key
    key_expr = _feedback_id() if table.name == "feedback" else pl.col(key)
    ok = pl.col("_reason").is_null()
    rows = rows.with_columns(key_expr.alias("_key"))
    dup_in_batch = ok & pl.col("_key").is_not_null() & (pl.int_range(pl.len()).over(pl.col("_key"), order_by="_source_line") > 0)
    rows = _flag(rows, dup_in_batch, "duplicate_key", table.key, pl.col("_key"))
    if references.key_exists_elsewhere is not None and rows.height:
        exists = references.key_exists_elsewhere(rows["_key"])
        rows = _flag(rows, pl.lit(exists), "duplicate_key", table.key, pl.col("_key"))
    for column_name, lookup in references.known.items():
        if rows.height:
            values = rows[column_name]
            known = lookup(values)
            missing = values.is_not_null() & ~known
            rows = _flag(rows, pl.lit(missing), "unknown_reference", column_name, pl.col(column_name).cast(pl.Utf8))
    return rows.drop("_key")


def _flag(rows: pl.DataFrame, condition: pl.Expr, reason: str, column: str, value: pl.Expr) -> pl.DataFrame:
    hit = pl.col("_reason").is_null() & condition
    return rows.with_columns(
        pl.when(hit).then(pl.lit(reason)).otherwise(pl.col("_reason")).alias("_reason"),
        pl.when(hit).then(pl.lit(column)).otherwise(pl.col("_column")).alias("_column"),
        pl.when(hit).then(value.cast(pl.Utf8)).otherwise(pl.col("_bad_value")).alias("_bad_value"),
    )
