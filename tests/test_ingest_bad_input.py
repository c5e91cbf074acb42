"""Each kind of bad input, fed on purpose through the real ingestion asset: the row lands in quarantine
with its reason, column, file and line; rows read = rows loaded + rows quarantined; nothing is lost."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from orchestration.contract import LANDING_TABLES
from orchestration.defs.ingest import ingest_assets
from orchestration.landing import LandingFileError, list_files, read_landing
from orchestration.resources import PromoHome

DAY = date.today() - timedelta(days=2)
HEADER = "event_id,user_id,event_type,event_at,product_id,session_id,quantity,price,platform\n"
ASSETS = {a.key.path[-1]: a for a in ingest_assets}


def _ts(hour: int, minute: int = 0) -> str:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute).isoformat()


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    (landing / "users").mkdir(parents=True)
    (landing / "products").mkdir()
    (landing / "offers").mkdir()
    (landing / "users" / "users.csv").write_text(
        "user_id,locale,timezone,email,phone,consent_push,consent_sms,consent_email\n"
        "u1,zh-CN,Asia/Shanghai,a@example.com,+86-1,true,false,true\n"
        "u2,en-US,America/New_York,b@example.com,+1-2,false,false,false\n"
    )
    (landing / "products" / "products.csv").write_text(
        "product_id,title,brand,category,price,cost\n"
        "p1,Soft Tee,Aurora,apparel,99.0,40\n"
        "p2,Bad Price,Aurora,apparel,0,0\n"
        "p3,Negative,Aurora,apparel,-5,1\n"
    )
    (landing / "offers" / "offers.csv").write_text(
        "offer_id,offer_type,value\n" "o1,percent_off,10\n" "o2,mystery_discount,5\n"
    )
    _materialize(tmp_path, "users")
    _materialize(tmp_path, "products")
    return tmp_path


def _materialize(home: Path, table: str, partition: date | None = None, raise_on_error: bool = True):
    return dg.materialize(
        [ASSETS[table]],
        resources={"promo": PromoHome(home=str(home))},
        partition_key=str(partition) if partition else None,
        raise_on_error=raise_on_error,
        instance=dg.DagsterInstance.ephemeral(),
    )


def _events_dir(home: Path, day: date = DAY) -> Path:
    folder = home / "landing" / "events" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _quarantine(home: Path, table: str = "events") -> pl.DataFrame:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(f"select * from quarantine.{table} order by source_file, source_line").pl()
    finally:
        con.close()


def _count(home: Path, sql: str) -> int:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    mat = result.asset_materializations_for_node(result.all_node_events[0].node_name)[0]
    return {k: v.value for k, v in mat.metadata.items()}


def test_catalogue_rules(home: Path) -> None:
    q = _quarantine(home, "products")
    assert q.select("reason", "column_name", "bad_value", "source_line").rows() == [
        ("non_positive_price", "price", "0", 3),
        ("non_positive_price", "price", "-5", 4),
    ]
    assert _count(home, "select count(*) from raw.products") == 1
    _materialize(home, "offers")
    q = _quarantine(home, "offers")
    assert q.select("reason", "column_name", "bad_value").rows() == [("unknown_value", "offer_type", "mystery_discount")]


def test_pii_goes_to_private_contacts_only(home: Path) -> None:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    raw_cols = [r[0] for r in con.execute("describe raw.users").fetchall()]
    contacts = con.execute("select count(*) from private.user_contacts").fetchall()[0][0]
    con.close()
    assert "email" not in raw_cols and "phone" not in raw_cols
    assert contacts == 2


def test_every_kind_of_bad_event_row_is_quarantined_with_reason_and_line(home: Path) -> None:
    folder = _events_dir(home)
    future = (datetime.now() + timedelta(days=3)).isoformat()
    (folder / "a.csv").write_text(
        HEADER
        + f"e1,u1,view,{_ts(9)},p1,s1,1,99.0,app\n"  # line 2: good
        + "e2,u1,view,not-a-time,p1,s1,1,99.0,app\n"  # 3: unparseable timestamp
        + f"e3,u1,cart,{_ts(9)},p1,s1,two,99.0,app\n"  # 4: unparseable number
        + f"e4,,view,{_ts(9)},p1,s1,1,99.0,app\n"  # 5: missing required user_id
        + f"e5,u1,teleport,{_ts(9)},p1,s1,1,99.0,app\n"  # 6: unknown event_type
        + f"e1,u1,view,{_ts(10)},p1,s1,1,99.0,app\n"  # 7: duplicate within the file
        + f"e6,u404,view,{_ts(9)},p1,s1,1,99.0,app\n"  # 8: user not in users
        + f"e7,u1,view,{_ts(9)},p999,s1,1,99.0,app\n"  # 9: product not in products
        + f"e8,u1,view,{(DAY - timedelta(days=1)).isoformat()}T12:00:00,p1,s1,1,99.0,app\n"  # 10: outside day
        + f"e9,u1,view,{future},p1,s1,1,99.0,app\n"  # 11: in the future (and outside the day)
        + f"e10,u1,purchase,{_ts(11)},p1,s1,1,-3,app\n"  # 12: negative price
    )
    (folder / "b.csv").write_text(HEADER + f"e1,u2,view,{_ts(12)},p1,s2,1,99.0,web\n")  # duplicate across files
    result = _materialize(home, "events", DAY)
    q = _quarantine(home)
    got = {(Path(r["source_file"]).name, r["source_line"]): (r["reason"], r["column_name"]) for r in q.iter_rows(named=True)}
    assert got == {
        ("a.csv", 3): ("unparseable_timestamp", "event_at"),
        ("a.csv", 4): ("unparseable_number", "quantity"),
        ("a.csv", 5): ("missing_required", "user_id"),
        ("a.csv", 6): ("unknown_value", "event_type"),
        ("a.csv", 7): ("duplicate_key", "event_id"),
        ("a.csv", 8): ("unknown_reference", "user_id"),
        ("a.csv", 9): ("unknown_reference", "product_id"),
        ("a.csv", 10): ("outside_partition", "event_at"),
        ("a.csv", 11): ("outside_partition", "event_at"),
        ("a.csv", 12): ("out_of_range", "price"),
        ("b.csv", 2): ("duplicate_key", "event_id"),
    }
    assert (q["partition_key"] == str(DAY)).all() and q["raw_record"].null_count() == 0
    meta = _metadata(result)
    assert meta["rows_read"] == 12 and meta["rows_loaded"] == 1 and meta["rows_quarantined"] == 11
    assert meta["reconciled"] is True


def test_future_timestamp_inside_today_partition(home: Path) -> None:
    today = date.today()
    soon = datetime.now() + timedelta(minutes=30)
    if soon.date() != today:
        pytest.skip("too close to midnight to plant a same-day future event")
    (_events_dir(home, today) / "a.csv").write_text(HEADER + f"e1,u1,view,{soon.isoformat()},p1,s1,1,9,app\n")
    _materialize(home, "events", today)
    assert _quarantine(home)["reason"].to_list() == ["future_timestamp"]


def test_duplicate_against_an_already_loaded_day(home: Path) -> None:
    (_events_dir(home) / "a.csv").write_text(HEADER + f"e1,u1,view,{_ts(9)},p1,s1,1,99.0,app\n")
    _materialize(home, "events", DAY)
    next_day = DAY + timedelta(days=1)
    ts = datetime(next_day.year, next_day.month, next_day.day, 9).isoformat()
    (_events_dir(home, next_day) / "a.csv").write_text(HEADER + f"e1,u1,view,{ts},p1,s1,1,99.0,app\n")
    _materialize(home, "events", next_day)
    assert _quarantine(home).select("reason", "partition_key").rows() == [("duplicate_key", str(next_day))]
    # Re-loading the first day is not a duplicate of itself.
    _materialize(home, "events", DAY)
    assert _count(home, "select count(*) from raw.events") == 1


def test_non_utf8_bytes_and_truncated_last_line(home: Path) -> None:
    good = f"e1,u1,view,{_ts(9)},p1,s1,1,99.0,app\n".encode()
    bad = f"e2,u1,view,{_ts(9)},p1,s1,1,99.0,".encode() + b"\xff\xfeapp\n"
    truncated = f"e3,u1,view,{_ts(9)},p1".encode()
    (_events_dir(home) / "a.csv").write_bytes(HEADER.encode() + good + bad + truncated)
    result = _materialize(home, "events", DAY)
    assert _quarantine(home).select("reason", "source_line").rows() == [("invalid_utf8", 3), ("truncated_line", 4)]
    meta = _metadata(result)
    assert (meta["rows_read"], meta["rows_loaded"], meta["rows_quarantined"]) == (3, 1, 2)


def test_empty_file_and_extra_columns_are_warnings(home: Path) -> None:
    folder = _events_dir(home)
    (folder / "empty.csv").write_text("")
    (folder / "extra.csv").write_text(
        HEADER.rstrip("\n") + ",campaign\n" + f"e1,u1,view,{_ts(9)},p1,s1,1,99.0,app,spring\n"
    )
    result = _materialize(home, "events", DAY)
    meta = _metadata(result)
    assert meta["rows_loaded"] == 1 and meta["rows_quarantined"] == 0
    assert "empty.csv: empty file" in meta["warnings"]
    assert "campaign" in meta["warnings"]


def test_missing_required_column_fails_the_file_and_keeps_earlier_data(home: Path) -> None:
    folder = _events_dir(home)
    (folder / "a.csv").write_text(HEADER + f"e1,u1,view,{_ts(9)},p1,s1,1,99.0,app\n")
    _materialize(home, "events", DAY)
    assert _count(home, "select count(*) from raw.events") == 1
    (folder / "b.csv").write_text("event_id,user_id,event_at\n" + f"e2,u1,{_ts(10)}\n")
    result = _materialize(home, "events", DAY, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.to_string()
    assert "b.csv" in message and "'event_type'" in message
    assert _count(home, "select count(*) from raw.events") == 1  # the day loaded before is untouched


def test_rematerializing_a_partition_replaces_it(home: Path) -> None:
    (_events_dir(home) / "a.csv").write_text(
        HEADER + f"e1,u1,view,{_ts(9)},p1,s1,1,99.0,app\n" + f"e2,u1,oops,{_ts(9)},p1,s1,1,99.0,app\n"
    )
    for _ in range(2):
        _materialize(home, "events", DAY)
        assert _count(home, "select count(*) from raw.events") == 1
        assert _count(home, "select count(*) from quarantine.events") == 1


def test_parquet_and_timezone_aware_timestamps(tmp_path: Path) -> None:
    table = LANDING_TABLES["feedback"]
    path = tmp_path / "f.csv"
    path.write_text(
        "delivery_id,event,event_at,revenue\n"
        f"d1,clicked,{DAY}T10:00:00+08:00,\n"  # 02:00 UTC
        f"d1,clicked,{DAY}T10:00:00+08:00,\n"  # duplicate feedback row
    )
    batch = read_landing(table, list_files(tmp_path), DAY, datetime.now())
    assert batch.loaded["event_at"].to_list() == [datetime(DAY.year, DAY.month, DAY.day, 2)]
    assert batch.quarantined["reason"].to_list() == ["duplicate_key"]
    pq = tmp_path / "pq"
    pq.mkdir()
    batch.loaded.select("delivery_id", "event", "event_at").write_parquet(pq / "f.parquet")
    again = read_landing(table, list_files(pq), DAY, datetime.now())
    assert again.stats.rows_loaded == 1 and again.quarantined.height == 0
    with pytest.raises(LandingFileError, match="'delivery_id'"):
        (pq / "g.csv").write_text("event,event_at\nclicked,2026-01-01T00:00:00\n")
        read_landing(table, list_files(pq), DAY, datetime.now())
