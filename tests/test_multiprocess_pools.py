"""The multiprocess executor with the instance's pool limits, as a deployment runs it (not in-process).

Two ingestion assets that do not depend on each other would start at once in two subprocesses; both write
DuckDB, so pool `duckdb` (limit 1 in `dagster.yaml`) must make one wait for the other. The run goes through
`execute_job` on a real instance in a temp dir; the event log says what happened.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.executors import executor_from_env, executor_name
from orchestration.instance import ensure_dagster_home

JOB = "pool_probe_job"
REPO_ROOT = Path(__file__).resolve().parent.parent


def pool_probe_job() -> dg.JobDefinition:
    """raw/users and raw/products (no dependency between them, both pool `duckdb`), without their checks.

    Module-level so the multiprocess executor's subprocesses can reconstruct it.
    """
    from orchestration.defs import ingest
    from orchestration.resources import PromoHome

    selection = dg.AssetSelection.assets(["raw", "users"], ["raw", "products"]).without_checks()
    defs = dg.Definitions(
        assets=ingest.ingest_assets,
        jobs=[dg.define_asset_job(JOB, selection=selection)],
        resources={"promo": PromoHome()},
        executor=executor_from_env(),
    )
    return defs.resolve_job_def(JOB)


def _write_landing(home: Path) -> None:
    users = home / "landing" / "users"
    products = home / "landing" / "products"
    users.mkdir(parents=True)
    products.mkdir(parents=True)
    (users / "users.csv").write_text(
        "user_id,consent_push,consent_sms,consent_email\n" + "".join(f"u{i},true,false,true\n" for i in range(20))
    )
    (products / "products.csv").write_text(
        "product_id,title,category,price\n" + "".join(f"p{i},Item {i},books,{10 + i}.5\n" for i in range(10))
    )


def _step_intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or record.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[record.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            ends[record.step_key] = record.timestamp
    return {key: (starts[key], ends[key]) for key in starts}


def test_multiprocess_executor_respects_the_duckdb_pool(tmp_path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    _write_landing(home)
    monkeypatch.setenv("PROMO_HOME", str(home))
    monkeypatch.setenv("PROMO_EXECUTOR", "multiprocess")
    # The step subprocesses import this test module and orchestration/ by name.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    assert executor_name() == "multiprocess"

    dagster_home = ensure_dagster_home(tmp_path / "dagster")  # the dagster.yaml the demo writes: pools limit 1
    assert "default_limit: 1" in (dagster_home / "dagster.yaml").read_text()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        run_config = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
        result = dg.execute_job(dg.reconstructable(pool_probe_job), instance=instance, run_config=run_config)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        run_id = result.run_id

        steps = _step_intervals(instance, run_id)
        assert set(steps) == {"raw__users", "raw__products"}, steps
        (a_start, a_end), (b_start, b_end) = sorted(steps.values())
        assert a_end <= b_start, f"duckdb-pool steps overlapped: {steps}"
        # ...because the pool held one back, not by chance: the executor says so in the event log.
        engine_messages = [
            record.dagster_event.message or ""
            for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        ]
        assert any("blocked by limit for pool duckdb" in m for m in engine_messages), engine_messages
        # Each step ran in its own process (the multiprocess executor, not in-process).
        pids = {
            record.dagster_event.pid
            for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        }
        assert len(pids) == 2, pids

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from raw.users").fetchone() == (20,)
        assert con.execute("select count(*) from raw.products").fetchone() == (10,)
    finally:
        con.close()


def test_executor_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PROMO_EXECUTOR", raising=False)
    assert executor_from_env() is dg.multi_or_in_process_executor  # Dagster's own default, unchanged
    monkeypatch.setenv("PROMO_EXECUTOR", "in-process")
    assert executor_from_env() is dg.in_process_executor
    monkeypatch.setenv("PROMO_EXECUTOR", "kubernetes")
    with pytest.raises(ValueError, match="PROMO_EXECUTOR='kubernetes' is not one of multiprocess, in_process, k8s"):
        executor_from_env()
    for name, package in (("k8s", "dagster_k8s"), ("celery", "dagster_celery")):
        monkeypatch.setenv("PROMO_EXECUTOR", name)
        try:
            __import__(package)
        except ImportError:
            with pytest.raises(ImportError, match=rf"needs {package.replace('_', '-')}.*promoloop\["):
                executor_from_env()
        else:  # installed here: the real executor definition is returned
            assert executor_from_env().name.startswith(name)
