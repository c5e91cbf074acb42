"""Model registry on the file system: `$PROMO_HOME/artifacts/<model_name>/<version>/`.

A version is a directory of files (weights, encoder, anything the model needs) plus `manifest.json`:
config, feature schema, metrics, training data window, code version, creation time. Publishing copies
into a temporary directory beside the target and renames it into place (`os.replace`), so readers see a
whole version or none. `champion.json` names the serving version and keeps the history of champions (for
`rollback`); it is also replaced atomically. `decisions.jsonl` records every promote / keep / rollback with
its reason, so "why is this model serving?" always has an answer. Model-agnostic: the effect predictor
and the copy generator both publish through it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
CHAMPION = "champion.json"
DECISIONS = "decisions.jsonl"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RegistryError(RuntimeError):
    """A registry operation cannot be done (unknown model or version, nothing to roll back to)."""


class SchemaMismatchError(RegistryError):
    """The stored model expects other input columns than the caller provides."""


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: str
    path: Path
    manifest: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})


def code_version() -> str:
    """The git commit of the working tree when available, else the installed package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        if sha:
            return f"git:{sha}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return f"promoloop=={version('promoloop')}"
    except Exception:  # noqa: BLE001 - any metadata failure means "unknown"
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _check_name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise RegistryError(f"{kind} {value!r} must be letters, digits, '_', '-' or '.', not starting with a symbol")
    return value


def schema_difference(stored: Any, expected: Any) -> str:
    """Plain words for how two feature schemas differ (column lists when both have them)."""
    if isinstance(stored, dict) and isinstance(expected, dict) and "columns" in stored and "columns" in expected:
        a, b = set(stored["columns"]), set(expected["columns"])
        if a != b:
            return f"columns only in the stored model: {sorted(a - b)}; only expected now: {sorted(b - a)}"
        if stored["columns"] != expected["columns"]:
            return "same columns in a different order"
    keys = sorted(set(stored) | set(expected)) if isinstance(stored, dict) and isinstance(expected, dict) else []
    changed = [k for k in keys if stored.get(k) != expected.get(k)]
    return f"differing entries: {changed}" if changed else "schemas differ"


class Registry:
    """`Registry(root)`; root is `$PROMO_HOME/artifacts` (orchestration.settings.PromoPaths.artifacts)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # ---------------------------------------------------------------------------------------------- writing
    def publish(
        self,
        model_name: str,
        source_dir: Path | str,
        *,
        config: dict[str, Any] | None = None,
        feature_schema: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        data_window: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> ModelVersion:
        """Copy every file of `source_dir` into a new version, atomically; returns it (not yet champion)."""
        _check_name("model name", model_name)
        source = Path(source_dir)
        if not source.is_dir():
            raise RegistryError(f"publish {model_name}: {source} is not a directory")
        if (source / MANIFEST).exists():
            raise RegistryError(f"publish {model_name}: {source} already holds a {MANIFEST}; that name is the registry's")
        created = datetime.now(UTC)
        version = _check_name("version", version or f"{created:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}")
        model_dir = self.root / model_name
        model_dir.mkdir(parents=True, exist_ok=True)
        target = model_dir / version
        if target.exists():
            raise RegistryError(f"publish {model_name}: version {version} already exists")
        tmp = model_dir / f".tmp-{version}-{secrets.token_hex(4)}"
        try:
            shutil.copytree(source, tmp)
            manifest = {
                "model_name": model_name,
                "version": version,
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "code_version": code_version(),
                "config": config or {},
                "feature_schema": feature_schema,
                "metrics": metrics or {},
                "data_window": data_window or {},
                "files": sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            os.replace(tmp, target)  # a version appears whole or not at all
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return ModelVersion(model_name, version, target, manifest)

    def promote(self, model_name: str, version: str, reason: str, metrics: dict[str, Any] | None = None) -> None:
        """Make `version` the champion (atomically) and log the decision."""
        self.get(model_name, version)  # must exist
        pointer = self._pointer(model_name)
        history = list(pointer.get("history", []))
        if pointer.get("version") and pointer["version"] != version:
            history.append(pointer["version"])
        _write_json_atomic(self.root / model_name / CHAMPION, {"version": version, "history": history, "updated_at": _now()})
        self.record_decision(model_name, "promote", version, pointer.get("version"), reason, metrics)

    def keep_champion(self, model_name: str, challenger: str, reason: str, metrics: dict[str, Any] | None = None) -> None:
        """Log that `challenger` was evaluated and not promoted."""
        self.record_decision(model_name, "keep", challenger, self.champion_version(model_name), reason, metrics)

    def rollback(self, model_name: str, reason: str = "manual rollback") -> str:
        """Make the previous champion the champion again; returns its version."""
        pointer = self._pointer(model_name)
        history = list(pointer.get("history", []))
        if not pointer.get("version") or not history:
            raise RegistryError(f"rollback {model_name}: there is no previous champion to roll back to")
        previous = history.pop()
        self.get(model_name, previous)
        _write_json_atomic(self.root / model_name / CHAMPION, {"version": previous, "history": history, "updated_at": _now()})
        self.record_decision(model_name, "rollback", previous, pointer["version"], reason, None)
        return previous

    def record_decision(
        self, model_name: str, action: str, challenger: str | None, champion: str | None, reason: str, metrics: dict[str, Any] | None
    ) -> None:
        model_dir = self.root / _check_name("model name", model_name)
        model_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(
            {"at": _now(), "action": action, "version": challenger, "previous_champion": champion, "reason": reason, "metrics": metrics or {}},
            default=str,
        )
        with open(model_dir / DECISIONS, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    # ---------------------------------------------------------------------------------------------- reading
    def _pointer(self, model_name: str) -> dict[str, Any]:
        path = self.root / _check_name("model name", model_name) / CHAMPION
        return json.loads(path.read_text()) if path.exists() else {}

    def champion_version(self, model_name: str) -> str | None:
        return self._pointer(model_name).get("version")

    def get(self, model_name: str, version: str) -> ModelVersion:
        path = self.root / _check_name("model name", model_name) / _check_name("version", version)
        if not (path / MANIFEST).exists():
            raise RegistryError(f"{model_name}: no version {version!r} in {self.root}")
        return ModelVersion(model_name, version, path, json.loads((path / MANIFEST).read_text()))

    def load(self, model_name: str, version: str | None = None, expected_schema: dict[str, Any] | None = None) -> ModelVersion:
        """The champion (or `version`); with `expected_schema`, fail clearly unless the stored one equals it."""
        chosen = version or self.champion_version(model_name)
        if chosen is None:
            raise RegistryError(f"{model_name}: no champion yet in {self.root}; publish and promote a version first")
        mv = self.get(model_name, chosen)
        stored = mv.manifest.get("feature_schema")
        if expected_schema is not None and stored != expected_schema:
            raise SchemaMismatchError(
                f"{model_name} {chosen}: stored feature schema does not match the expected one "
                f"({schema_difference(stored or {}, expected_schema)}); retrain on the current features or load a matching version"
            )
        return mv

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        """All published versions, oldest first."""
        model_dir = self.root / _check_name("model name", model_name)
        if not model_dir.is_dir():
            return []
        found = [self.get(model_name, p.name) for p in model_dir.iterdir() if p.is_dir() and (p / MANIFEST).exists()]
        return sorted(found, key=lambda v: (v.manifest.get("created_at", ""), v.version))

    def decisions(self, model_name: str) -> list[dict[str, Any]]:
        path = self.root / _check_name("model name", model_name) / DECISIONS
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
