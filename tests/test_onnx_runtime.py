"""The ONNX Runtime backend: export + int8, cache reuse, same outputs as the torch Predictor, CLI and service.

The tiny trained model (tests/train_fixtures.py) is weak, so int8 is compared with torch on the same texts, not
with the gold spans. Tests that need onnxruntime skip without it (CI installs the `onnx` extra); the tests of the
"missing onnxruntime" error run everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.train_fixtures import trained_tiny
from trajet.config import REPO_ROOT
from trajet.errors import TrajetError
from trajet.phrases import Entity, spans_to_bio

INSTALL_LINE = "error: the onnx backend needs: pip install 'trajet[onnx]'"
# int8 vs torch on the tiny model's phrases: entity-level micro F1 of int8 against torch's spans. Measured 0.995
# (208 torch entities, 119 of 120 sentences identical): int8 moves probabilities by up to ~0.05, so a few
# borderline words flip on this weak hidden-32 model.
MIN_AGREEMENT_F1 = 0.97


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def model_dir(tiny, tmp_path_factory) -> Path:
    """A private copy: nothing this module writes lands in the model other test modules share."""
    dest = tmp_path_factory.mktemp("onnx_model") / "model"
    shutil.copytree(tiny["model"], dest)
    return dest


@pytest.fixture(scope="session")
def exported(model_dir, tmp_path_factory):
    """One real export for the whole module, into a cache folder of its own."""
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'trajet[onnx]')")
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'trajet[onnx]')")
    pytest.importorskip("onnxscript", reason="onnxscript not installed (pip install 'trajet[onnx]')")
    from trajet.onnx_runtime import ensure_onnx, export_count

    before = export_count()
    files = ensure_onnx(model_dir, cache_root=tmp_path_factory.mktemp("onnx_cache"))
    assert files.exported and export_count() == before + 1
    return files


@pytest.fixture
def warm_home(exported, _trajet_home) -> Path:
    """This test's TRAJET_HOME with the export already in its cache, where the CLI and the service look."""
    dest = _trajet_home / "cache" / "onnx" / exported.meta["weights_sha256"]
    shutil.copytree(exported.folder, dest)
    return _trajet_home


@pytest.fixture(scope="session")
def torch_predictor(model_dir):
    from trajet.predict import Predictor

    return Predictor.load(model_dir)


@pytest.fixture(scope="session")
def texts(tiny) -> list[str]:
    return [p.text for p in tiny["train"][:80] + tiny["val"]] + [
        "Je veux aller de Paris à Lyon en passant par Dijon",
        "  Trajet Metz Dijon demain.  ",
        "Quel temps fait-il à Nice ?",
    ]


def _spans(result: dict) -> list[tuple[int, int, str]]:
    return [(e["start"], e["end"], e["label"]) for e in result.get("entities", [])]


def _agreement_f1(texts: list[str], reference: list[dict], other: list[dict]) -> float:
    from trajet.evaluate import scores_from_tags

    def tags(text: str, result: dict) -> list[str]:
        return spans_to_bio(text, [Entity(*s) for s in _spans(result)])[1]

    ref = [tags(t, r) for t, r in zip(texts, reference, strict=True)]
    got = [tags(t, r) for t, r in zip(texts, other, strict=True)]
    return scores_from_tags(ref, got)["micro"]["f1"]


# ------------------------------------------------------------------------------------------- export


