"""The model directory and the registry's records: every field written and read back, and records in the
formats older code wrote still read (models and registries made before must keep loading)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from tests.registry_helpers import write_model
from trajet.errors import TrajetError
from trajet.manifest import MANIFEST_FILE, ChampionPointer, FileEntry, Manifest, provenance, stage_of
from trajet.model_dir import (
    MODEL_CARD_FILE,
    TRAINING_FILE,
    ModelDir,
    assert_safetensors_only,
    check_safetensors,
)

SHA = "ab" * 32


def full_manifest() -> Manifest:
    return Manifest(
        version="v7",
        files=(FileEntry("model.safetensors", 10, SHA), FileEntry("sub/config.json", 2, "cd" * 32)),
        created_at="2026-12-01T02:00:00.000000Z",
        code_version="0.1.0+abcdef123456",
        objects="objects-0123456789abcdef",
        format=1,
        snapshot_hash="snap",
        base_model="trajet:mini",
        training_config={"preset": "mini"},
        training_metrics={"f1_macro": 0.9},
        metrics={"test": {"macro": {"f1": 0.91}}},
        champion_version="v6",
        champion_metrics={"test": {"macro": {"f1": 0.88}}},
        gate={"passed": True, "rules": []},
        extra={"run_id": "r1", "snapshot": {"id": 3, "content_hash": "snap"}, "stage": "staging"},
    )


def test_manifest_round_trip_keeps_every_field():
    manifest = full_manifest()
    as_json = json.loads(json.dumps(manifest.to_dict()))
    assert Manifest.from_dict(as_json) == manifest
    assert as_json["run_id"] == "r1" and as_json["objects"] == "objects-0123456789abcdef"
    assert manifest.object_path("model.safetensors") == "objects-0123456789abcdef/model.safetensors"
    assert manifest.has_weights and manifest.total_bytes == 12 and manifest.dataset_hash() == "snap"
    assert manifest.evaluation() == {"test": {"macro": {"f1": 0.91}}}


def test_a_manifest_in_the_first_format_still_reads():
    """What the first registry wrote: no objects folder (files beside the manifest), no code_version; what the
    flows add (snapshot, training, run_id) only as their own keys."""
    old = {
        "format": 1,
        "version": "v1",
        "created_at": "2026-11-02T02:00:00Z",
        "files": [{"path": "model.safetensors", "size": 3, "sha256": SHA}],
        "snapshot": {"id": 1, "content_hash": "h1"},
        "training": {"steps": 10},
        "training_metrics": {"f1_macro": 0.7},
    }
    manifest = Manifest.from_dict(old)
    assert manifest.objects is None and manifest.code_version is None
    assert manifest.object_path("model.safetensors") == "model.safetensors"
    assert manifest.dataset_hash() == "h1"  # the flows' snapshot record when no snapshot_hash was written
    assert manifest.evaluation() == {"f1_macro": 0.7}  # no test metrics stored: training's
    assert manifest.extra == {"snapshot": {"id": 1, "content_hash": "h1"}, "training": {"steps": 10}}
    assert Manifest.from_dict({k: v for k, v in old.items() if k != "format"}).format == 1


@pytest.mark.parametrize(
    ("files", "objects", "message"),
    [
        ([], None, "no file list"),
        ([{"path": "../x.safetensors", "size": 1, "sha256": SHA}], None, "unsafe file path"),
        ([{"path": "model.bin", "size": 1, "sha256": SHA}], None, "pickle-format"),
        ([{"path": "a", "size": 1, "sha256": SHA}, {"path": "a", "size": 1, "sha256": SHA}], None, "listed twice"),
        ([{"path": "a", "size": -1, "sha256": SHA}], None, "valid size and sha256"),
        ([{"path": "a", "size": 1, "sha256": SHA}], "../elsewhere", "unsafe objects folder"),
    ],
)
def test_manifest_file_lists_are_checked(files, objects, message):
    with pytest.raises(TrajetError, match=message):
        Manifest.from_dict({"version": "v1", "files": files, "objects": objects}, "where")


def test_provenance_is_one_builder_for_manual_pushes_and_gated_promotions():
    info = {"config": {"base_model": "trajet:mini", "preset": "mini"}, "snapshot_hash": "s", "metrics": {"f1": 1}}
    manual = provenance(info, metrics={"test": {}})
    assert manual == {"training_config": info["config"], "base_model": "trajet:mini", "snapshot_hash": "s",
                      "training_metrics": {"f1": 1}, "metrics": {"test": {}}}
    resolved = provenance({"config": {}, "base_model_resolved": "/bases/x"})
    assert resolved["base_model"] == "/bases/x" and "metrics" not in resolved
    assert provenance() == {}
    gated = provenance(metrics={"test": {}}, gate={"passed": True}, champion_version=None, snapshot_hash="s")
    assert gated == {"metrics": {"test": {}}, "gate": {"passed": True}, "champion_version": None,
                     "champion_metrics": None, "snapshot_hash": "s", "base_model": None, "training_config": {}}
    # a gated manifest records "no champion" explicitly, as the first model's did
    written = Manifest.from_dict({"version": "v1", "files": [{"path": "m.safetensors", "size": 1, "sha256": SHA}],
                                  **gated}).to_dict()
    assert "champion_version" in written and written["champion_version"] is None


def test_champion_pointer_round_trip_chain_and_old_format():
    first = ChampionPointer("v1", "1" * 64, "t1")
    second = first.promoted("v2", "2" * 64, "t2")
    third = second.promoted("v3", "3" * 64, "t3")
    assert (third.previous, third.history) == ("v2", ("v2", "v1"))
    back = third.rolled_back("2" * 64, "t4")
    assert (back.version, back.previous, back.history, back.action, back.rolled_back_from) == (
        "v2", "v1", ("v1",), "rollback", "v3")
    for pointer in (first, third, back):
        assert ChampionPointer.from_dict(json.loads(json.dumps(pointer.to_dict()))) == pointer
    assert "rolled_back_from" not in third.to_dict() and back.to_dict()["rolled_back_from"] == "v3"
    old = ChampionPointer.from_dict({"version": "v1", "manifest_sha256": "x", "promoted_at": "t", "previous": None})
    assert old.history == () and old.action == "promote"
    with pytest.raises(TrajetError, match="has no version"):
        ChampionPointer.from_dict({"manifest_sha256": "x"})


def test_stage_is_computed_in_one_place():
    pointer = {"version": "v3", "previous": "v2"}
    assert [stage_of(v, pointer) for v in ("v3", "v2", "v1")] == ["champion", "previous", "archived"]
    assert stage_of("v1", None) == "archived"


def training_info() -> dict:
    cfg = {"base_model": "camembert-base", "preset": "mini", "learning_rate": 5e-5, "batch_size": 16,
           "max_length": 64, "num_epochs": 3, "warmup_ratio": 0.1, "weight_decay": 0.01,
           "early_stopping_patience": 2, "metric_for_best_model": "f1_macro", "gazetteer": True,
           "gazetteer_fuzzy": True}
    return {"config": cfg, "metrics": {"f1_macro": 0.9, "f1_micro": 0.95}, "n_train": 100, "n_validation": 10,
            "steps": 50, "seconds": 1.5, "snapshot_hash": "s1"}


def test_model_dir_reads_its_files_once(tmp_path):
    folder = ModelDir(write_model(tmp_path / "m", 0))
    assert folder.config["num_labels"] == 7 and folder.features is None and folder.lexicon is None
    assert folder.training_info == {} and not folder.has_training_info and folder.manifest is None
    assert folder.metrics() is None
    folder.write_training_info(training_info())
    assert folder.training_info["snapshot_hash"] == "s1"  # the cache is refreshed by the writer
    card = (folder.path / MODEL_CARD_FILE).read_text(encoding="utf-8")
    assert "base_model: camembert-base" in card and TRAINING_FILE in card and "trajet_known_words.txt" in card
    assert folder.metrics() == {"f1_macro": 0.9, "f1_micro": 0.95}
    (folder.path / "config.json").write_text("{}")
    assert folder.config["num_labels"] == 7  # read once


def test_model_dir_reads_the_manifest_of_a_pulled_copy(tmp_path):
    path = write_model(tmp_path / "m", 0)
    raw = json.dumps(full_manifest().to_dict()).encode()
    (path / MANIFEST_FILE).write_bytes(raw)
    folder = ModelDir(path)
    assert folder.manifest == full_manifest() and folder.manifest_bytes == raw
    assert folder.metrics() == {"test": {"macro": {"f1": 0.91}}}  # the registry's evaluation first
    assert hashlib.sha256(folder.manifest_bytes).hexdigest() == hashlib.sha256(raw).hexdigest()
    assert folder.drop_manifest() == full_manifest() and not (path / MANIFEST_FILE).exists()


def test_safetensors_only_checks(tmp_path, caplog):
    with pytest.raises(TrajetError, match="no config.json"):
        ModelDir(tmp_path)
    path = write_model(tmp_path / "m", 0)
    assert_safetensors_only(path)
    (path / "pytorch_model.BIN").write_bytes(b"pickle")
    with pytest.raises(TrajetError, match="pickled weight files: pytorch_model.BIN"):
        assert_safetensors_only(path)
    check_safetensors(path)  # loadable: the pickle is ignored, with a warning
    assert "ignoring pytorch_model.BIN" in caplog.text
    (path / "model.safetensors").unlink()
    with pytest.raises(TrajetError, match="only pickle-format weights"):
        ModelDir(path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrajetError, match="no .safetensors weights"):
        assert_safetensors_only(empty)


def test_a_registry_written_in_the_first_layout_still_pulls_and_promotes(tmp_path, monkeypatch):
    """Files beside the manifest (no objects folder), a pointer without action or history: what the first
    registry wrote. Pull, list, show and promotion on top of it keep working."""
    from trajet.registry import open_registry

    root = tmp_path / "registry"
    model = write_model(tmp_path / "model", 1)
    version_dir = root / "versions" / "v1"
    shutil.copytree(model, version_dir)
    files = [{"path": p.name, "size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
             for p in sorted(model.iterdir())]
    raw = json.dumps({"format": 1, "version": "v1", "created_at": "2026-11-01T00:00:00Z", "files": files,
                      "snapshot_hash": "old"}).encode()
    (version_dir / MANIFEST_FILE).write_bytes(raw)
    (root / "champion.json").write_text(json.dumps({
        "version": "v1", "manifest_sha256": hashlib.sha256(raw).hexdigest(), "promoted_at": "2026-11-01T00:00:01Z",
        "previous": None}))
    registry = open_registry(str(root))
    pulled = ModelDir(registry.pull("champion", tmp_path / "pulled"))
    assert pulled.manifest is not None and pulled.manifest.dataset_hash() == "old"
    assert [(m["version"], m["stage"]) for m in registry.list_versions()] == [("v1", "champion")]
    registry.push("v2", write_model(tmp_path / "model2", 2))
    pointer = registry.promote("v2")
    assert (pointer["previous"], pointer["history"]) == ("v1", ["v1"])
    assert registry.rollback()["version"] == "v1"
