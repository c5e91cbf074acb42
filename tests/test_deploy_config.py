"""docs/deploy/ is configuration that loads: Dagster's own instance-config validation accepts the dagster.yaml
files, the per-step overrides name real steps, and the environment the Helm values set selects what the
docs say it does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from orchestration.instance import DAGSTER_YAML

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


@pytest.mark.parametrize("name", ["dagster-k8s.yaml", "dagster-celery.yaml"])
def test_instance_configs_pass_dagsters_validation(tmp_path, name):
    shutil.copy(DEPLOY / name, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # schema + the pools/run-queue conflict rules
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert "postgres" in config["storage"]


def test_local_instance_config_passes_too(tmp_path):
    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML)
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_helm_values_pools_and_environment(monkeypatch, tmp_path):
    from orchestration.executors import executor_name
    from orchestration.settings import warehouse_target

    values = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())
    # What the chart renders into dagster.yaml from these keys (templates/helpers/instance/_concurrency.tpl
    # and _run-coordinator.tpl: camelCase values to snake_case config, unset keys left out), validated by
    # Dagster: run limits must not sit on the run coordinator beside `concurrency`.
    snake = {"defaultLimit": "default_limit", "granularity": "granularity", "opGranularityRunBuffer": "op_granularity_run_buffer",
             "maxConcurrentRuns": "max_concurrent_runs", "tagConcurrencyLimits": "tag_concurrency_limits",
             "dequeueUseThreads": "dequeue_use_threads", "dequeueNumWorkers": "dequeue_num_workers",
             "dequeueIntervalSeconds": "dequeue_interval_seconds"}
    concurrency = values["concurrency"]
    assert concurrency["enabled"]
    rendered = {
        "concurrency": {part: {snake[k]: v for k, v in concurrency[part].items()} for part in ("pools", "runs")},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
            "config": {snake[k]: v for k, v in
                       values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"].items()},
        },
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "orchestration.definitions"]
    env = {item["name"]: item["value"] for item in deployment["env"]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert executor_name() == "k8s"
    target = warehouse_target(tmp_path)
    assert (target.target, target.location, target.extensions) == ("shared", "md:promoloop", ("motherduck",))
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    assert env["PROMO_HOME"] in mounts


def test_gpu_step_overrides_name_the_training_steps():
    from orchestration.definitions import build_definitions

    run_config = yaml.safe_load((DEPLOY / "run-config-k8s.yaml").read_text())
    per_step = run_config["execution"]["config"]["per_step_k8s_config"]
    defs = build_definitions()
    steps = {
        node.name
        for job in ("training_job", "retraining_job", "copywriting_job")
        for node in defs.resolve_job_def(job).nodes
    }
    assert set(per_step) <= steps, set(per_step) - steps
    assert all(cfg["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == 1 for cfg in per_step.values())


def test_executor_run_configs_validate_where_installed():
    """With dagster-k8s / dagster-celery installed, their executors' own schemas check the run configs."""
    from dagster._config import validate_config

    for module, attr, name in (("dagster_k8s", "k8s_job_executor", "run-config-k8s.yaml"),
                               ("dagster_celery", "celery_executor", "run-config-celery.yaml")):
        try:
            executor = getattr(__import__(module), attr)
        except ImportError:
            continue
        config = yaml.safe_load((DEPLOY / name).read_text())["execution"]["config"]
        result = validate_config(executor.config_schema.config_type, config)
        assert result.success, (name, [e.message for e in result.errors])
    pytest.importorskip("dagster_k8s", reason="dagster-k8s not installed: the k8s run config's schema check is skipped")
