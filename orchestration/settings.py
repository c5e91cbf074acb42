"""Where promoloop keeps its files, and the knobs a deployment sets through the environment.

Everything is read lazily (never at import), so tests and the CLI can point `PROMO_HOME` elsewhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

# The attached warehouse's catalog name under PROMO_DBT_TARGET=shared (dbt's profile uses the same alias).
SHARED_ALIAS = "promoloop"
DBT_TARGETS = ("dev", "shared")
# `md:db`, `s3://bucket/x.duckdb`, `ducklake:...`: a scheme of two letters or more (not a Windows drive).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")

# The first day the daily partitions know about. A shop whose history starts earlier sets PROMO_START_DATE.
DEFAULT_START_DATE = "2025-01-01"


@dataclass(frozen=True)
class PromoPaths:
    """The layout of `$PROMO_HOME` (docs/contracts.md)."""

    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def warehouse(self) -> Path:
        """The warehouse as a local DuckDB file (what the demo, report and benches open directly)."""
        location = self.warehouse_target.location
        if is_uri(location):
            raise ValueError(
                f"PROMO_WAREHOUSE={location!r} is not a local file; this command reads a DuckDB file directly "
                "(set PROMO_WAREHOUSE to a file path, or use the Dagster assets, which open any target)"
            )
        return Path(location)

    @property
    def warehouse_target(self) -> WarehouseTarget:
        return warehouse_target(self.home)

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def simulator(self) -> Path:
        return self.home / "simulator"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def dbt_runs(self) -> Path:
        """dbt's target folders of the Dagster runs on this home, and the partial-parse state they share."""
        return self.home / "dbt"

    def landing_table(self, table: str) -> Path:
        return self.landing / table

    def landing_partition(self, table: str, day: date | str) -> Path:
        return self.landing / table / f"date={day}"


def is_uri(location: str) -> bool:
    return bool(_URI.match(location))


DEFAULT_MEMORY_LIMIT = "50%"
_MEMORY_LIMIT = re.compile(r"\d+(\.\d+)?\s*(%|[KMGT]i?B)", re.IGNORECASE)


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the warehouse lives and how a DuckDB session reaches it (dbt_project/profiles.yml reads the
    same variables, so Dagster's own connections and dbt always agree).

    `dev` (default): DuckDB opens `location` itself: the embedded file, or `md:NAME` for MotherDuck.
    `shared`: an in-memory DuckDB session ATTACHes `location` as catalog `promoloop` and uses it: a DuckDB
    file on a shared volume, `md:NAME`, a DuckLake catalog (`ducklake:...`, with `data_path` for its Parquet
    on object storage) or, read-only, a DuckDB file on S3/HTTP.
    """

    target: str
    location: str
    extensions: tuple[str, ...] = ()
    data_path: str | None = None
    # DuckDB's own default is 80 % of RAM per process; dbt's subprocess and Dagster's process together
    # then overran the machine at a million users. Beyond the limit DuckDB spills to disk.
    memory_limit: str = DEFAULT_MEMORY_LIMIT

    @property
    def database(self) -> str:
        """The catalog that dbt models and Dagster writes land in."""
        if self.target == "shared":
            return SHARED_ALIAS
        if self.location.startswith("md:"):
            return self.location[3:].split("?", 1)[0] or "my_db"
        return Path(self.location).stem


def warehouse_target(home: Path) -> WarehouseTarget:
    """Read `PROMO_DBT_TARGET`, `PROMO_WAREHOUSE`, `PROMO_WAREHOUSE_DATA_PATH`, `PROMO_DUCKDB_EXTENSIONS`,
    `PROMO_DUCKDB_MEMORY_LIMIT`.

    Local paths are made absolute (dbt runs in dbt_project/); URIs are passed through untouched.
    """
    target = os.environ.get("PROMO_DBT_TARGET", "dev").strip() or "dev"
    if target not in DBT_TARGETS:
        raise ValueError(f"PROMO_DBT_TARGET={target!r} is not one of {', '.join(DBT_TARGETS)} (dbt_project/profiles.yml)")
    location = os.environ.get("PROMO_WAREHOUSE", "").strip()
    if not location:
        if target == "shared":
            raise ValueError(
                "PROMO_DBT_TARGET=shared needs PROMO_WAREHOUSE: the database to attach (a DuckDB file on a "
                "shared volume, md:NAME, ducklake:..., or s3://.../warehouse.duckdb read-only)"
            )
        location = str(home / "warehouse.duckdb")
    elif not is_uri(location):
        location = str(Path(location).expanduser().resolve())
    extensions = tuple(e.strip() for e in os.environ.get("PROMO_DUCKDB_EXTENSIONS", "").split(",") if e.strip())
    for name in extensions:
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ValueError(f"PROMO_DUCKDB_EXTENSIONS: {name!r} is not an extension name (comma-separated names)")
    memory_limit = os.environ.get("PROMO_DUCKDB_MEMORY_LIMIT", "").strip() or DEFAULT_MEMORY_LIMIT
    if not _MEMORY_LIMIT.fullmatch(memory_limit):
        raise ValueError(
            f"PROMO_DUCKDB_MEMORY_LIMIT={memory_limit!r} is not a DuckDB memory limit (e.g. 50%, 8GB, 12GiB)"
        )
    return WarehouseTarget(
        target, location, extensions, os.environ.get("PROMO_WAREHOUSE_DATA_PATH") or None, memory_limit
    )


def promo_home() -> Path:
    return Path(os.environ.get("PROMO_HOME", ".promoloop")).expanduser().resolve()


def paths() -> PromoPaths:
    return PromoPaths(promo_home())


def partitions_start_date() -> str:
    return os.environ.get("PROMO_START_DATE", DEFAULT_START_DATE)


def scoring_timezone() -> str:
    """The timezone of the daily partitions and the 06:00 schedule (default UTC, like landing timestamps)."""
    return os.environ.get("PROMO_TIMEZONE", "UTC")
