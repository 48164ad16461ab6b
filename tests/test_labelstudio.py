"""Label Studio in and out: an export in the tool's documented JSON format goes through the normal ingest path
(validation, quarantine, stored counts), and the pre-annotation writer's tasks read back through the same parser.

`fixtures/labelstudio_export.json` is shaped like a Label Studio 1.x project export (task, annotation and
prediction fields as the tool writes them): a good task, a cancelled annotation beside a good one, a task whose
later annotation corrects an earlier one, a task never annotated, an unknown label, a span whose offsets miss
its text by one, UTF-16 offsets after an emoji (Label Studio before its emoji fix), a no-trip sentence
annotated with no span, and a task with only a model prediction.
"""

import copy
import json
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trajet import store
from trajet import validate as v
from trajet.ingest import export_quarantine, ingest_source
from trajet.ingest_sql import quarantine_rows
from trajet.labelstudio import LABEL_CONFIG, prediction_tasks, write_tasks
from trajet.parsers import LABELSTUDIO, content_format, parse_file

pytest_plugins = ["dbfixtures"]
EXPORT = Path(__file__).resolve().parent / "fixtures" / "labelstudio_export.json"


def stored_entities(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.PhraseRow.text, store.PhraseRow.entities, store.PhraseRow.meta)).all()
    return {text: ([(e["label"], text[e["start"]:e["end"]]) for e in ents], meta) for text, ents, meta in rows}


def test_export_is_ingested_with_validation_and_quarantine(engine, tmp_path):
    path = tmp_path / "project-4-at-2026-12-03.json"
    shutil.copy(EXPORT, path)
    [rep] = ingest_source(str(path), engine=engine)
    assert rep.status == "accepted", rep.message
    assert (rep.rows_read, rep.stored, rep.duplicates, rep.quarantined) == (9, 5, 0, 4)
    _, rows = quarantine_rows(engine, rep.batch_id)
    got = {r.line: (json.loads(r.raw)["id"], r.reasons) for r in rows}
    assert got == {
        4: (104, [v.NOT_ANNOTATED]),
        5: (105, [v.UNKNOWN_LABEL]),
        6: (106, [v.OFF_BOUNDARY, v.UNTRIMMED, v.SPAN_TEXT]),
        9: (109, [v.NOT_ANNOTATED]),  # a model's prediction is not an annotation
    }
    with engine.connect() as conn:
        assert conn.scalar(sa.select(store.Batch.format).where(store.Batch.id == rep.batch_id)) == LABELSTUDIO
    stored = stored_entities(engine)
    assert stored == {
        "Bonjour, je voudrais un billet de Paris à Lyon demain matin":
            ([("DEPART", "Paris"), ("ARRIVEE", "Lyon")], {"id": 101, "source": "labelstudio"}),
        # the cancelled (skipped) annotation is later, but only a submitted one counts
        "Bordeaux Toulouse via Agen stp":
            ([("DEPART", "Bordeaux"), ("ARRIVEE", "Toulouse"), ("VIA", "Agen")], {"id": 102, "source": "labelstudio"}),
        # two submitted annotations: the later one (roles corrected) counts
        "je pars de Nantes jusqu'à Rennes vendredi":
            ([("DEPART", "Nantes"), ("ARRIVEE", "Rennes")], {"id": 103, "source": "labelstudio"}),
        # UTF-16 offsets after an emoji, recognised by the span's own text and converted
        "🚆 de Marseille à Nice": ([("DEPART", "Marseille"), ("ARRIVEE", "Nice")], {"id": 107, "source": "labelstudio"}),
        "Il fait beau à Brest aujourd'hui": ([], {"id": 108, "source": "labelstudio"}),
    }
    # The quarantine goes back as a Label Studio array of the four tasks, whole, ready to fix and re-ingest.
    exported = json.loads(export_quarantine(engine, rep.batch_id))
    original = json.loads(EXPORT.read_text(encoding="utf-8"))
    assert exported == [t for t in original if t["id"] in (104, 105, 106, 109)]
    fixed = copy.deepcopy(exported)
    fixed[1]["annotations"][0]["result"][1]["value"]["labels"] = ["ARRIVEE"]
    value = fixed[2]["annotations"][0]["result"][0]["value"]
    value["start"], value["end"] = value["start"] - 1, value["end"] - 1
    fix_path = tmp_path / "fixed.json"
    fix_path.write_text(json.dumps(fixed[1:3], ensure_ascii=False), encoding="utf-8")
    [again] = ingest_source(str(fix_path), engine=engine)
    assert (again.status, again.stored, again.quarantined) == ("accepted", 2, 0)
    assert stored_entities(engine)["de Lille à Arras ce soir"][0] == [("DEPART", "Lille"), ("ARRIVEE", "Arras")]


