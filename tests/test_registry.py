"""Model registry: atomic publish, champion pointer, schema validation, rollback, decisions log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.registry import Registry, RegistryError, SchemaMismatchError

SCHEMA = {"columns": ["a", "b"], "spec": {"numeric": ["a", "b"]}}


def model_files(folder: Path, content: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.bin").write_text(content)
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "vocab.txt").write_text("x\ny\n")
    return folder


def test_publish_writes_whole_version_with_manifest(tmp_path):
    reg = Registry(tmp_path / "artifacts")
    mv = reg.publish(
        "effect_predictor", model_files(tmp_path / "src", "v1"), config={"lr": 0.1}, feature_schema=SCHEMA,
        metrics={"qini": 0.1}, data_window={"first": "2024-01-01", "last": "2024-01-31"},
    )
    assert (mv.path / "weights.bin").read_text() == "v1"
    assert (mv.path / "sub" / "vocab.txt").exists()
    manifest = json.loads((mv.path / "manifest.json").read_text())
    assert manifest["feature_schema"] == SCHEMA and manifest["metrics"] == {"qini": 0.1}
    assert manifest["data_window"]["last"] == "2024-01-31"
    assert manifest["code_version"] and manifest["files"] == ["sub/vocab.txt", "weights.bin"]
    assert not [p for p in (tmp_path / "artifacts" / "effect_predictor").iterdir() if p.name.startswith(".tmp")]
    assert reg.champion_version("effect_predictor") is None  # publishing does not promote


def test_failed_publish_leaves_nothing(tmp_path, monkeypatch):
    reg = Registry(tmp_path / "artifacts")
    src = model_files(tmp_path / "src", "v1")

    def broken_copy(source, target, *args, **kwargs):
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / "partial").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr("ml.registry.shutil.copytree", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        reg.publish("effect_predictor", src, version="v1")
    assert list((tmp_path / "artifacts" / "effect_predictor").iterdir()) == []
    assert reg.list_versions("effect_predictor") == []


def test_champion_promote_load_and_rollback(tmp_path):
    reg = Registry(tmp_path / "artifacts")
    v1 = reg.publish("copy_generator", model_files(tmp_path / "a", "1"), feature_schema=SCHEMA, version="v1")
    v2 = reg.publish("copy_generator", model_files(tmp_path / "b", "2"), feature_schema=SCHEMA, version="v2")
    assert [v.version for v in reg.list_versions("copy_generator")] == ["v1", "v2"]
    with pytest.raises(RegistryError, match="no champion"):
        reg.load("copy_generator")
    reg.promote("copy_generator", v1.version, reason="first")
    reg.keep_champion("copy_generator", v2.version, reason="challenger worse on qini")
    assert reg.load("copy_generator").version == "v1"
    reg.promote("copy_generator", v2.version, reason="better", metrics={"qini": 0.2})
    assert (reg.load("copy_generator", expected_schema=SCHEMA).path / "weights.bin").read_text() == "2"
    assert reg.rollback("copy_generator", reason="bad day") == "v1"
    assert reg.champion_version("copy_generator") == "v1"
    with pytest.raises(RegistryError, match="no previous champion"):
        reg.rollback("copy_generator")
    actions = [(d["action"], d["version"], d["previous_champion"]) for d in reg.decisions("copy_generator")]
    assert actions == [("promote", "v1", None), ("keep", "v2", "v1"), ("promote", "v2", "v1"), ("rollback", "v1", "v2")]
    assert reg.decisions("copy_generator")[1]["reason"] == "challenger worse on qini"


def test_schema_mismatch_fails_clearly(tmp_path):
    reg = Registry(tmp_path / "artifacts")
    mv = reg.publish("effect_predictor", model_files(tmp_path / "src", "1"), feature_schema=SCHEMA)
    reg.promote("effect_predictor", mv.version, reason="first")
    with pytest.raises(SchemaMismatchError, match=r"only expected now: \['c'\]"):
        reg.load("effect_predictor", expected_schema={"columns": ["a", "b", "c"], "spec": {}})


def test_bad_names_and_unknown_versions(tmp_path):
    reg = Registry(tmp_path / "artifacts")
    with pytest.raises(RegistryError, match="model name"):
        reg.publish("../escape", model_files(tmp_path / "src", "1"))
    with pytest.raises(RegistryError, match="no version"):
        reg.promote("effect_predictor", "nope", reason="x")
    with pytest.raises(RegistryError, match="not a directory"):
        reg.publish("effect_predictor", tmp_path / "missing")
