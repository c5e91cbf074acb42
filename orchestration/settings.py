"""Where promoloop keeps its files, and the knobs a deployment sets through the environment.

Everything is read lazily (never at import), so tests and the CLI can point `PROMO_HOME` elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

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
        return Path(os.environ.get("PROMO_WAREHOUSE") or self.home / "warehouse.duckdb")

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

    def landing_table(self, table: str) -> Path:
        return self.landing / table

    def landing_partition(self, table: str, day: date | str) -> Path:
        return self.landing / table / f"date={day}"


def promo_home() -> Path:
    return Path(os.environ.get("PROMO_HOME", ".promoloop")).expanduser().resolve()


def paths() -> PromoPaths:
    return PromoPaths(promo_home())


def partitions_start_date() -> str:
    return os.environ.get("PROMO_START_DATE", DEFAULT_START_DATE)


def scoring_timezone() -> str:
    """The timezone of the daily partitions and the 06:00 schedule (default UTC, like landing timestamps)."""
    return os.environ.get("PROMO_TIMEZONE", "UTC")
