"""The prediction contract: JSON shape, character offsets, per-line errors, file and stdin/stdout modes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.train_fixtures import trained_tiny
from trajet.cli import app
from trajet.commands.predict import predict_stream
from trajet.labels import LABELS
from trajet.phrases import bio_to_spans, tokenize
from trajet.predict import MAX_CHARS, Predictor, percentile


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def predictor(tiny):
    return Predictor.load(tiny["model"])


def _check_shape(text: str, result: dict) -> None:
    assert set(result) == {"entities", "departure", "arrival", "via"}
    for ent in result["entities"]:
        assert set(ent) == {"start", "end", "label", "text", "score"}
        assert text[ent["start"] : ent["end"]] == ent["text"]
        assert ent["label"] in {"DEPART", "ARRIVEE", "VIA"}
        assert 0.0 < ent["score"] <= 1.0
    assert isinstance(result["via"], list)
    deps = [e["text"] for e in result["entities"] if e["label"] == "DEPART"]
    assert result["departure"] == (deps[0] if deps else None)


def test_predict_contract_and_offsets(predictor, tiny):
    texts = [p.text for p in tiny["train"][:40]] + ["  Je veux aller de Paris à Lyon demain.  "]
    results = predictor.predict(texts)
    assert len(results) == len(texts)
    for text, result in zip(texts, results, strict=True):
        _check_shape(text, result)
    # the model learned its training phrases: most come back exactly
    exact = sum(
        {(e["start"], e["end"], e["label"]) for e in r["entities"]} == {(e.start, e.end, e.label) for e in p.entities}
        for p, r in zip(tiny["train"][:40], results, strict=False)
    )
    assert exact >= 30


def test_errors_for_empty_and_over_long_text(predictor):
    long_words = " ".join(["Paris"] * 200)
    results = predictor.predict(["", "   ", long_words, "x" * (MAX_CHARS + 1), "de Paris à Lyon"])
    assert results[0] == {"error": "empty text"} and results[1] == {"error": "empty text"}
    # the limit is what the model can read (64 positions for the tiny base), not the training max_length (48)
    assert results[2]["error"].startswith("text too long:") and "sub-word tokens (max 64)" in results[2]["error"]
    assert results[3]["error"].startswith(f"text too long: {MAX_CHARS + 1} characters")
    assert "entities" in results[4]
    # evaluation path: unreadable texts predict nothing instead of failing the whole batch
    assert predictor.predict_entities(["", long_words])[0] == []


def test_text_longer_than_training_max_length_is_tagged(predictor):
    """A long request must not lose its entities because training batches were cut at max_length."""
    filler = " ".join(["demain"] * 50)
    text = f"Je veux aller de Paris à Lyon {filler}"
    n = len(predictor.tokenizer(text.split(), is_split_into_words=True)["input_ids"])
    assert 48 < n <= 64
    result = predictor.predict([text])[0]
    assert "error" not in result and "entities" in result


def test_batched_equals_one_by_one(predictor, tiny):
    texts = [p.text for p in tiny["val"][:12]]
    batched = predictor.predict(texts)
    single = [predictor.predict([t])[0] for t in texts]
    assert [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in batched] == [
        [(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in single
    ]


def test_stream_keeps_order_and_marks_bad_lines(predictor):
    import io

    lines = ['{"text": "de Paris à Lyon", "id": 7}', "not json", '{"id": 2}', "", '{"text": ""}', "[1]"]
    out = io.StringIO()
    counts = predict_stream(predictor, lines, out, "req.jsonl")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert counts == {"lines": 5, "errors": 4}
    assert rows[0]["id"] == 7 and "entities" in rows[0]
    assert rows[1]["error"].startswith("req.jsonl:2: not valid JSON")
    assert rows[2] == {"id": 2, "error": "req.jsonl:3: missing string field 'text'"}
    assert rows[3] == {"text": "", "error": "empty text"}
    assert rows[4]["error"] == "req.jsonl:6: a line must be a JSON object"


def test_cli_single_text(tiny):
    res = CliRunner().invoke(app, ["predict", "--model", str(tiny["model"]), "Je veux aller de Paris à Lyon"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout.strip())
    assert obj["text"] == "Je veux aller de Paris à Lyon"
    _check_shape(obj["text"], {k: v for k, v in obj.items() if k != "text"})


def test_cli_file_in_file_out(tiny, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "de Nantes à Brest", "ref": "a"}\n{"text": ""}\n', encoding="utf-8")
    res = CliRunner().invoke(
        app, ["predict", "--model", str(tiny["model"]), "--input", str(src), "--output", str(tmp_path / "out.jsonl")]
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0]["ref"] == "a" and rows[0]["text"] == "de Nantes à Brest" and "via" in rows[0]
    assert rows[1] == {"text": "", "error": "empty text"}


def test_cli_stdin_stdout(tiny):
    res = CliRunner().invoke(
        app, ["predict", "--model", str(tiny["model"]), "--input", "-", "--output", "-"],
        input='{"text": "Trajet Metz Dijon"}\n{"text": "Bonjour"}\n',
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["Trajet Metz Dijon", "Bonjour"]
    for r in rows:
        _check_shape(r["text"], {k: v for k, v in r.items() if k != "text"})


def test_cli_missing_model_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["predict", "--model", str(tmp_path / "nope"), "de Paris à Lyon"])
    assert res.exit_code != 0
    assert "nope" in str(res.exception)


def test_cli_evaluate_writes_report(tiny, tmp_path):
    from trajet.phrases import write_jsonl

    write_jsonl(tmp_path / "gold.jsonl", tiny["val"])
    res = CliRunner().invoke(
        app, ["evaluate", "--model", str(tiny["model"]), "--data", str(tmp_path / "gold.jsonl"),
              "--output", str(tmp_path / "rep.json")],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert rep["challenge"] is None
    assert rep["test"]["n_sentences"] == 40
    assert set(rep["test"]["per_entity"]) == {"DEPART", "ARRIVEE", "VIA"}


def test_percentile():
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([5.0], 99) == 5.0


def test_a_model_numbering_its_labels_otherwise_decodes_the_same(tiny, tmp_path):
    """The decoder works in Trajet's label order: a model whose head numbers the labels otherwise (rows of the
    classifier and id2label permuted together) gives the same predictions; a foreign label set is refused."""
    import shutil

    import torch
    from transformers import AutoModelForTokenClassification

    from trajet.errors import TrajetError
    from trajet.labels import LABELS

    model = AutoModelForTokenClassification.from_pretrained(str(tiny["model"]))
    order = [6, 0, 3, 5, 1, 4, 2]  # new id k holds the old label order[k]
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight[order])
        model.classifier.bias.copy_(model.classifier.bias[order])
    model.config.id2label = {k: LABELS[old] for k, old in enumerate(order)}
    model.config.label2id = {label: k for k, label in model.config.id2label.items()}
    permuted = tmp_path / "permuted"
    shutil.copytree(tiny["model"], permuted)
    model.save_pretrained(str(permuted))
    texts = [p.text for p in tiny["train"][:30]] + ["Paris Lyon Dijon demain"]
    assert Predictor.load(permuted).predict(texts) == Predictor.load(tiny["model"]).predict(texts)
    model.config.id2label = {k: f"TAG{k}" for k in range(7)}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    model.save_pretrained(str(permuted))
    with pytest.raises(TrajetError, match="are not Trajet's"):
        Predictor.load(permuted)


def test_traced_graph_answers_exactly_like_the_eager_model(predictor, tiny):
    import torch

    eager = Predictor.load(tiny["model"], trace=False)
    assert predictor._traced is not None and eager._traced is None
    texts = [p.text for p in tiny["train"][:60]] + ["Paris", "Je veux aller de Paris à Lyon en passant par Dijon demain"]
    assert predictor.predict(texts) == eager.predict(texts)
    batch = predictor._encode_batch([p for p in predictor._prepare_many(list(enumerate(texts))) if not isinstance(p, str)])
    with torch.inference_mode():
        assert torch.allclose(predictor._logits(batch), eager._logits(batch), atol=1e-5)


def _toy_model(branch_on_batch_size: bool):
    """A real torch module; with the branch, its forward takes a Python path on the batch size, which a trace
    bakes in."""
    import torch

    class Model(torch.nn.Module):
        config = type("Config", (), {"vocab_size": 50})()

        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(50, 7)

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            logits = self.emb(input_ids) * attention_mask.unsqueeze(-1)
            if branch_on_batch_size and input_ids.shape[0] == 2:
                logits = logits * 2
            return type("Out", (), {"logits": logits})()

    return Model().eval()


def test_a_model_that_does_not_trace_faithfully_runs_eager():
    from trajet.predictor import trace_model

    assert trace_model(_toy_model(branch_on_batch_size=False), with_types=False) is not None
    assert trace_model(_toy_model(branch_on_batch_size=True), with_types=False) is None


def test_a_live_trace_is_reused_only_by_its_own_class():
    """Traces are shared between models of one architecture (a hot swap must not register new TorchScript
    types); a class of the same name and config but other code must get its own trace, or none."""
    from trajet.predictor import trace_model

    alive = trace_model(_toy_model(branch_on_batch_size=False), with_types=False)
    assert alive is not None
    assert trace_model(_toy_model(branch_on_batch_size=True), with_types=False) is None


def test_tracing_failure_falls_back_to_eager(tiny, monkeypatch):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("tracing not supported here")

    monkeypatch.setattr(torch.jit, "trace", broken)
    fallback = Predictor.load(tiny["model"])
    assert fallback._traced is None
    texts = [p.text for p in tiny["train"][:20]]
    assert fallback.predict(texts) == Predictor.load(tiny["model"], trace=False).predict(texts)


def test_torch_predictor_encodes_with_the_plain_tokenizer_only_where_it_agrees(predictor, tiny):
    """Loaded with the `tokenizers`-only encoder (per-word ids) when it answers as transformers does: the same ids
    and word ids as the transformers tokenizer on the tiny model's sentences."""
    from trajet.phrases import tokenize
    from trajet.subwords import PlainTokenizer, load_tokenizer

    assert isinstance(predictor.tokenizer, PlainTokenizer)
    words = [[t.text for t in tokenize(p.text)] for p in tiny["train"][:100] + tiny["val"]]
    hf = load_tokenizer(tiny["model"])
    ours, theirs = predictor.tokenizer(words), hf(words, is_split_into_words=True, truncation=False)
    assert ours["input_ids"] == [list(ids) for ids in theirs["input_ids"]]
    assert all(ours.word_ids(i) == list(theirs.word_ids(i)) for i in range(len(words)))


