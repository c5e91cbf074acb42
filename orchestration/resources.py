"""Dagster resources: the promoloop home (paths + the one DuckDB warehouse) and dbt.

Connections are opened only inside assets and checks (DuckDB has one writer); sensors use paths alone.
Which warehouse is opened follows `PROMO_DBT_TARGET` / `PROMO_WAREHOUSE` (orchestration.settings.WarehouseTarget),
exactly as dbt's profile does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.settings import PromoPaths, WarehouseTarget, is_uri, promo_home


class PromoHome(dg.ConfigurableResource):
    """`$PROMO_HOME` and its warehouse. An empty `home` means: read `PROMO_HOME` when the run starts."""

    home: str = ""

    @property
    def paths(self) -> PromoPaths:
        return PromoPaths(Path(self.home).resolve() if self.home else promo_home())

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = open_warehouse(self.paths.warehouse_target, read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def export_env(self) -> None:
        """dbt's profile reads PROMO_WAREHOUSE; set it (absolute, or the URI) before dbt runs in a subprocess."""
        os.environ["PROMO_HOME"] = str(self.paths.home)
        os.environ["PROMO_WAREHOUSE"] = self.paths.warehouse_target.location


def open_warehouse(target: WarehouseTarget, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB session on the warehouse whose default catalog is the warehouse, so `raw.users` means the same
    table on every target. `shared` attaches the location into an in-memory session (dbt's `attach:`)."""
    if target.target == "dev" and not is_uri(target.location):
        Path(target.location).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(
            ":memory:" if target.target == "shared" else target.location,
            read_only=read_only and target.target != "shared",
            config={"memory_limit": target.memory_limit},
        )
    except duckdb.Error as err:
        raise duckdb.Error(f"cannot open the warehouse {target.location!r} (PROMO_WAREHOUSE, target {target.target}): {err}") from err
    try:
        for name in target.extensions:  # as dbt-duckdb does: installed on first use (the image should pre-install)
            try:
                con.execute(f"LOAD {name}")
            except duckdb.Error:
                con.execute(f"INSTALL {name}")
                con.execute(f"LOAD {name}")
        if target.target == "shared":
            options = ["READ_ONLY"] if read_only else []
            if target.data_path:
                options.append("DATA_PATH '" + target.data_path.replace("'", "''") + "'")
            location = target.location.replace("'", "''")
            con.execute(f"ATTACH '{location}' AS {target.database}" + (f" ({', '.join(options)})" if options else ""))
            con.execute(f"USE {target.database}")
    except duckdb.Error as err:
        con.close()
        raise duckdb.Error(f"cannot attach the warehouse {target.location!r} (PROMO_DBT_TARGET=shared): {err}") from err
    return con
