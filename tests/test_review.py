"""The review queue round trip (trajet.review, trajet.review_accept, `trajet review`): a batch with slips is
audited by the real tiny model, exported for annotators (JSONL or Label Studio tasks), corrected, and accepted
back through ingestion's parsers and row rules; corrections replace the annotation with its history kept,
refused rows are named one line each, and decided phrases are back in the next snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.test_audit import clean_batch, ingest, noisy_batch
from tests.train_fixtures import trained_sure
from trajet import labelstudio, store
from trajet import validate as v
from trajet.audit import AuditConfig, audit_batch
from trajet.cli import app
from trajet.config import REPO_ROOT
from trajet.errors import TrajetError
from trajet.feedback import PhraseRevision, ReviewItem
from trajet.predict import Predictor
from trajet.review import entries, export_rows, export_tasks
from trajet.review_accept import accept_file
from trajet.suggest import write_rows

pytest_plugins = ["dbfixtures"]


@pytest.fixture(scope="session")
def sure(tmp_path_factory):
    return trained_sure(tmp_path_factory.mktemp("sure"))


@pytest.fixture(scope="module")
def predictor(sure):
    return Predictor.load(sure["model"])


def audited(engine, predictor, tmp_path: Path, policy: str = "hold_all") -> tuple[dict[str, list[dict]], list]:
    """A batch with slips stored and audited (every queued row held); the right annotation of each text, and
    the open items, strongest first."""
    rows = noisy_batch()
    right = {p.text: [e.to_dict() for e in clean.entities] for (p, _), clean in zip(rows, clean_batch(), strict=True)}
    batch = ingest(engine, tmp_path / "noisy.jsonl", [p for p, _ in rows])
    audit_batch(engine, batch, predictor, champion_version="v7", config=AuditConfig(policy=policy))
    found = entries(engine)
    assert len(found) >= 10
    return right, found


def stored(engine) -> dict[int, store.PhraseRow]:
    with store.session(engine) as s:
        return {p.id: p for p in s.scalars(sa.select(store.PhraseRow))}


def items(engine) -> dict[int, ReviewItem]:
    with store.session(engine) as s:
        return {i.id: i for i in s.scalars(sa.select(ReviewItem))}


def spans(entities) -> list[tuple[int, int, str]]:
    return sorted((e["start"], e["end"], e["label"]) for e in entities)


# ---------------------------------------------------------------------------------------------------- JSONL


def test_export_correct_accept_round_trip(engine, predictor, tmp_path):
    right, found = audited(engine, predictor, tmp_path)
    before = stored(engine)
    rows = export_rows(found)
    for row, e in zip(rows, found, strict=True):
        assert row["text"] == e.phrase.text and spans(row["entities"]) == spans(e.phrase.entities)
        meta = row["meta"]
        assert (meta["review_item"], meta["phrase_id"], meta["reason"]) == (e.item.id, e.phrase.id, e.item.reason)
        assert spans(meta["model_entities"]) == spans(e.item.model_entities) and meta["champion_version"] == "v7"
        assert all(row["text"][m["start"]:m["end"]] == m["text"] for m in meta["model_entities"])
    # the annotator puts every row right but the last, which they keep as annotated
    for row in rows[:-1]:
        row["entities"] = right[row["text"]]
    path = tmp_path / "review.jsonl"
    write_rows(path, rows)
    report = accept_file(engine, path)
    assert report.problems == []
    assert (report.read, report.corrected, report.accepted, report.released) == (len(rows), len(rows) - 1, 1, len(rows))
    after, decided = stored(engine), items(engine)
    for line, row in enumerate(rows, start=1):
        phrase = after[row["meta"]["phrase_id"]]
        assert spans(phrase.entities) == spans(row["entities"])
        assert (phrase.n_depart, phrase.n_arrivee, phrase.n_via) == tuple(
            sum(e["label"] == label for e in row["entities"]) for label in ("DEPART", "ARRIVEE", "VIA"))
        item = decided[row["meta"]["review_item"]]
        assert item.status == ("accepted" if line == len(rows) else "corrected") and item.resolved_at is not None
        assert f"{path}:{line}" in item.resolution
    with store.session(engine) as s:
        revisions = {r.phrase_id: r for r in s.scalars(sa.select(PhraseRevision))}
    assert set(revisions) == {row["meta"]["phrase_id"] for row in rows[:-1]}  # nothing changed, no revision
    for line, row in enumerate(rows[:-1], start=1):
        r = revisions[row["meta"]["phrase_id"]]
        assert spans(r.old_entities) == spans(before[r.phrase_id].entities) and spans(r.new_entities) == spans(right[row["text"]])
        assert (r.review_item_id, r.source) == (row["meta"]["review_item"], f"{path}:{line}")
    assert sum(store.create_snapshot(engine).counts.values()) == len(after)  # every phrase back
    # the same file again changes nothing: every item is decided
    again = accept_file(engine, path)
    assert (again.corrected, again.accepted, len(again.problems)) == (0, 0, len(rows))
    assert again.problems[0].startswith(f"{path}:1: review item {rows[0]['meta']['review_item']} was already corrected (")
    assert stored(engine).keys() == after.keys() and all(
        spans(p.entities) == spans(after[k].entities) for k, p in stored(engine).items())


def test_bad_rows_are_named_one_line_each_and_the_good_ones_apply(sqlite_engine, predictor, tmp_path):
    right, found = audited(sqlite_engine, predictor, tmp_path)
    rows = export_rows(found)
    good = {**rows[0], "entities": right[rows[0]["text"]]}
    first = rows[1]["entities"][0] if rows[1]["entities"] else right[rows[1]["text"]][0]
    off = {**rows[1], "entities": [{**first, "start": first["start"] + 1}]}  # starts inside a word
    retyped = {**rows[2], "text": rows[2]["text"] + " !"}
    anonymous = {**rows[3], "meta": {k: x for k, x in rows[3]["meta"].items() if k != "review_item"}}
    unknown = {**rows[4], "meta": {**rows[4]["meta"], "review_item": 99999}}
    lines = [json.dumps(r, ensure_ascii=False) for r in (good, off, retyped, anonymous, unknown, rows[5], rows[5])]
    path = tmp_path / "review.jsonl"
    path.write_text("\n".join(lines + ['{"text": "de Paris"']) + "\n", encoding="utf-8")
    report = accept_file(sqlite_engine, path)
    phrase2 = rows[2]["meta"]["phrase_id"]
    item5 = rows[5]["meta"]["review_item"]
    assert report.problems == [
        f"{path}:2: {v.OFF_BOUNDARY}",
        f"{path}:3: the text differs from review item {rows[2]['meta']['review_item']}'s phrase {phrase2}: "
        f"{rows[2]['text']!r}",
        f"{path}:4: no review item id (`review_item`): rows come from `trajet review export`",
        f"{path}:5: no review item 99999",
        f"{path}:6: review item {item5} appears 2 times in the file: keep one",
        f"{path}:7: review item {item5} appears 2 times in the file: keep one",
        f"{path}:8: {v.UNPARSEABLE}",
    ]
    assert (report.read, report.corrected, report.accepted) == (8, 1, 0)
    status = {i: item.status for i, item in items(sqlite_engine).items()}
    assert status[rows[0]["meta"]["review_item"]] == "corrected"
    assert all(status[r["meta"]["review_item"]] == "open" for r in rows[1:6])
    assert all(spans(stored(sqlite_engine)[r["meta"]["phrase_id"]].entities) == spans(r["entities"]) for r in rows[1:6])
    # a decided item is not decided twice
    path2 = tmp_path / "again.jsonl"
    write_rows(path2, [{**rows[0], "entities": rows[0]["entities"]}])
    [problem] = accept_file(sqlite_engine, path2).problems
    assert problem == (f"{path2}:1: review item {rows[0]['meta']['review_item']} was already corrected "
                       f"(annotation replaced from {path}:1); nothing changed")
    with pytest.raises(TrajetError, match=r"a review comes back as JSONL or a Label Studio JSON export"):
        conll = tmp_path / "review.conll"
        conll.write_text("de\tO\nParis\tB-DEPART\n", encoding="utf-8")
        accept_file(sqlite_engine, conll)
    with pytest.raises(TrajetError, match=r"nope.jsonl: no such file$"):
        accept_file(sqlite_engine, tmp_path / "nope.jsonl")


# ---------------------------------------------------------------------------------------------- Label Studio


def test_labelstudio_tasks_round_trip(sqlite_engine, predictor, tmp_path):
    right, found = audited(sqlite_engine, predictor, tmp_path)
    tasks = export_tasks(found)
    for task, e in zip(tasks, found, strict=True):
        text = e.phrase.text
        assert task["data"]["text"] == text and task["data"]["review_item"] == e.item.id
        [annotation] = task["annotations"]
        [prediction] = task["predictions"]
        for results, want in ((annotation["result"], e.phrase.entities), (prediction["result"], e.item.model_entities)):
            assert spans({"start": r["value"]["start"], "end": r["value"]["end"], "label": r["value"]["labels"][0]}
                         for r in results) == spans(want)
            assert all(text[r["value"]["start"]:r["value"]["end"]] == r["value"]["text"] for r in results)
        assert prediction["model_version"] == "v7" and prediction["score"] == round(e.item.confidence, 4)
    path = tmp_path / "review-tasks.json"
    assert labelstudio.write_tasks(path, tasks) == len(found)
    # Label Studio: imported, reviewed, exported as JSON. Task ids are its own; each imported annotation gets an
    # id and dates. The reviewer fixes the first tasks in place, takes the model's prediction as a new
    # annotation on the next to last, and submits the last as it was.
    exported = json.loads(path.read_text(encoding="utf-8"))
    for n, task in enumerate(exported, start=1):
        task.update(id=700 + n, project=9, inner_id=n)
        [ann] = task["annotations"]
        ann.update(id=900 + n, completed_by=3, task=700 + n, created_at="2026-12-05T09:00:00.000000Z",
                   updated_at="2026-12-05T09:00:00.000000Z")
        text = task["data"]["text"]
        if n < len(exported) - 1:
            ann["result"] = [labelstudio.span_result(text, e["start"], e["end"], e["label"], result_id=f"fix{k}")
                             for k, e in enumerate(right[text])]
            ann["updated_at"] = "2026-12-05T10:30:00.000000Z"
        elif n == len(exported) - 1:
            task["annotations"].append({"id": 990, "completed_by": 3, "task": 700 + n, "was_cancelled": False,
                                        "result": task["predictions"][0]["result"],
                                        "created_at": "2026-12-05T10:31:00.000000Z",
                                        "updated_at": "2026-12-05T10:31:00.000000Z"})
    export = tmp_path / "project-9-at-2026-12-05-10-40-3f2a.json"
    export.write_text(json.dumps(exported, ensure_ascii=False), encoding="utf-8")
    report = accept_file(sqlite_engine, export)
    assert report.problems == []
    took_model = found[-2]
    unchanged = spans(took_model.item.model_entities) == spans(took_model.phrase.entities)
    assert report.corrected + report.accepted == len(found) and report.accepted == 1 + unchanged
    after = stored(sqlite_engine)
    for n, e in enumerate(found, start=1):
        want = {len(found): e.phrase.entities, len(found) - 1: e.item.model_entities}.get(n, right[e.phrase.text])
        assert spans(after[e.phrase.id].entities) == spans(want)
    with store.session(sqlite_engine) as s:
        sources = set(s.scalars(sa.select(PhraseRevision.source)))
    assert f"{export}:1" in sources and f"{export}:{len(found)}" not in sources
    assert all(i.status != "open" for i in items(sqlite_engine).values())


# ------------------------------------------------------------------------------------------------------ CLI


def _invoke(*args: str):
    res = CliRunner(env={"COLUMNS": "250"}).invoke(app, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def test_the_review_commands(sure, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TRAJET_DATABASE_URL", url)
    store.upgrade(url)
    rows = noisy_batch()
    right = {p.text: [e.to_dict() for e in clean.entities] for (p, _), clean in zip(rows, clean_batch(), strict=True)}
    source = tmp_path / "batch.jsonl"
    source.write_text("".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p, _ in rows), encoding="utf-8")
    assert _invoke("ingest", str(source)).exit_code == 0
    res = _invoke("review", "audit", "1", "--model", str(sure["model"]))
    assert res.exit_code == 0, res.output
    engine = store.get_engine(url)
    queued = entries(engine)
    assert f"{len(rows)} rows read (0 audited before or reviewed), {len(queued)} queued (" in res.output
    assert f"{sum(e.item.held for e in queued)} held out of snapshots (policy hold_confident)" in res.output
    res = _invoke("review", "list")
    assert res.exit_code == 0 and f"Review items (open): {len(queued)}" in res.output
    assert all(e.phrase.text in res.output for e in queued)
    first = queued[0]
    res = _invoke("review", "show", str(first.item.id))
    assert res.exit_code == 0 and first.phrase.text in res.output
    assert f"- {first.item.reason} {first.item.confidence:.3f}: annotated" in res.output
    out = tmp_path / "review.jsonl"
    res = _invoke("review", "export", "-o", str(out))
    assert res.exit_code == 0 and f"{len(queued)} review items written to {out} (jsonl)" in res.output
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["meta"]["review_item"] for r in exported] == [e.item.id for e in queued]
    tasks_out = tmp_path / "tasks.json"
    assert _invoke("review", "export", "--format", "labelstudio", "-o", str(tasks_out)).exit_code == 0
    assert [t["data"]["review_item"] for t in json.loads(tasks_out.read_text(encoding="utf-8"))] == [
        e.item.id for e in queued]
    for r in exported:
        r["entities"] = right[r["text"]]
    write_rows(out, exported)
    res = _invoke("review", "accept", str(out))
    assert res.exit_code == 0, res.output
    assert f"{len(queued)} rows, {len(queued)} corrected, 0 accepted as annotated, 0 refused" in res.output
    assert "Review items (open): 0" in _invoke("review", "list").output
    assert f"Review items (corrected): {len(queued)}" in _invoke("review", "list", "--status", "corrected").output
    res = _invoke("review", "show", str(first.item.id))
    assert "decided " in res.output and "revision " in res.output and f"from {out}:1" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**exported[0], "entities": [{"start": 1, "end": 3, "label": "DEPART"}]}) + "\n",
                   encoding="utf-8")
    res = _invoke("review", "accept", str(bad))
    assert res.exit_code == 1 and f"refused: {bad}:1: {v.OFF_BOUNDARY}" in res.output
    env = {**os.environ, "TRAJET_DATABASE_URL": url}
    proc = subprocess.run([sys.executable, "-m", "trajet", "review", "show", "999"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: no review item 999 (see `trajet review list`)"