def test_format_is_recognised_by_suffix_and_content(sqlite_engine, tmp_path):
    assert content_format("a.json", "jsonl", b"\xef\xbb\xbf \n[{}]") == LABELSTUDIO
    assert content_format("a.jsonl", "jsonl", b"[{}]") == "jsonl"  # .jsonl never changes
    assert content_format("a.json", "jsonl", b'{"text": "x", "entities": []}') == "jsonl"
    # a .json file of JSON lines is still JSONL
    lines = tmp_path / "lines.json"
    lines.write_text('{"text": "de Paris à Lyon", "entities": [{"start": 3, "end": 8, "label": "DEPART"}]}\n',
                     encoding="utf-8")
    [rep] = ingest_source(str(lines), engine=sqlite_engine)
    assert (rep.status, rep.stored) == ("accepted", 1)
    # a truncated export: one row, rejected as not the format, exported back verbatim
    broken = tmp_path / "broken.json"
    data = EXPORT.read_bytes()[:500]
    broken.write_bytes(data)
    [bad] = ingest_source(str(broken), engine=sqlite_engine)
    assert bad.status == "rejected" and "not a Label Studio JSON (an array of tasks) file" in bad.message
    assert bad.reasons == {v.UNPARSEABLE: 1, v.NOT_FORMAT: 1}
    assert export_quarantine(sqlite_engine, bad.batch_id) == data + b"\n"
    # tasks that are not objects, or lack data.text
    odd = tmp_path / "odd.json"
    odd.write_text('[1, {"id": 7, "data": {"txt": "x"}, "annotations": [{"result": []}]},'
                   ' {"id": 8, "data": {"text": "vers Caen"}, "annotations": [{"result": [{"type": "choices",'
                   ' "value": {"choices": ["urgent"]}}]}]}]', encoding="utf-8")
    rows = parse_file(odd, LABELSTUDIO)
    assert [r.line for r in rows] == [1, 2, 3]
    assert [dict(r.counts) for r in rows] == [{"unparseable": 1}, {"n_missing": 1}, {"n_wrong_type": 1}]


def test_non_utf8_export_is_one_rejected_row(sqlite_engine, tmp_path):
    path = tmp_path / "latin1.json"
    data = '[{"id": 1, "data": {"text": "caf\xe9 \xe0 Lyon"}, "annotations": []}]'.encode("latin-1")
    path.write_bytes(data)
    [rep] = ingest_source(str(path), engine=sqlite_engine)
    assert (rep.status, rep.rows_read, rep.quarantined) == ("rejected", 1, 1)
    assert rep.reasons == {v.NOT_UTF8: 1}
    assert export_quarantine(sqlite_engine, rep.batch_id) == data + b"\n"


TEXTS = ["je vais de Metz à Nancy via Toul", "🚆 billet Marseille Nice", "quel temps à Brest ?"]
SPANS = [
    [{"start": 11, "end": 15, "label": "DEPART", "text": "Metz", "score": 0.97},
     {"start": 28, "end": 32, "label": "VIA", "text": "Toul", "score": 0.61},
     {"start": 18, "end": 23, "label": "ARRIVEE", "text": "Nancy", "score": 0.9}],
    [{"start": 9, "end": 18, "label": "DEPART", "score": 0.8}, {"start": 19, "end": 23, "label": "ARRIVEE", "score": 0.7}],
    [],
]


