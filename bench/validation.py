"""Validating one 10M-row events partition: the GX suite `raw_events` (our runner: partition pulled from
DuckDB into pandas with int64/datetime64[ns] columns) beside plain DuckDB SQL computing the same checks.

    python -m bench.validation [--events 10000000]

Target: GX <= 5x the SQL time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from bench.common import write_result
from bench.feature_build import generate
from expectations.runner import drift_params, partition_params, read_frame, validate_frame

DAY = datetime(2026, 1, 1)

SQL_CHECKS = f"""
select
    count(*) filter (where event_id is null) as null_event_id,
    count(*) - count(distinct event_id) as duplicate_event_id,
    count(*) filter (where user_id is null) as null_user_id,
    count(*) filter (where event_at is null) as null_event_at,
    count(*) filter (where event_type not in ('view', 'favorite', 'cart', 'purchase', 'review')) as bad_type,
    count(*) filter (where price < 0) as bad_price,
    count(*) filter (where quantity < 0 or quantity > 1000) as bad_quantity,
    count(*) filter (where platform not in ('app', 'web', 'mini_program')) as bad_platform,
    count(*) filter (where event_at < timestamp '{DAY}' or event_at > timestamp '{DAY + timedelta(days=1)}') as outside_day,
    count(*) as row_count,
    count(distinct user_id) / count(*) as unique_user_share
from raw.events where event_date = DATE '{DAY.date()}'
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        generate(con, args.events, n_users=200_000, n_products=20_000, days=1)
        start = time.perf_counter()
        sql_result = con.execute(SQL_CHECKS).fetchall()[0]
        sql_seconds = time.perf_counter() - start
        params = {**partition_params(DAY, DAY + timedelta(days=1)), **drift_params(args.events)}
        # Importing GX and building its context is paid once per process (seconds), not per validation.
        validate_frame(read_frame(con, "raw.events", "false"), "raw_events", params)
        start = time.perf_counter()
        frame = read_frame(con, "raw.events", where=f"event_date = DATE '{DAY.date()}'")
        fetch_seconds = time.perf_counter() - start
        summary = validate_frame(frame, "raw_events", params)
        gx_seconds = time.perf_counter() - start
        con.close()
    ratio = gx_seconds / sql_seconds
    print(f"DuckDB SQL, same checks : {sql_seconds:6.2f} s  (failures found: {sum(sql_result[:9])})")
    print(
        f"GX suite raw_events     : {gx_seconds:6.2f} s  ({summary.evaluated} expectations, {len(summary.failed)} "
        f"failed; {fetch_seconds:.2f} s of it fetching the partition into pandas)"
    )
    print(f"ratio GX / SQL          : {ratio:.2f}x  (target <= 5x)")
    write_result(
        "validation",
        round(ratio, 3),
        "x",
        reference=round(sql_seconds, 3),
        ratio=round(ratio, 3),
        target="<= 5.0",
        passed=ratio <= 5.0,
        extra={"gx_seconds": round(gx_seconds, 2), "fetch_seconds": round(fetch_seconds, 2), "sql_seconds": round(sql_seconds, 2), "rows": args.events,
               "expectations": summary.evaluated},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
