"""The hand-written training batches and the frozen blind set: each committed JSONL is the build of its markup,
the blind set shares no sentence with what training may read, and every batch goes through ingestion whole."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from trajet.phrases import DataFileError, normalise_text, read_jsonl

ROOT = Path(__file__).resolve().parents[1]
HANDWRITTEN = ROOT / "data" / "handwritten"
BLIND = ROOT / "data" / "blind" / "blind.jsonl"


def _load_builder() -> ModuleType:
    sys.path.insert(0, str(ROOT / "data"))
    try:
        spec = importlib.util.spec_from_file_location("build_handwritten", ROOT / "data" / "build_handwritten.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "data"))


builder = _load_builder()
BATCHES = sorted(HANDWRITTEN.glob("batch_*.jsonl"))


def test_committed_jsonl_files_are_the_build_of_their_sources():
    assert builder.main(["--check"]) == 0
    assert {p.name for p in BATCHES} == {builder.output_of(s).name for s in HANDWRITTEN.glob("*.src.tsv")}


def test_sizes_and_kinds_of_request():
    batches = {p.name: read_jsonl(p) for p in BATCHES}
    assert sum(len(b) for b in batches.values()) >= 2000
    assert all(200 <= len(b) <= 300 for b in batches.values()), {k: len(v) for k, v in batches.items()}
    blind = read_jsonl(BLIND)
    assert len(blind) >= 300
    for phrases in (*batches.values(), blind):
        groups = Counter(p.meta["group"] for p in phrases)
        assert len(groups) >= 10, groups  # every file mixes kinds of request
    everything = [p for b in batches.values() for p in b] + blind
    assert set(Counter(p.meta["group"] for p in everything)) == set(builder.GROUPS)
    no_trip = [p for p in everything if p.meta["group"] == "no_trip"]
    assert no_trip and all(not p.entities for p in no_trip)


def test_blind_set_shares_no_sentence_with_training_batches():
    blind = {normalise_text(p.text) for p in read_jsonl(BLIND)}
    for path in BATCHES:
        assert not blind & {normalise_text(p.text) for p in read_jsonl(path)}, path.name


def test_a_sentence_in_two_sources_is_refused(tmp_path, monkeypatch):
    hw, bl = tmp_path / "handwritten", tmp_path / "blind"
    hw.mkdir()
    bl.mkdir()
    (hw / "batch_01.src.tsv").write_text("question\tUn train pour [Rennes|A] ?\n", encoding="utf-8")
    (bl / "blind.src.tsv").write_text("order\tDe [Brest|D] à [Quimper|A].\nquestion\tUn  train pour [RENNES|A] ?\n",
                                      encoding="utf-8")
    monkeypatch.setattr(builder, "HANDWRITTEN_DIR", hw)
    monkeypatch.setattr(builder, "BLIND_DIR", bl)
    with pytest.raises(DataFileError, match=r"blind\.src\.tsv:2: sentence also in batch_01\.src\.tsv"):
        builder.build_all(tmp_path)


def test_every_batch_is_ingested_whole(tmp_path):
    from trajet import store
    from trajet.ingest import ingest_source

    engine = store.get_engine(f"sqlite:///{tmp_path / 'hw.db'}")
    store.upgrade(engine=engine)
    rows = 0
    for path in BATCHES:
        [report] = ingest_source(str(path), engine=engine)
        n = len(read_jsonl(path))
        rows += n
        assert report.status == "accepted", (path.name, report.message)
        assert (report.stored, report.quarantined) == (n, 0), path.name
    counts = store.split_counts(engine)
    assert sum(counts.values()) == rows
    assert 0.1 < counts.get("test", 0) / rows < 0.3  # hash split, about 20 %