def test_writer_tasks_round_trip_through_the_parser(sqlite_engine, tmp_path):
    tasks = prediction_tasks(TEXTS, SPANS, model_version="trajet-v7", data=[{"group": "stops"}, {}, {}])
    assert tasks[0]["data"] == {"group": "stops", "text": TEXTS[0]}
    [pred] = tasks[0]["predictions"]
    assert pred["model_version"] == "trajet-v7" and pred["score"] == 0.61  # least confident span first in LS
    assert [r["value"]["labels"] for r in pred["result"]] == [["DEPART"], ["ARRIVEE"], ["VIA"]]
    assert pred["result"][1] == {"id": "t1r2", "from_name": "label", "to_name": "text", "type": "labels",
                                 "value": {"start": 18, "end": 23, "text": "Nancy", "labels": ["ARRIVEE"]},
                                 "score": 0.9}
    assert "score" not in tasks[2]["predictions"][0] and tasks[2]["predictions"][0]["result"] == []
    scored = prediction_tasks(TEXTS, SPANS, model_version="v", task_scores=[0.1, None, 0.3])
    assert [t["predictions"][0].get("score") for t in scored] == [0.1, 0.7, 0.3]
    assert 'name="label" toName="text"' in LABEL_CONFIG and 'value="$text"' in LABEL_CONFIG

    # Unreviewed pre-annotations are not labels: ingested as they are, every task is quarantined.
    path = tmp_path / "suggested.json"
    assert write_tasks(path, tasks) == 3
    [rep] = ingest_source(str(path), engine=sqlite_engine)
    assert (rep.status, rep.stored) == ("held", 0) and rep.reasons == {v.NOT_ANNOTATED: 3}

    # An annotator submits each prediction unchanged (Label Studio copies its result into an annotation).
    exported = json.loads(path.read_text(encoding="utf-8"))
    for n, task in enumerate(exported, start=1):
        task["id"] = 500 + n
        task["annotations"] = [{"id": 900 + n, "result": task["predictions"][0]["result"], "was_cancelled": False}]
    reviewed = tmp_path / "reviewed.json"
    reviewed.write_text(json.dumps(exported, ensure_ascii=False), encoding="utf-8")
    rows = parse_file(reviewed, LABELSTUDIO)
    assert [r.text for r in rows] == TEXTS
    assert [sorted(r.entities) for r in rows] == [sorted((e["start"], e["end"], e["label"]) for e in s) for s in SPANS]
    [ok] = ingest_source(str(reviewed), engine=sqlite_engine)
    assert (ok.status, ok.stored, ok.quarantined) == ("accepted", 3, 0)


def test_writer_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="2 texts but 1 span lists"):
        prediction_tasks(["a", "b"], [[]], model_version="v")


_value = st.fixed_dictionaries({"start": st.integers(-2, 30), "end": st.integers(-2, 30)}, optional={
    "text": st.text(max_size=6), "labels": st.lists(st.sampled_from(["DEPART", "ARRIVEE", "VIA", "X"]), max_size=2)})
_result = st.fixed_dictionaries({"type": st.sampled_from(["labels", "choices"]), "value": _value | st.integers()})
_annotation = st.fixed_dictionaries({}, optional={
    "result": st.lists(_result, max_size=3) | st.none(), "was_cancelled": st.booleans(),
    "updated_at": st.sampled_from(["2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", None])})
_task = st.one_of(
    st.integers(), st.none(),
    st.fixed_dictionaries({}, optional={
        "id": st.integers() | st.text(max_size=3),
        "data": st.fixed_dictionaries({}, optional={"text": st.text(max_size=25) | st.integers()}) | st.text(max_size=3),
        "annotations": st.lists(_annotation | st.integers(), max_size=3) | st.text(max_size=3)}))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tasks=st.lists(_task, max_size=8))
def test_fuzz_tasks_never_raise_and_every_task_is_accounted_for(sqlite_engine, tmp_path, tasks):
    path = tmp_path / f"fuzz-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    [rep] = ingest_source(str(path), engine=sqlite_engine)
    assert rep.rows_read == len(tasks)
    assert rep.stored + rep.duplicates + rep.quarantined == rep.rows_read
    if rep.status != "already_ingested":
        assert len(quarantine_rows(sqlite_engine, rep.batch_id)[1]) == rep.quarantined
