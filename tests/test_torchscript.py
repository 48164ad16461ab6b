"""The saved TorchScript trace (trajet.torchscript): same answers as the eager torch path that one-sentence
`trajet predict` ran before, no transformers import once saved, and a stale or corrupt export rebuilt, never used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train_fixtures import trained_tiny
from trajet.config import REPO_ROOT

TEXT = "Je veux aller de Paris à Lyon en passant par Dijon"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def model_dir(tiny, tmp_path_factory) -> Path:
    """A private copy: nothing this module writes lands in the model other test modules share."""
    dest = tmp_path_factory.mktemp("ts_model") / "model"
    shutil.copytree(tiny["model"], dest)
    return dest


@pytest.fixture(scope="session")
def eager(model_dir):
    """What one-sentence `trajet predict` ran before: the transformers model, eager (no in-process trace)."""
    from trajet.predict import Predictor

    return Predictor.load(model_dir, trace=False)


@pytest.fixture(scope="session")
def sample(tiny) -> list[str]:
    lines = (REPO_ROOT / "data" / "phrases" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[::40]] + [p.text for p in tiny["val"][:20]] + [
        TEXT, "  Trajet Metz Dijon demain.  ", "Quel temps fait-il à Nice ?", "", "x" * 3000]


@pytest.fixture(scope="session")
def saved(model_dir, tmp_path_factory):
    """One real export for the module, into a cache folder of its own."""
    from trajet.torchscript import ensure_saved_trace, export_count

    before = export_count()
    found = ensure_saved_trace(model_dir, cache_root=tmp_path_factory.mktemp("ts_cache"))
    assert found is not None and found.exported and found.model is not None and export_count() == before + 1
    return found


def _same_answers(got: list[dict], want: list[dict]) -> None:
    """Spans, labels, trip fields and errors identical; scores (4 decimals) equal to within float noise."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert {k: v for k, v in g.items() if k != "entities"} == {k: v for k, v in w.items() if k != "entities"}
        assert [(e["start"], e["end"], e["label"], e["text"]) for e in g.get("entities", [])] == [
            (e["start"], e["end"], e["label"], e["text"]) for e in w.get("entities", [])]
        for a, b in zip(g.get("entities", []), w.get("entities", []), strict=True):
            assert abs(a["score"] - b["score"]) <= 2e-4


def test_saved_trace_answers_like_the_eager_path(saved, model_dir, eager, sample):
    from trajet.subwords import PlainTokenizer
    from trajet.torchscript import export_count, load_saved

    before = export_count()
    predictor = load_saved(model_dir, cache_root=saved.folder.parent)
    assert export_count() == before and predictor.saved_trace.exported is False
    assert isinstance(predictor.tokenizer, PlainTokenizer) and predictor.saved_trace.meta["plain_tokenizer"] is True
    want = eager.predict(sample)
    assert sum(len(w.get("entities", [])) for w in want) > 40  # a model that tags things: the comparison can fail
    assert 2 <= sum("error" in w for w in want) < len(want) // 2  # the tiny model reads 126 sub-words at most
    _same_answers(predictor.predict(sample), want)
    for text in sample[:25]:  # one at a time, as the CLI runs it: no padding in the batch
        _same_answers(predictor.predict([text]), eager.predict([text]))


def test_saved_trace_gives_the_same_word_label_distributions(saved, model_dir, eager, sample):
    """Every label's probability per word (`tag_words`, what trajet.audit reads) comes from the shared
    `_tag_batch`: the saved graph's equal the eager model's."""
    import numpy as np

    from trajet.torchscript import load_saved

    predictor = load_saved(model_dir, cache_root=saved.folder.parent)
    for got, want in zip(predictor.tag_words(sample), eager.tag_words(sample), strict=True):
        if isinstance(want, str):
            assert got == want
            continue
        assert got.tags == want.tags
        np.testing.assert_allclose(got.label_probs, want.label_probs, atol=1e-4)


