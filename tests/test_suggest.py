"""`trajet suggest`: ranking by the tiny model's real uncertainty, diversity, -n, rows ingestion accepts, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.train_fixtures import trained_tiny
from trajet.cli import app
from trajet.errors import TrajetError
from trajet.parsers import parse_jsonl_row
from trajet.phrases import phrase_from_obj, tokenize
from trajet.predict import Predictor
from trajet.suggest import jaccard, read_pool, suggest, word_set

# The tiny model (tests/train_fixtures.py) was trained on these templates: it is sure of them.
SURE = ["Il fait beau à Lyon aujourd'hui.", "Quel temps fait-il à Nice ?", "Bonjour"]
# A list of towns with no cue: which is the departure, the arrival, a stop? The decoder even overrides its
# first choice on some words (one departure, one arrival).
UNSURE = ["Paris Lyon Marseille Lille Nantes Rennes", "[x] Lyon Paris Nice Metz Brest"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def predictor(tiny):
    return Predictor.load(tiny["model"])


def _pool(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    return path


def _least_sure(predictor: Predictor, text: str) -> float:
    """1 - the lowest probability of a decoded tag among the words that are not punctuation."""
    return 1.0 - min(_probs_by_word(predictor, text).values())


def _probs_by_word(predictor: Predictor, text: str) -> dict[str, float]:
    [tagged] = predictor.tag_words([text])
    assert not isinstance(tagged, str)
    words = [(t.text, p) for t, p in zip(tagged.tokens, tagged.probs, strict=True) if any(c.isalnum() for c in t.text)]
    return {w: min(p for v, p in words if v == w) for w, _ in words}


def test_ranking_follows_the_models_uncertainty(predictor, tmp_path):
    texts = SURE + UNSURE + [p.text for p in make_pool_phrases()]
    result = suggest(predictor, _pool(tmp_path / "pool.jsonl", texts), n=len(texts), model="tiny", max_similarity=1.0)
    rows = result.rows
    values = [r["meta"]["uncertainty"] for r in rows]
    assert values == sorted(values, reverse=True)
    assert [r["meta"]["rank"] for r in rows] == list(range(1, len(rows) + 1))
    # each value is the model's own: 1 - the probability of the least sure word's decoded tag
    for r in rows:
        assert r["meta"]["uncertainty"] == round(_least_sure(predictor, r["text"]), 4)
        probs = _probs_by_word(predictor, r["text"])
        assert probs[r["meta"]["least_sure_word"]] == min(probs.values())
    rank = {r["text"]: r["meta"]["rank"] for r in rows}
    assert max(rank[t] for t in UNSURE) < min(rank[t] for t in SURE)
    assert min(_least_sure(predictor, t) for t in UNSURE) > 0.5 > max(_least_sure(predictor, t) for t in SURE)


def make_pool_phrases():
    from tests.train_fixtures import make_phrases

    return make_phrases(12, seed=7)


def test_near_duplicates_are_not_both_chosen(predictor, tmp_path):
    twin = "paris lyon marseille lille nantes rennes stp"  # one word more, case folded: Jaccard 6/7
    assert jaccard(word_set(tokenize(UNSURE[0])), word_set(tokenize(twin))) == pytest.approx(6 / 7)
    pool = _pool(tmp_path / "pool.jsonl", [UNSURE[0], twin, UNSURE[0].upper(), *SURE])
    diverse = suggest(predictor, pool, n=10, model="tiny")
    chosen = [r["text"] for r in diverse.rows]
    assert sum(t in chosen for t in (UNSURE[0], twin, UNSURE[0].upper())) == 1
    assert diverse.near_duplicates == 2 and len(chosen) == 1 + len(SURE)
    # a looser threshold keeps the one-word variant; an exact copy (once folded) never comes twice
    loose = [r["text"] for r in suggest(predictor, pool, n=10, model="tiny", max_similarity=0.9).rows]
    assert twin in loose and sum(t in loose for t in (UNSURE[0], UNSURE[0].upper())) == 1


def test_n_is_respected(predictor, tmp_path):
    texts = [p.text for p in make_pool_phrases()] + UNSURE
    result = suggest(predictor, _pool(tmp_path / "pool.jsonl", texts), n=3, model="tiny")
    assert len(result.rows) == 3
    full = suggest(predictor, _pool(tmp_path / "pool2.jsonl", texts), n=3, model="tiny", max_similarity=1.0)
    every = suggest(predictor, _pool(tmp_path / "pool3.jsonl", texts), n=100, model="tiny", max_similarity=1.0)
    assert [r["text"] for r in full.rows] == [r["text"] for r in every.rows[:3]]  # the top of the same ranking


def test_rows_carry_the_models_spans_and_parse_as_annotated_phrases(predictor, tmp_path):
    texts = ["Je pars de Nantes pour Brest demain.", *UNSURE]
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        json.dumps({"text": texts[0], "id": "req-1", "group": "order", "meta": {"from": "chat"}}) + "\n"
        + "".join(json.dumps({"text": t}) + "\n" for t in texts[1:]), encoding="utf-8")
    rows = suggest(predictor, pool, n=10, model="tiny").rows
    predicted = {t: p["entities"] for t, p in zip(texts, predictor.predict(texts), strict=True)}
    for n, row in enumerate(rows, start=1):
        assert row["entities"] == [{k: e[k] for k in ("start", "end", "label")} for e in predicted[row["text"]]]
        assert row["meta"]["suggested"] is True and row["meta"]["model"] == "tiny"
        phrase = phrase_from_obj(row)  # the phrase reader: spans on word boundaries
        assert [e.to_dict() for e in phrase.entities] == row["entities"]
        parsed = parse_jsonl_row(n, json.dumps(row, ensure_ascii=False))  # ingestion's parser: nothing to refuse
        assert set(+parsed.counts) <= {"n_depart", "n_arrivee", "n_via"}  # label counts only, no reason
        assert parsed.text == row["text"]
    first = next(r for r in rows if r["text"] == texts[0])
    assert first["id"] == "req-1" and first["group"] == "order" and first["meta"]["from"] == "chat"
    assert first["meta"]["pool_line"] == 1
    assert any(e["label"] == "DEPART" for e in first["entities"])  # the model's spans are the starting point


def test_suggested_rows_are_ingested_as_they_are(predictor, tmp_path):
    from tests.dbfixtures import migrated_engine
    from trajet.ingest import ingest_source

    texts = ["Je pars de Nantes pour Brest demain.", *UNSURE, *SURE]
    rows = suggest(predictor, _pool(tmp_path / "pool.jsonl", texts), n=10, model="tiny").rows
    out = tmp_path / "suggestions.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    engine = migrated_engine(f"sqlite:///{tmp_path / 'store.db'}")
    [report] = ingest_source(str(out), engine=engine)
    assert (report.stored, report.quarantined) == (len(rows), 0)


def test_bad_lines_are_named_and_skipped(predictor, tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"text": "Trajet Metz Dijon"}\n{"text": \n[1, 2]\n\n{"txt": "x"}\n{"text": ""}\n'
                    '{"text": "Bonjour"}\n', encoding="utf-8")
    result = suggest(predictor, pool, n=5, model="tiny")
    assert [r["text"] for r in sorted(result.rows, key=lambda r: r["meta"]["pool_line"])] == [
        "Trajet Metz Dijon", "Bonjour"]
    assert result.problems == [
        f"{pool}:2: not valid JSON (Expecting value at column 10)",
        f"{pool}:3: a line must be a JSON object with a 'text' field",
        f"{pool}:5: missing string field 'text'",
        f"{pool}:6: empty text",
    ]
    assert result.read == 6


def test_plain_text_pool(tmp_path):
    pool = tmp_path / "pool.txt"
    pool.write_text("de Paris à Lyon\n\n  {pas du json}  \n", encoding="utf-8")
    requests, problems = read_pool(pool)
    assert [(r.line, r.text) for r in requests] == [(1, "de Paris à Lyon"), (3, "{pas du json}")] and not problems


def test_nothing_readable_is_one_clear_error(predictor, tmp_path):
    pool = _pool(tmp_path / "pool.jsonl", [])
    pool.write_text("nope\n", encoding="utf-8")
    with pytest.raises(TrajetError, match=r"pool.jsonl: no readable request \(1 bad lines; first: .*pool.jsonl:1: not valid JSON"):
        suggest(predictor, pool, n=5, model="tiny")


def test_cli_writes_the_file_and_names_bad_lines(tiny, predictor, tmp_path):
    pool = _pool(tmp_path / "unlabeled.jsonl", [*UNSURE, *SURE])
    with pool.open("a", encoding="utf-8") as fh:
        fh.write("{broken\n")
    out = tmp_path / "out" / "suggestions.jsonl"
    res = CliRunner().invoke(app, ["suggest", "--model", str(tiny["model"]), "--input", str(pool), "-n", "2",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == sorted(UNSURE, key=lambda t: -_least_sure(predictor, t))
    assert all(r["meta"]["model"] == str(tiny["model"]) for r in rows)
    assert f"skipped: {pool}:6: not valid JSON" in res.stderr
    assert "2 suggestions written" in res.stderr and "1 bad lines skipped" in res.stderr
    assert "Traceback" not in res.output


@pytest.mark.parametrize(("args", "message"), [
    (["-n", "0"], "-n 0: expected at least 1"),
    (["--max-similarity", "0"], "--max-similarity 0.0: expected a value in (0, 1]"),
])
def test_cli_bad_options_are_one_line_errors(tiny, tmp_path, args, message):
    pool = _pool(tmp_path / "pool.jsonl", SURE)
    res = CliRunner().invoke(app, ["suggest", "-m", str(tiny["model"]), "-i", str(pool), "-o",
                                   str(tmp_path / "o.jsonl"), *args])
    assert res.exit_code != 0 and isinstance(res.exception, TrajetError) and str(res.exception) == message


def test_cli_champion_from_the_registry_is_recorded_as_its_version(tiny, tmp_path, monkeypatch):
    from trajet.registry import open_registry

    registry_dir = tmp_path / "registry"
    reg = open_registry(str(registry_dir))
    reg.push("v1", tiny["model"], {"metrics": {"test": {"micro": {"f1": 0.9}}}})
    reg.promote("v1")
    monkeypatch.setenv("TRAJET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRAJET_REGISTRY_URI", str(registry_dir))
    monkeypatch.chdir(tmp_path)  # `champion` must not name a folder here
    out = tmp_path / "s.jsonl"
    res = CliRunner().invoke(app, ["suggest", "-m", "champion", "-i", str(_pool(tmp_path / "p.jsonl", UNSURE)),
                                   "-n", "5", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert {json.loads(line)["meta"]["model"] for line in out.read_text(encoding="utf-8").splitlines()} == {"v1"}


def test_punctuation_does_not_count_unless_the_text_is_nothing_else():
    from trajet.suggest import judged_words, uncertainty

    tokens = tokenize("de Paris-Lyon ?")  # de, Paris, -, Lyon, ?
    assert sum(not any(c.isalnum() for c in t.text) for t in tokens) == 2
    probs = [0.9 if any(c.isalnum() for c in t.text) else 0.01 for t in tokens]
    assert uncertainty(tokens, probs) == pytest.approx(0.1)
    only = tokenize("?!")
    assert judged_words(only) == list(range(len(only))) and uncertainty(only, [0.4] * len(only)) == pytest.approx(0.6)


def test_cli_writes_label_studio_tasks_that_come_back_through_ingestion(tiny, predictor, tmp_path):
    from tests.dbfixtures import migrated_engine
    from trajet.ingest import ingest_source

    texts = ["Je pars de Nantes pour Brest demain.", *UNSURE, *SURE]
    pool = _pool(tmp_path / "pool.jsonl", texts)
    out = tmp_path / "tasks.json"
    res = CliRunner().invoke(app, ["suggest", "-m", str(tiny["model"]), "-i", str(pool), "-n", "10", "-o", str(out),
                                   "--format", "labelstudio"])
    assert res.exit_code == 0, res.output
    tasks = json.loads(out.read_text(encoding="utf-8"))
    rows = suggest(predictor, pool, n=10, model=str(tiny["model"])).rows  # the same ranking, as JSONL
    assert [t["data"]["text"] for t in tasks] == [r["text"] for r in rows]
    for task, row in zip(tasks, rows, strict=True):
        [pred] = task["predictions"]
        assert pred["model_version"] == str(tiny["model"]) and "annotations" not in task
        assert pred["score"] == round(1 - row["meta"]["uncertainty"], 4)
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in pred["result"]] == [
            (e["start"], e["end"], e["label"]) for e in row["entities"]]
        assert {k: task["data"][k] for k in ("rank", "uncertainty", "pool_line")} == {
            k: row["meta"][k] for k in ("rank", "uncertainty", "pool_line")}
    # Label Studio: an annotator submits each prediction as it is, the project is exported as JSON
    for n, task in enumerate(tasks, start=1):
        task["id"] = 300 + n
        task["annotations"] = [{"id": 800 + n, "result": task["predictions"][0]["result"], "was_cancelled": False}]
    export = tmp_path / "project-2-at-2026-12-05.json"
    export.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    [report] = ingest_source(str(export), engine=migrated_engine(f"sqlite:///{tmp_path / 'store.db'}"))
    assert (report.status, report.stored, report.quarantined) == ("accepted", len(tasks), 0)
    bad = CliRunner().invoke(app, ["suggest", "-m", str(tiny["model"]), "-i", str(pool), "-o", str(out),
                                   "--format", "csv"])
    assert isinstance(bad.exception, TrajetError) and str(bad.exception) == "--format csv: expected one of jsonl, labelstudio"