def test_tag_words_is_what_predict_reads(predictor, tiny):
    texts = [p.text for p in tiny["val"][:20]] + ["", "Trajet Metz Dijon"]
    tagged = predictor.tag_words(texts)
    for text, words, result in zip(texts, tagged, predictor.predict(texts), strict=True):
        if "error" in result:
            assert words == result["error"]
            continue
        assert [t.text for t in words.tokens] == [t.text for t in tokenize(text)]
        assert all(0.0 < p <= 1.0 for p in words.probs) and len(words.probs) == len(words.tags)
        # every label's probability per word: a distribution whose decoded tag's entry is that tag's probability
        assert len(words.label_probs) == len(words.tags)
        for k, (tag, p, row) in enumerate(zip(words.tags, words.probs, words.label_probs, strict=True)):
            assert len(row) == len(LABELS) and abs(sum(row) - 1.0) < 1e-4
            assert row[LABELS.index(tag)] == pytest.approx(p) and words.prob_of(k, tag) == row[LABELS.index(tag)]
        spans = bio_to_spans(words.tokens, words.tags, strict=False)
        assert [(e.start, e.end, e.label) for e in spans] == [(e["start"], e["end"], e["label"]) for e in result["entities"]]
        for ent in result["entities"]:
            inside = [p for t, p in zip(words.tokens, words.probs, strict=True) if ent["start"] <= t.start < ent["end"]]
            assert ent["score"] == round(sum(inside) / len(inside), 4)