def test_cli_one_sentence_imports_no_transformers(saved, model_dir, eager, _trajet_home):
    """Once the export exists, `trajet predict --model M TEXT` loads it with torch alone: no transformers module
    in the process, the export not rewritten, and the eager path's answer."""
    home_copy = _trajet_home / "cache" / "torchscript" / saved.folder.name
    shutil.copytree(saved.folder, home_copy)
    stamp = {p.name: p.stat().st_mtime_ns for p in home_copy.iterdir()}
    texts = [TEXT, "Un billet de Metz à Brest via Tours s'il vous plaît"]
    code = (
        "import json, sys\n"
        "from trajet.cli import app\n"
        "for text in sys.argv[2:]:\n"
        "    try:\n"
        "        app(['predict', '--model', sys.argv[1], text])\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'transformers')\n"
        "print(json.dumps({'heavy': heavy, 'torch': 'torch' in sys.modules}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TRAJET_HOME": str(_trajet_home)}
    done = subprocess.run([sys.executable, "-c", code, str(model_dir), *texts], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    *answers, modules = (json.loads(line) for line in done.stdout.strip().splitlines())
    assert modules == {"heavy": [], "torch": True}, "the saved-trace path imported " + ", ".join(modules["heavy"])
    assert {p.name: p.stat().st_mtime_ns for p in home_copy.iterdir()} == stamp
    assert [a.pop("text") for a in answers] == texts
    _same_answers(answers, eager.predict(texts))


def _truncate(folder: Path) -> None:
    graph = folder / "model.pt"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])


def _flip_bytes(folder: Path) -> None:
    """Still a loadable archive, perhaps: only its recorded sha256 tells."""
    graph = folder / "model.pt"
    data = bytearray(graph.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    graph.write_bytes(bytes(data))


def _edit_key(field: str, value: str) -> object:
    def edit(folder: Path) -> None:
        meta = json.loads((folder / "trajet_torchscript.json").read_text(encoding="utf-8"))
        meta["key"][field] = value
        (folder / "trajet_torchscript.json").write_text(json.dumps(meta), encoding="utf-8")
    return edit


def _garble_meta(folder: Path) -> None:
    (folder / "trajet_torchscript.json").write_text("{not json", encoding="utf-8")


@pytest.mark.parametrize("spoil", [_truncate, _flip_bytes, _edit_key("config_sha256", "0" * 64),
                                   _edit_key("torch", "1.0.0"), _edit_key("tokenizer_sha256", "0" * 64), _garble_meta],
                         ids=["truncated", "flipped-bytes", "other-config", "other-torch", "other-tokenizer", "bad-meta"])
def test_a_stale_or_corrupt_export_is_rebuilt(spoil, saved, model_dir, eager, tmp_path):
    from trajet.torchscript import _file_sha256, export_count, load_saved

    folder = tmp_path / "cache" / saved.folder.name
    shutil.copytree(saved.folder, folder)
    spoil(folder)
    before = export_count()
    predictor = load_saved(model_dir, cache_root=folder.parent)
    assert export_count() == before + 1 and predictor.saved_trace.exported
    meta = json.loads((folder / "trajet_torchscript.json").read_text(encoding="utf-8"))
    assert meta["key"] == saved.meta["key"] and meta["traced"] and meta["plain_tokenizer"]
    assert _file_sha256(folder / "model.pt") == meta["model_sha256"]  # a new graph, recorded as it was written
    texts = [TEXT, "Un billet de Metz à Brest via Tours s'il vous plaît", "Je pars de Nice pour Caen demain."]
    _same_answers(predictor.predict(texts), eager.predict(texts))


def test_a_changed_model_gets_its_own_export(saved, model_dir, eager, tmp_path):
    """Same weights, another config.json (what a retrained head or edited labels would change): not reused."""
    from trajet.torchscript import export_count, load_saved

    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    cfg = json.loads((other / "config.json").read_text(encoding="utf-8"))
    cfg["trajet_note"] = "edited"
    (other / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    cache = tmp_path / "cache"
    shutil.copytree(saved.folder, cache / saved.folder.name)
    before = export_count()
    predictor = load_saved(other, cache_root=cache)
    assert export_count() == before + 1 and predictor.saved_trace.meta["key"]["config_sha256"] != saved.meta["key"]["config_sha256"]
    _same_answers(predictor.predict([TEXT]), eager.predict([TEXT]))


def test_no_writable_cache_runs_the_eager_model(model_dir, eager, tmp_path):
    from trajet.torchscript import load_saved

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    predictor = load_saved(model_dir, cache_root=blocker / "cache")
    assert predictor._traced is None and not hasattr(predictor, "saved_trace")
    _same_answers(predictor.predict([TEXT]), eager.predict([TEXT]))
