"""The executor the code location runs its jobs with, chosen by `PROMO_EXECUTOR` (docs/scaling.md).

The same assets, pools and resources run on every executor; only where a step's process lives changes:

| `PROMO_EXECUTOR` | executor | steps run |
|---|---|---|
| `multiprocess` (default) | Dagster's default, `multi_or_in_process_executor` | one subprocess each, on the run worker's machine (run config `execution: config: multiprocess: max_concurrent: N`; `in_process:` instead for one run) |
| `in_process` | `in_process_executor` | one after another in the run worker (what the demo and tests use) |
| `k8s` | `dagster_k8s.k8s_job_executor` | one Kubernetes Job each (the official Helm chart's run launcher) |
| `celery` | `dagster_celery.celery_executor` | on Celery workers behind a broker |
| `celery_k8s` | `dagster_celery_k8s.celery_k8s_job_executor` | Kubernetes Jobs submitted through Celery queues |

The pool limits (`duckdb` 1, `gpu` 1) are instance settings (`dagster.yaml` `concurrency.pools`), so they hold
across runs and executors alike. dagster-k8s and dagster-celery are optional (`pip install
'promoloop[k8s]'` / `'promoloop[celery]'`): they are imported only when selected.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

import dagster as dg

ENV_VAR = "PROMO_EXECUTOR"
DEFAULT = "multiprocess"


def _builtin(name: str) -> Callable[[], dg.ExecutorDefinition]:
    return lambda: getattr(dg, name)


def _optional(module: str, attr: str, extra: str) -> Callable[[], dg.ExecutorDefinition]:
    def load() -> dg.ExecutorDefinition:
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as err:
            package = module.replace("_", "-")
            raise ImportError(
                f"{ENV_VAR}={os.environ.get(ENV_VAR)!r} needs {package}, which is not installed: "
                f"pip install 'promoloop[{extra}]' (or pip install {package} matching your dagster version)"
            ) from err

    return load


EXECUTORS: dict[str, Callable[[], dg.ExecutorDefinition]] = {
    "multiprocess": _builtin("multi_or_in_process_executor"),
    "in_process": _builtin("in_process_executor"),
    "k8s": _optional("dagster_k8s", "k8s_job_executor", "k8s"),
    "celery": _optional("dagster_celery", "celery_executor", "celery"),
    "celery_k8s": _optional("dagster_celery_k8s", "celery_k8s_job_executor", "celery-k8s"),
}


def executor_name() -> str:
    """The selected executor's name; an unknown value is an error that lists the known ones."""
    name = (os.environ.get(ENV_VAR) or DEFAULT).strip().lower().replace("-", "_")
    if name not in EXECUTORS:
        raise ValueError(f"{ENV_VAR}={os.environ.get(ENV_VAR)!r} is not one of {', '.join(EXECUTORS)}")
    return name


def executor_from_env() -> dg.ExecutorDefinition:
    """The executor definition for `Definitions(executor=...)`, read when the code location loads."""
    return EXECUTORS[executor_name()]()
