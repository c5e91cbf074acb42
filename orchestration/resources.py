"""Dagster resources: the promoloop home (paths + the one DuckDB warehouse) and dbt.

Connections are opened only inside assets and checks (DuckDB has one writer); sensors use paths alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.settings import PromoPaths, promo_home


class PromoHome(dg.ConfigurableResource):
    """`$PROMO_HOME` and its warehouse. An empty `home` means: read `PROMO_HOME` when the run starts."""

    home: str = ""

    @property
    def paths(self) -> PromoPaths:
        return PromoPaths(Path(self.home).resolve() if self.home else promo_home())

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.paths.warehouse
        path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def export_env(self) -> None:
        """dbt's profile reads PROMO_WAREHOUSE; set it (absolute) before dbt runs in a subprocess."""
        os.environ["PROMO_HOME"] = str(self.paths.home)
        os.environ["PROMO_WAREHOUSE"] = str(self.paths.warehouse)
