"""The finetune flow on an exported snapshot: a GPU host with a registry and no reachable database."""

from __future__ import annotations

import pytest
from flow_data import TINY_TRAINING, phrase_rows, write_jsonl

pytest_plugins = ["_prefect_harness"]

pytestmark = pytest.mark.slow


def test_finetune_trains_from_the_exported_snapshot_without_the_database(prefect_api, tmp_path, monkeypatch):
    from flows.finetune import finetune
    from trajet import registry, store
    from trajet.ingest import ingest_source
    from trajet.snapshot_export import export_snapshot

    engine = store.get_engine(f"sqlite:///{tmp_path / 'cpu-side.db'}")
    store.upgrade(engine=engine)
    rows = phrase_rows(120, seed=5, split="train")
    [report] = ingest_source(write_jsonl(tmp_path / "batch.jsonl", rows), engine=engine)
    assert report.stored == 120
    exported = export_snapshot(engine, str(tmp_path / "bucket"))
    engine.dispose()

    # the GPU host: its own TRAJET_HOME, the registry, and a database it cannot reach (it must not try)
    monkeypatch.setenv("TRAJET_HOME", str(tmp_path / "gpu_home"))
    monkeypatch.setenv("TRAJET_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("TRAJET_REGISTRY_URI", str(tmp_path / "registry"))
    out = finetune(snapshot_id=None, staging_version="cand-1", preset="tiny", config=TINY_TRAINING,
                   snapshot_uri=exported.uri)
    counts = exported.manifest.counts
    assert (out["training"]["n_train"], out["training"]["n_validation"]) == (counts["train"], counts["validation"])
    assert out["training"]["snapshot_uri"] == exported.uri
    staged = registry.open_registry(str(tmp_path / "registry" / "staging")).manifest("cand-1")
    assert staged["snapshot"] == {"id": None, "content_hash": exported.manifest.content_hash, "uri": exported.uri}

    state = finetune(snapshot_id=None, staging_version="cand-2", preset="tiny", return_state=True)
    assert state.is_failed() and "finetune needs a snapshot" in state.message
