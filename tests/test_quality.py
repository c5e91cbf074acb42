"""Great Expectations suites as blocking asset checks: a corrupted partition fails its check with readable
details, the run fails (so nothing downstream runs from it), and a clean one passes."""

from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from expectations.runner import load_suite, validate_frame
from orchestration.instance import get_instance

DAY = date.today() - timedelta(days=3)
HEADER = "event_id,user_id,event_type,event_at,product_id,session_id,quantity,price,platform\n"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMO_HOME", str(tmp_path))
    landing = tmp_path / "landing"
    for table, text in {
        "users": "user_id,consent_push,consent_sms,consent_email\nu1,true,true,false\n",
        "products": "product_id,title,category,price\np1,Tee,apparel,20\n",
        "offers": "offer_id,offer_type,value\no1,percent_off,10\n",
    }.items():
        (landing / table).mkdir(parents=True)
        (landing / table / f"{table}.csv").write_text(text)
    return tmp_path


def _run(home: Path, job: str, partition: str | None = None) -> dg.ExecuteInProcessResult:
    from orchestration.definitions import build_definitions

    defs = build_definitions()
    instance = get_instance(home / "dagster")
    return defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition, raise_on_error=False)


def _events(home: Path, rows: list[str]) -> None:
    folder = home / "landing" / "events" / f"date={DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.csv").write_text(HEADER + "".join(rows))


def _at(hour: int) -> str:
    return datetime(DAY.year, DAY.month, DAY.day, hour).isoformat()


def test_clean_partition_passes_its_checks(home: Path) -> None:
    assert _run(home, "ingest_catalog_job").success
    _events(home, [f"e1,u1,view,{_at(9)},p1,s1,1,20,app\n", f"e2,u1,purchase,{_at(10)},p1,s1,2,20,app\n"])
    result = _run(home, "ingest_events_job", str(DAY))
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["gx_contract"].passed and evaluations["gx_drift"].passed, evaluations["gx_drift"].metadata
    assert evaluations["gx_contract"].metadata["scope"].value == f"{DAY}..{DAY}"


def test_corrupted_partition_fails_the_blocking_check_with_details(home: Path) -> None:
    assert _run(home, "ingest_catalog_job").success
    # Rows the row-level rules accept but the table contract rejects: absurd quantities.
    _events(home, [f"e1,u1,purchase,{_at(9)},p1,s1,5000,20,app\n", f"e2,u1,view,{_at(9)},p1,s1,1,20,app\n"])
    result = _run(home, "ingest_events_job", str(DAY))
    assert not result.success  # a blocking ERROR check fails the run: nothing downstream starts from it
    contract = next(e for e in result.get_asset_check_evaluations() if e.check_name == "gx_contract")
    assert not contract.passed and contract.severity == dg.AssetCheckSeverity.ERROR
    failures = contract.metadata["failures"].value
    assert "expect_column_values_to_be_between" in failures and "quantity" in failures and "5000" in failures


def test_suites_are_data_and_severity_splits_errors_from_drift() -> None:
    suite = load_suite("raw_products")
    assert {e["meta"]["severity"] for e in suite["expectations"]} == {"error", "warn"}
    frame = pd.DataFrame(
        {"product_id": ["p1", "p1"], "title": ["a", "b"], "category": ["x", "x"], "price": [10.0, 0.0], "cost": [1.0, 1.0]}
    )
    summary = validate_frame(frame, "raw_products")
    failed = {(f.expectation, f.column) for f in summary.failed}
    assert ("expect_column_values_to_be_unique", "product_id") in failed
    assert ("expect_column_values_to_be_between", "price") in failed
    assert not summary.passed("error") and summary.passed("warn")


def test_a_backfill_is_validated_a_few_days_at_a_time() -> None:
    from orchestration.defs.quality import day_chunks

    first = date(2026, 11, 1)
    rows = {first + timedelta(days=k): 400 for k in range(10)}
    rows[first + timedelta(days=4)] = 5000  # a day bigger than the budget stands alone
    chunks = day_chunks(first, first + timedelta(days=9), rows, max_rows=1000)
    assert chunks[0] == (first, first + timedelta(days=1))
    assert (first + timedelta(days=4), first + timedelta(days=4)) in chunks
    covered = [c[0] + timedelta(days=k) for c in chunks for k in range((c[1] - c[0]).days + 1)]
    assert covered == [first + timedelta(days=k) for k in range(10)]  # every day once, in order
    assert all(sum(rows[c[0] + timedelta(days=k)] for k in range((c[1] - c[0]).days + 1)) <= 1000
               for c in chunks if c[0] != c[1])
    assert day_chunks(first, first, {}, max_rows=1000) == [(first, first)]