def test_export_files_and_dynamic_axes(exported):
    import onnx

    assert exported.fp32.is_file() and exported.int8.is_file()
    assert exported.int8.stat().st_size < exported.fp32.stat().st_size
    meta = json.loads((exported.folder / "trajet_onnx.json").read_text())
    assert meta["weights_sha256"] == exported.folder.name and len(meta["weights_sha256"]) == 64
    graph = onnx.load(str(exported.fp32)).graph
    # the tiny preset trains with gazetteer features (trajet.lexicon): they are the third input
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["logits"]
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"], "batch and sequence axes must be dynamic"
    quantized_ops = {n.op_type for n in onnx.load(str(exported.int8)).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= quantized_ops


def test_fp32_logits_match_torch(exported, torch_predictor, texts):
    import numpy as np
    import torch

    from trajet.onnx_runtime import make_session

    session = make_session(exported.fp32, num_threads=1)
    prepared = torch_predictor._prepare_many(list(enumerate(texts)))
    for batch in (prepared[:1], prepared[:7], prepared):  # several batch sizes and padded widths
        inputs = torch_predictor._encode_batch(batch)
        with torch.inference_mode():
            expected = torch_predictor.model(**inputs).logits.numpy()
        got = session.run(["logits"], {name: t.numpy() for name, t in inputs.items()})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_int8_predictions_agree_with_torch(exported, model_dir, torch_predictor, texts, tmp_path):
    from trajet.onnx_runtime import OnnxPredictor

    onnx_predictor = OnnxPredictor.load(model_dir, cache_root=exported.folder.parent)
    assert onnx_predictor.files.exported is False and onnx_predictor.precision == "int8"
    reference = torch_predictor.predict(texts)
    got = onnx_predictor.predict(texts)
    assert sum(len(_spans(r)) for r in reference) > 100, "the comparison needs a model that tags something"
    assert _agreement_f1(texts, reference, got) >= MIN_AGREEMENT_F1
    for text, ref, res in zip(texts, reference, got, strict=True):
        assert set(res) == set(ref) == {"entities", "departure", "arrival", "via"}
        for ent in res["entities"]:
            assert set(ent) == {"start", "end", "label", "text", "score"}
            assert text[ent["start"] : ent["end"]] == ent["text"] and 0.0 < ent["score"] <= 1.0
    # fp32 ONNX is the same model as torch: same spans everywhere
    fp32 = OnnxPredictor.load(model_dir, cache_root=exported.folder.parent, precision="fp32")
    assert [_spans(r) for r in fp32.predict(texts)] == [_spans(r) for r in reference]


def test_same_per_line_errors_as_torch(exported, model_dir, torch_predictor):
    from trajet.onnx_runtime import OnnxPredictor
    from trajet.predict import MAX_CHARS

    onnx_predictor = OnnxPredictor.load(model_dir, cache_root=exported.folder.parent)
    bad = ["", "   ", " ".join(["Paris"] * 200), "x" * (MAX_CHARS + 1), "de Paris à Lyon"]
    got, expected = onnx_predictor.predict(bad), torch_predictor.predict(bad)
    assert [r.get("error") for r in got] == [r.get("error") for r in expected]
    assert got[0] == {"error": "empty text"} and "sub-word tokens (max 64)" in got[2]["error"]
    assert "entities" in got[4]
    assert onnx_predictor.predict_entities(["", "de Paris à Lyon"])[0] == []


# -------------------------------------------------------------------------------------------- cache


def test_second_load_reuses_the_export(exported, model_dir):
    from trajet.onnx_runtime import OnnxPredictor, ensure_onnx, export_count

    mtimes = {p.name: p.stat().st_mtime_ns for p in exported.folder.iterdir()}
    before = export_count()
    again = ensure_onnx(model_dir, cache_root=exported.folder.parent)
    OnnxPredictor.load(model_dir, cache_root=exported.folder.parent)
    assert again.exported is False and again.folder == exported.folder
    assert export_count() == before
    assert {p.name: p.stat().st_mtime_ns for p in exported.folder.iterdir()} == mtimes


def test_cache_is_keyed_by_the_weights(exported, model_dir, tmp_path):
    from trajet.onnx_runtime import _cached, ensure_onnx, export_count, weights_sha256

    sha = weights_sha256(model_dir)
    assert exported.folder.name == sha
    assert _cached(exported.folder, sha) is not None
    assert _cached(exported.folder, "0" * 64) is None  # other weights: never served from this folder
    # an export shipped next to the model (<model_dir>/onnx) is found before the cache folder
    shipped = tmp_path / "shipped"
    shutil.copytree(model_dir, shipped)
    shutil.copytree(exported.folder, shipped / "onnx")
    before = export_count()
    found = ensure_onnx(shipped, cache_root=tmp_path / "empty-cache")
    assert found.folder == shipped / "onnx" and found.exported is False and export_count() == before
    # ...but only for these weights: a stale one is ignored (then exported again, checked by the counter)
    meta = json.loads((shipped / "onnx" / "trajet_onnx.json").read_text())
    (shipped / "onnx" / "trajet_onnx.json").write_text(json.dumps({**meta, "weights_sha256": "f" * 64}))
    assert _cached(shipped / "onnx", sha) is None


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_predict_backend_onnx_has_the_same_fields(warm_home, model_dir):
    from trajet.cli import app
    from trajet.onnx_runtime import export_count

    text = "Je veux aller de Paris à Lyon en passant par Dijon"
    before = export_count()
    onnx_run = CliRunner().invoke(app, ["predict", "--model", str(model_dir), "--backend", "onnx", text])
    assert onnx_run.exit_code == 0, onnx_run.output
    assert export_count() == before, "the CLI must find the export in $TRAJET_HOME/cache/onnx"
    torch_run = CliRunner().invoke(app, ["predict", "--model", str(model_dir), text])
    got, expected = json.loads(onnx_run.stdout), json.loads(torch_run.stdout)
    assert set(got) == set(expected) == {"text", "entities", "departure", "arrival", "via"}
    assert _spans(got) == _spans(expected)
    for ent in got["entities"]:
        assert set(ent) == {"start", "end", "label", "text", "score"}


def test_cli_predict_file_backend_onnx(warm_home, model_dir, tmp_path):
    from trajet.cli import app

    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "de Nantes à Brest", "ref": 1}\n{"text": ""}\nnot json\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(
        app, ["predict", "-m", str(model_dir), "--backend", "onnx", "-i", str(src), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["ref"] == 1 and {"entities", "departure", "arrival", "via"} <= set(rows[0])
    assert rows[1] == {"text": "", "error": "empty text"}
    assert rows[2]["error"].startswith(f"{src}:3: not valid JSON")


# -------------------------------------------------------------------------------------------- serve


def test_serve_backend_onnx_answers_predict(warm_home, model_dir, tmp_path):
    import httpx

    from trajet.onnx_runtime import OnnxPredictor, export_count
    from trajet.serve import create_app, serve_in_thread
    from trajet.service import ModelService

    before = export_count()
    service = ModelService(str(model_dir), cache_dir=tmp_path / "serve_cache", backend="onnx", threads=1)
    service.load_initial()
    assert isinstance(service.current.predictor, OnnxPredictor)
    text = "Je veux aller de Paris à Lyon en passant par Dijon"
    expected = service.current.predictor.predict([text, ""])
    with serve_in_thread(create_app(service)) as url, httpx.Client(base_url=url) as client:
        one = client.post("/predict", json={"text": text})
        assert one.status_code == 200, one.text
        assert one.json() == {"version": f"dir:{model_dir.name}", "prediction": expected[0]}
        many = client.post("/predict", json={"texts": [text, ""]}).json()
        assert many["predictions"] == expected
        assert client.get("/health").json()["backend"] == "onnx"
        assert client.get("/model").json()["backend"] == "onnx"
    assert export_count() == before


def test_hot_swapped_champion_uses_the_onnx_backend(warm_home, model_dir, tmp_path):
    from trajet.onnx_runtime import OnnxPredictor, export_count
    from trajet.registry import open_registry
    from trajet.service import ModelService

    registry = open_registry(str(tmp_path / "registry"))
    registry.push("v1", model_dir, {"metrics": {}})
    registry.promote("v1")
    before = export_count()
    service = ModelService("champion", registry_uri=str(tmp_path / "registry"), cache_dir=tmp_path / "pulled",
                           poll_interval=60, backend="onnx", threads=1)
    service.load_initial()
    assert isinstance(service.current.predictor, OnnxPredictor) and service.current.version == "v1"
    registry.push("v2", model_dir, {"metrics": {}})
    registry.promote("v2")
    assert service.poll_once() is True
    assert service.current.version == "v2" and isinstance(service.current.predictor, OnnxPredictor)
    assert service.predict(["de Nantes à Brest"])[1][0].keys() == {"entities", "departure", "arrival", "via"}
    # each version is pulled into a fresh folder; the export is found again by the sha256 of the weights
    assert export_count() == before
    service.stop()


# ----------------------------------------------------------------------------- onnxruntime missing


def _run_cli_without_onnxruntime(*args: str) -> subprocess.CompletedProcess:
    """The real `trajet` entry point in a process where `import onnxruntime` fails."""
    code = (
        "import sys; sys.modules['onnxruntime'] = None; "
        f"sys.argv = ['trajet', *{list(args)!r}]; "
        "from trajet.cli import main; main()"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, env=env,
                          timeout=120)


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_missing_onnxruntime_is_one_clear_line(command, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    args = ["predict", "--model", str(model), "--backend", "onnx", "de Paris à Lyon"] if command == "predict" else [
        "serve", "--model", str(model), "--backend", "onnx", "--port", "0"]
    res = _run_cli_without_onnxruntime(*args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == INSTALL_LINE
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_missing_onnxruntime_in_the_library(monkeypatch, tmp_path):
    from trajet.service import ModelService

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(TrajetError, match=r"^the onnx backend needs: pip install 'trajet\[onnx\]'$"):
        ModelService(str(tmp_path), backend="onnx")
    from trajet.onnx_runtime import OnnxPredictor

    with pytest.raises(TrajetError, match="pip install 'trajet"):
        OnnxPredictor.load(tmp_path)


def test_unknown_backend(tmp_path):
    from trajet.cli import app

    res = CliRunner().invoke(app, ["predict", "--model", str(tmp_path), "--backend", "tensorrt", "x"])
    assert res.exit_code != 0
    assert "unknown backend 'tensorrt': choose torch or onnx" in str(res.exception)


def test_help_documents_the_backend():
    from trajet.cli import app

    for command in ("predict", "serve"):
        res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0
        assert "--backend" in res.output and "trajet[onnx]" in res.output


def test_export_runs_in_a_child_and_a_broken_model_fails_in_one_line(exported, model_dir, tmp_path):
    """The export happens in a child process (the service never holds the exporter's memory); its failure
    comes back as one clear error and leaves no cache folder behind."""
    import os

    from trajet.errors import TrajetError
    from trajet.onnx_runtime import ensure_onnx, export_count

    assert exported.meta["weights_sha256"] and exported.fp32.is_file()  # made by the child, read by us
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file" * 10)
    cache = tmp_path / "cache"
    before = export_count()
    with pytest.raises(TrajetError) as err:
        ensure_onnx(broken, cache_root=cache)
    message = str(err.value)
    assert message.startswith(f"ONNX export of {broken} failed:") and "\n" not in message
    assert export_count() == before
    assert not cache.exists() or not [p for p in os.listdir(cache) if not p.startswith(".")]
    assert not cache.exists() or not [p for p in os.listdir(cache) if p.endswith(".partial")]


def test_onnx_predict_imports_neither_torch_nor_transformers(warm_home, model_dir, torch_predictor):
    """Once the model is exported, `trajet predict --backend onnx` needs tokenizers and onnxruntime only:
    torch and transformers cost seconds of start-up. Same answer as the torch predictor's on that sentence."""
    text = "Je veux aller de Paris à Lyon en passant par Dijon"
    code = (
        "import json, sys\n"
        "from trajet.cli import app\n"
        "try:\n"
        "    app(['predict', '--backend', 'onnx', '--model', sys.argv[1], sys.argv[2]])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print(json.dumps({'heavy': heavy}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TRAJET_HOME": str(warm_home)}
    done = subprocess.run([sys.executable, "-c", code, str(model_dir), text], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    prediction, modules = (json.loads(line) for line in done.stdout.strip().splitlines())
    assert modules == {"heavy": []}, "the ONNX predict path imported " + ", ".join(modules["heavy"])
    reference = torch_predictor.predict([text])[0]
    assert prediction["text"] == text and _spans(prediction) == _spans(reference)


def test_a_batch_encoding_lists_its_ids_once():
    """The predictor reads `input_ids` row by row: rebuilding the whole list on each read made a batch of n
    sentences cost n^2 (2,000 sentences ran at a third of the speed)."""
    from trajet.subwords import _Encoding

    class Enc:
        def __init__(self, ids):
            self.ids, self.word_ids = ids, [None, *range(len(ids) - 2), None]

    enc = _Encoding([Enc([0, 5, 2]), Enc([0, 7, 8, 2])])
    assert enc["input_ids"] is enc["input_ids"]
    assert enc["input_ids"] == [[0, 5, 2], [0, 7, 8, 2]] and enc.word_ids(1) == [None, 0, 1, None]


def test_plain_tokenizer_words_encoded_once_give_the_sentence_encoding(model_dir, tiny, monkeypatch):
    """Sub-word ids kept per word, assembled with the special tokens: the same ids and word ids as `tokenizers`
    encoding whole sentences, on a cold cache, a warm one and one that restarts when full."""
    from trajet import subwords
    from trajet.phrases import tokenize
    from trajet.subwords import PlainTokenizer

    plain = PlainTokenizer(model_dir)
    assert plain._around is not None  # the probes agreed: the per-word path is the one in use
    texts = [p.text for p in tiny["train"][:200] + tiny["val"]] + ["Metz - Lyon par Nancy 🚄 xqzwvk ŒUVRE Ça ß ı"]
    words = [[t.text for t in tokenize(text)] for text in texts]
    expected = plain._tok.encode_batch(words, is_pretokenized=True, add_special_tokens=True)

    def check(enc):
        assert enc["input_ids"] == [e.ids for e in expected]
        assert all(enc.word_ids(i) == list(e.word_ids) for i, e in enumerate(expected))

    check(plain(words))
    check(plain(words))
    monkeypatch.setattr(subwords, "WORD_CACHE_SIZE", 50)
    check(plain(words))
    assert len(plain._pieces) <= max(50, len({w for ws in words for w in ws}))


def test_plain_tokenizer_falls_back_to_whole_sentences_when_words_do_not_assemble(model_dir, monkeypatch):
    from trajet.subwords import PlainTokenizer

    monkeypatch.setattr(PlainTokenizer, "_assemble", lambda self, words: onnx_runtime_encoding([[1]] * len(words)))
    plain = PlainTokenizer(model_dir)
    assert plain._around is None
    enc = plain([["Paris", "Lyon"]])
    assert enc["input_ids"] == [plain._tok.encode(["Paris", "Lyon"], is_pretokenized=True).ids]


def onnx_runtime_encoding(ids):
    from trajet.subwords import _Encoding

    return _Encoding(ids=ids, word_ids=[[None] * len(row) for row in ids])


def test_word_label_distributions_match_torch(exported, model_dir, torch_predictor, texts):
    """`tag_words` gives every label's probability per word (trajet.audit reads the annotated tag's): the ONNX
    backend computes them in numpy from its own logits, through the same `_tag_batch`."""
    import numpy as np

    from trajet.labels import LABELS
    from trajet.onnx_runtime import OnnxPredictor

    fp32 = OnnxPredictor.load(model_dir, cache_root=exported.folder.parent, precision="fp32")
    for got, want in zip(fp32.tag_words(texts), torch_predictor.tag_words(texts), strict=True):
        assert got.tags == want.tags and all(len(row) == len(LABELS) for row in got.label_probs)
        np.testing.assert_allclose(got.label_probs, want.label_probs, atol=1e-3)
