"""The landing sensors' cursor logic: new file, late file, duplicate file, nothing new."""

from __future__ import annotations

import os
from pathlib import Path

from orchestration.landing_watch import scan_landing


def _drop(folder: Path, day: str, name: str, content: bytes = b"delivery_id,event,event_at\n") -> Path:
    path = folder / f"date={day}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_nothing_landed_yet(tmp_path: Path) -> None:
    scan = scan_landing(tmp_path / "feedback", None)
    assert scan.changed_days == [] and scan.files_seen == 0


def test_new_file_marks_its_day(tmp_path: Path) -> None:
    _drop(tmp_path, "2026-11-01", "a.csv")
    scan = scan_landing(tmp_path, None)
    assert scan.changed_days == ["2026-11-01"]
    assert scan.new_files == ["date=2026-11-01/a.csv"]


def test_nothing_new_after_cursor(tmp_path: Path) -> None:
    _drop(tmp_path, "2026-11-01", "a.csv")
    first = scan_landing(tmp_path, None)
    again = scan_landing(tmp_path, first.cursor)
    assert again.changed_days == [] and again.files_seen == 1


def test_late_file_for_older_day_reruns_that_day_only(tmp_path: Path) -> None:
    _drop(tmp_path, "2026-11-01", "a.csv")
    _drop(tmp_path, "2026-11-02", "a.csv")
    cursor = scan_landing(tmp_path, None).cursor
    _drop(tmp_path, "2026-11-01", "late.csv")
    scan = scan_landing(tmp_path, cursor)
    assert scan.changed_days == ["2026-11-01"]
    assert scan.new_files == ["date=2026-11-01/late.csv"]


def test_duplicate_file_changes_nothing_but_a_rewrite_does(tmp_path: Path) -> None:
    path = _drop(tmp_path, "2026-11-01", "a.csv")
    cursor = scan_landing(tmp_path, None).cursor
    # The same file delivered again (same bytes, same mtime) is not new.
    stat = path.stat()
    path.write_bytes(path.read_bytes())
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert scan_landing(tmp_path, cursor).changed_days == []
    # A corrected file (new content) re-runs its day.
    path.write_bytes(b"delivery_id,event,event_at\nd1,opened,2026-11-01T10:00:00\n")
    assert scan_landing(tmp_path, cursor).changed_days == ["2026-11-01"]


def test_ignores_non_data_files_and_days_outside_partitions(tmp_path: Path) -> None:
    _drop(tmp_path, "2026-11-01", "_SUCCESS")
    _drop(tmp_path, "1999-01-01", "a.csv")
    (tmp_path / "notes").mkdir()
    scan = scan_landing(tmp_path, None, valid_days={"2026-11-01"})
    assert scan.changed_days == []


def test_feedback_sensor_requests_exactly_the_affected_days(tmp_path: Path, monkeypatch) -> None:
    """The real sensor definition, ticked with build_sensor_context: new, nothing new, late, duplicate."""
    from datetime import date, timedelta

    import dagster as dg

    from orchestration.defs.jobs import ingest_feedback_job
    from orchestration.defs.sensors import landing_sensor

    monkeypatch.setenv("PROMO_HOME", str(tmp_path))
    sensor = landing_sensor("feedback", ingest_feedback_job())
    folder = tmp_path / "landing" / "feedback"
    yesterday, before = (date.today() - timedelta(days=d) for d in (1, 3))
    instance = dg.DagsterInstance.ephemeral()
    from orchestration.definitions import build_definitions

    defs = build_definitions()

    def tick(cursor):
        return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))

    first = tick(None)
    assert not first.run_requests and "no new or changed files" in first.skip_message
    _drop(folder, str(yesterday), "a.csv")
    second = tick(first.cursor)
    assert [r.partition_key for r in second.run_requests] == [str(yesterday)]
    third = tick(second.cursor)
    assert not third.run_requests
    _drop(folder, str(before), "late.csv")
    fourth = tick(third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == [str(before)]
    assert fourth.run_requests[0].run_key != second.run_requests[0].run_key
