"""Ingestion end to end: the bad-row matrix, fuzzing, idempotence, held and rejected batches, the
quarantine round trip, splits, the CLI and the S3 inbox. GX is imported once per process (cached suite)."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from trajet import store
from trajet import validate as v
from trajet.cli import app
from trajet.errors import TrajetError
from trajet.ingest import export_quarantine, fast_normalise, ingest_source
from trajet.ingest_sql import quarantine_rows
from trajet.phrases import normalise_text, parse_markup, phrase_to_conll, phrase_to_json

pytest_plugins = ["dbfixtures"]
REPO = Path(__file__).resolve().parent.parent
CITIES = ["Paris", "Lyon", "Nantes", "Brest", "Metz", "Lille", "Tours", "Dijon", "Nice", "Caen", "Pau", "Albi",
          "Agen", "Sète", "Rodez", "Arles", "Blois", "Vannes", "Laval", "Annecy"]


def good_lines(n, template="de [{a}|D] à [{b}|A]", offset=0):
    out = []
    for i in range(offset, offset + n):
        a, b = CITIES[i % len(CITIES)], CITIES[(i * 7 + 3) % len(CITIES)]
        out.append(phrase_to_json(parse_markup(template.format(a=a, b=b) + f" n°{i}")))
    return out


def jline(text, entities=(), **extra):
    return json.dumps({"text": text, "entities": [{"start": s, "end": e, "label": lab} for s, e, lab in entities],
                       **extra}, ensure_ascii=False)


def count(engine, table):
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(table))


def reasons_by_line(engine, batch_id):
    _, rows = quarantine_rows(engine, batch_id)
    return {r.line: r.reasons for r in rows}


# ------------------------------------------------------------------------------------------ bad-row matrix

SEED = "\n".join([jline("Je vais de Rouen à Reims", [(11, 16, "DEPART"), (19, 24, "ARRIVEE")]),
                  jline("De Vichy à Moulins", [(3, 8, "DEPART"), (11, 18, "ARRIVEE")])])
SIX_VIA = "de A à B via Tulle, Gap, Digne, Foix, Auch, Mende"
BAD_JSONL = [
    ("not json at all", [v.UNPARSEABLE]),
    ("[1, 2, 3]", [v.UNPARSEABLE]),
    ('{"entities": []}', [v.MISSING_FIELD]),
    (jline("de Paris à Lyon ok", [], colour="blue"), [v.EXTRA_FIELD]),
    ('{"text": 12, "entities": []}', [v.WRONG_TYPE]),
    ('{"text": "de Paris", "entities": [{"start": "3", "end": 8, "label": "DEPART"}]}', [v.WRONG_TYPE]),
    (jline("   \u00a0 "), [v.EMPTY_TEXT]),
    (jline("a" * 513), [v.TOO_LONG]),
    (jline("de Paris\x07 à Lyon", [(3, 8, "DEPART")]), [v.CONTROL_CHARS]),
    (jline("de Metz à Nancy", [(10, 40, "ARRIVEE")]), [v.OUT_OF_BOUNDS]),
    (jline("de Toulouse à Albi", [(3, 7, "DEPART")]), [v.OFF_BOUNDARY]),
    (jline("de Saint-Malo à Rennes", [(3, 13, "DEPART"), (3, 13, "VIA")]), [v.OVERLAP]),
    (jline("de Brest à Quimper", [(3, 8, "CITY")]), [v.UNKNOWN_LABEL]),
    (jline("de Lille ou Douai à Arras", [(3, 8, "DEPART"), (12, 17, "DEPART")]), [v.MULTI_DEPART]),
    (jline("vers Arras ou Lens", [(5, 10, "ARRIVEE"), (14, 18, "ARRIVEE")]), [v.MULTI_ARRIVEE]),
    (jline(SIX_VIA, [(SIX_VIA.index(c), SIX_VIA.index(c) + len(c), "VIA")
                     for c in ("Tulle", "Gap", "Digne", "Foix", "Auch", "Mende")]), [v.MANY_VIA]),
    (jline("je vais vers Rouen.", [(13, 19, "ARRIVEE")]), [v.UNTRIMMED]),
    (jline("je vais vers Évreux ", [(13, 20, "ARRIVEE")]), [v.OFF_BOUNDARY, v.UNTRIMMED]),
    (jline("de Vichy à Thiers", [(3, 8, "DEPART")], split="dev"), [v.BAD_SPLIT]),
    (jline("JE VAIS DE ROUEN À REIMS", [(11, 16, "ARRIVEE"), (19, 24, "DEPART")]), [v.CONFLICT]),
    ('{"text": "x\\u0001", "entities": [{"start": 0, "end": 9, "label": "FOO"}], "zzz": 1}',
     [v.EXTRA_FIELD, v.CONTROL_CHARS, v.OUT_OF_BOUNDS, v.UNKNOWN_LABEL]),
    ('{"text": "\\ud800 lone", "entities": []}', [v.CONTROL_CHARS]),
    (jline("de Gap à Die", [], meta={"note": "\x00"}), [v.CONTROL_CHARS]),
]
GOOD_CONLL = ["de\tO\nSaint-Étienne\tB-DEPART\nà\tO\nLe\tB-ARRIVEE\nHavre\tI-ARRIVEE",
              "train\tO\npour\tO\nAmiens\tB-ARRIVEE"] + [
    phrase_to_conll(parse_markup(m)).rstrip("\n") for m in (
        "je pars d'[Orléans|D] pour [La Rochelle|A] .", "[Metz|D] - [Lyon|A] par [Nancy|V]",
        "aller jusqu'à [Sables-d'Olonne|A] demain", "un billet [Paris Gare de Lyon|D] -> [Marseille|A] ?")]
BAD_CONLL = [
    ("de\tO\nParis\tI-DEPART", [v.MALFORMED_BIO]),
    ("de\tO\nParis\nà\tO\nLyon\tB-ARRIVEE", [v.COUNT_MISMATCH]),
    ("vers\tO\nParis.\tB-ARRIVEE", [v.RETOKENIZE]),
    ("vers\tO\nParis\tB-CITY", [v.UNKNOWN_LABEL]),
    ("vers\tO\tX\nParis\tB-ARRIVEE", [v.UNPARSEABLE]),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def matrix(request, tmp_path_factory):
    from dbfixtures import migrated_engine, new_store_url

    folder = tmp_path_factory.mktemp(f"matrix-{request.param}")
    eng = migrated_engine(new_store_url(request.param, folder, request))
    seed_file = tmp_path_factory.mktemp("seed") / "seed.jsonl"
    seed_file.write_text(SEED + "\n", encoding="utf-8")
    [seed] = ingest_source(str(seed_file), engine=eng)
    assert seed.status == "accepted" and seed.stored == 2
    good = good_lines(30)
    lines, expected = [], {}
    for i, g in enumerate(good):
        lines.append(g)
        if i < len(BAD_JSONL):
            lines.append(BAD_JSONL[i][0])
            expected[len(lines)] = BAD_JSONL[i][1]
    lines.append(good[4])  # an exact copy of an earlier good line
    expected[len(lines)] = [v.DUPLICATE_IN_BATCH]
    lines.append(jline("DE VICHY À MOULINS", [(3, 8, "DEPART"), (11, 18, "ARRIVEE")]))  # = a stored phrase
    (folder / "batch.jsonl").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    blocks, conll_expected, line = [], {}, 1
    for k in range(max(len(GOOD_CONLL), len(BAD_CONLL))):
        for block, reasons in ([(GOOD_CONLL[k], None)] if k < len(GOOD_CONLL) else []) + (
                [BAD_CONLL[k]] if k < len(BAD_CONLL) else []):
            blocks.append(block)
            if reasons:
                conll_expected[line] = reasons
            line += block.count("\n") + 2
    (folder / "batch.conll").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    reports = {Path(r.source).suffix: r for r in ingest_source(str(folder), engine=eng)}
    yield eng, reports, expected, conll_expected, good
    eng.dispose()


def test_matrix_reasons_exact(matrix):
    eng, reports, expected, conll_expected, _ = matrix
    assert len({tuple(r) for r in expected.values()} | {tuple(r) for r in conll_expected.values()}) >= 20
    jsonl = reports[".jsonl"]
    assert jsonl.status == "accepted"
    assert reasons_by_line(eng, jsonl.batch_id) == expected
    conll = reports[".conll"]
    assert conll.status == "accepted"
    assert reasons_by_line(eng, conll.batch_id) == conll_expected
    assert jsonl.reasons[v.DUPLICATE_IN_BATCH] == 1 and jsonl.reasons[v.CONTROL_CHARS] == 4


def test_matrix_nothing_dropped(matrix):
    eng, reports, expected, conll_expected, good = matrix
    jsonl, conll = reports[".jsonl"], reports[".conll"]
    assert jsonl.rows_read == len(good) + len(BAD_JSONL) + 2
    assert (jsonl.stored, jsonl.duplicates, jsonl.quarantined) == (30, 1, len(expected))
    assert conll.rows_read == len(GOOD_CONLL) + len(BAD_CONLL)
    assert (conll.stored, conll.duplicates, conll.quarantined) == (len(GOOD_CONLL), 0, len(BAD_CONLL))
    for r in reports.values():
        assert r.stored + r.duplicates + r.quarantined == r.rows_read
    assert count(eng, store.PhraseRow) == 2 + 30 + len(GOOD_CONLL)
    with eng.connect() as conn:
        texts = set(conn.scalars(sa.select(store.PhraseRow.text)))
    assert {json.loads(g)["text"] for g in good} <= texts
    assert {"de Saint-Étienne à Le Havre", "train pour Amiens"} <= texts
    stored = {p.text: p for p in store.load_split(eng, store.create_snapshot(eng).id, "train")
              + store.load_split(eng, store.create_snapshot(eng).id, "validation")
              + store.load_split(eng, store.create_snapshot(eng).id, "test")}
    assert stored["de Saint-Étienne à Le Havre"].spans_text() == [("DEPART", "Saint-Étienne"), ("ARRIVEE", "Le Havre")]


def test_matrix_batch_checks(matrix):
    _, reports, *_ = matrix
    checks = reports[".jsonl"].checks
    assert checks["label_distribution"]["batch"] == {"DEPART": 0.5, "ARRIVEE": 0.5, "VIA": 0.0}
    # The folder's CoNLL file went first: store = seed (2 D, 2 A) + CoNLL (4 D, 6 A, 1 V).
    assert checks["label_distribution"]["store"] == {"DEPART": 0.4, "ARRIVEE": 0.5333, "VIA": 0.0667}
    assert checks["label_distribution"]["max_shift"] == 0.1
    assert checks["duplicate_rate"] == round(2 / reports[".jsonl"].rows_read, 4)
    # 20 city names + Vichy/Moulins (the copy of a stored phrase); seen before: those two + Lyon, Metz (CoNLL).
    assert checks["unseen_places"] == 18
    assert checks["unseen_place_share"] == round(18 / 22, 4)


# ------------------------------------------------------------------------------------------------- fuzz


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["Saint-Étienne", "  L’Isle-Adam ", "ÉVREUX", "ﬁnistère", "İstanbul", "Ångström\u00a0x"]))
def test_fast_normalise_equals_normalise_text(text):
    assert fast_normalise(text) == normalise_text(text)


_line = st.one_of(
    st.text(max_size=60),
    st.sampled_from(good_lines(20)),
    st.builds(lambda t, s, e, lab: jline(t, [(s, e, lab)]), st.text(max_size=30), st.integers(-3, 40),
              st.integers(-3, 40), st.sampled_from(["DEPART", "ARRIVEE", "VIA", "X"])),
    st.dictionaries(st.sampled_from(["text", "entities", "split", "group", "meta", "x"]),
                    st.one_of(st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3)),
                    max_size=4).map(json.dumps),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_line, max_size=12), raw=st.binary(max_size=80), suffix=st.sampled_from([".jsonl", ".conll"]))
def test_fuzz_never_raises_and_accounts_for_every_row(sqlite_engine, tmp_path, lines, raw, suffix):
    for k, data in enumerate(["\n".join(lines).encode("utf-8", "surrogatepass"), raw]):
        path = tmp_path / f"fuzz-{uuid.uuid4().hex}-{k}{suffix}"
        path.write_bytes(data)
        before = count(sqlite_engine, store.PhraseRow)
        [report] = ingest_source(str(path), engine=sqlite_engine)
        assert report.stored + report.duplicates + report.quarantined == report.rows_read
        assert count(sqlite_engine, store.PhraseRow) - before == report.stored
        if report.status != "already_ingested":
            assert len(quarantine_rows(sqlite_engine, report.batch_id)[1]) == report.quarantined


# ------------------------------------------------------------------------------------ batch behaviours


def test_reingest_same_bytes_adds_nothing(engine, tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(good_lines(10)) + "\n", encoding="utf-8")
    [first] = ingest_source(str(path), engine=engine)
    [second] = ingest_source(str(path), engine=engine)
    assert (first.status, first.stored) == ("accepted", 10)
    assert (second.status, second.stored, second.batch_id) == ("already_ingested", 0, first.batch_id)
    assert "already ingested" in second.message
    assert count(engine, store.PhraseRow) == 10 and count(engine, store.Batch) == 1
    # Same phrases in new bytes: stored once, counted as duplicates.
    path.write_text("\n".join(good_lines(12)) + "\n", encoding="utf-8")
    [third] = ingest_source(str(path), engine=engine)
    assert (third.stored, third.duplicates, third.quarantined) == (2, 10, 0)


def test_held_batch_stores_nothing(sqlite_engine, tmp_path, monkeypatch):
    path = tmp_path / "held.jsonl"
    path.write_text("\n".join(good_lines(2) + ["nope", "{}", jline("")]) + "\n", encoding="utf-8")
    monkeypatch.setenv("TRAJET_MAX_BAD_RATIO", "0.5")
    [rep] = ingest_source(str(path), engine=sqlite_engine)
    assert rep.status == "held" and rep.failed
    assert (rep.stored, rep.quarantined, rep.rows_read) == (0, 5, 5)
    assert "60% > TRAJET_MAX_BAD_RATIO 50%" in rep.message
    assert count(sqlite_engine, store.PhraseRow) == 0
    assert reasons_by_line(sqlite_engine, rep.batch_id) == {
        1: [v.HELD], 2: [v.HELD], 3: [v.UNPARSEABLE], 4: [v.MISSING_FIELD], 5: [v.EMPTY_TEXT]}
    # The same bytes are looked at again (not "already ingested") once the threshold allows them.
    [again] = ingest_source(str(path), engine=sqlite_engine, max_bad_ratio=0.7)
    assert (again.status, again.stored, again.quarantined) == ("accepted", 2, 3)


def test_non_utf8_file_is_rejected_whole_and_exported_verbatim(sqlite_engine, tmp_path):
    data = (good_lines(1)[0] + "\n" + '{"text": "caf\xe9 \xe0 Lyon", "entities": []}\n').encode("latin-1")
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(data)
    [rep] = ingest_source(str(path), engine=sqlite_engine)
    assert rep.status == "rejected" and rep.failed
    assert (rep.rows_read, rep.stored, rep.quarantined) == (2, 0, 2)
    assert rep.reasons == {v.NOT_UTF8: 2}
    assert "not UTF-8 text (byte" in rep.message and "line 1" in rep.message
    assert export_quarantine(sqlite_engine, rep.batch_id) == data
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_bytes(data.decode("latin-1").encode("utf-8"))
    [ok] = ingest_source(str(fixed), engine=sqlite_engine)
    assert (ok.status, ok.stored) == ("accepted", 2)


def test_file_that_is_not_the_format_is_rejected(sqlite_engine, tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("dear diary\nthis is not JSON\n", encoding="utf-8")
    [rep] = ingest_source(str(path), engine=sqlite_engine)
    assert rep.status == "rejected" and "not a JSONL file" in rep.message
    assert reasons_by_line(sqlite_engine, rep.batch_id) == {1: [v.UNPARSEABLE, v.NOT_FORMAT],
                                                           2: [v.UNPARSEABLE, v.NOT_FORMAT]}
    conll = tmp_path / "notes.conll"
    conll.write_text("just words\nno tabs\n", encoding="utf-8")
    [rep2] = ingest_source(str(conll), engine=sqlite_engine)
    assert rep2.status == "rejected" and "not a CoNLL file" in rep2.message


def test_quarantine_export_fix_reingest(engine, tmp_path):
    bad = jline("de Metz à Nancy", [(3, 7, "DEPART"), (10, 40, "ARRIVEE")])
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(good_lines(5) + [bad]) + "\n", encoding="utf-8")
    [rep] = ingest_source(str(path), engine=engine)
    assert (rep.stored, rep.quarantined) == (5, 1)
    exported = export_quarantine(engine, rep.batch_id)
    assert exported == (bad + "\n").encode("utf-8")
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_bytes(exported.replace(b'"end": 40', b'"end": 15'))
    [again] = ingest_source(str(fixed), engine=engine)
    assert (again.status, again.stored, again.quarantined) == ("accepted", 1, 0)
    with engine.connect() as conn:
        ents = conn.scalar(sa.select(store.PhraseRow.entities).where(store.PhraseRow.text == "de Metz à Nancy"))
    assert ents == [{"start": 3, "end": 7, "label": "DEPART"}, {"start": 10, "end": 15, "label": "ARRIVEE"}]


def _text_with_hash_split(want):
    for i in range(1000):
        text = f"de Paris à Lyon numéro {i}"
        if store.hash_split(store.norm_hash(normalise_text(text))) == want:
            return text
    raise AssertionError


def test_split_rules(sqlite_engine, tmp_path):
    hash_test, hash_train = _text_with_hash_split("test"), _text_with_hash_split("train")
    ents = [(3, 8, "DEPART"), (11, 15, "ARRIVEE")]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join([jline(hash_test, ents, split="train"), jline(hash_train, ents),
                               jline("de Paris à Lyon sans split", ents, split="test")]) + "\n", encoding="utf-8")
    [rep] = ingest_source(str(path), engine=sqlite_engine)
    assert rep.stored == 3

    def split_of(text):
        with sqlite_engine.connect() as conn:
            return conn.scalar(sa.select(store.PhraseRow.split).where(store.PhraseRow.text == text))

    assert split_of(hash_test) == "train"  # explicit split wins over the hash
    assert split_of(hash_train) == "train"
    assert split_of("de Paris à Lyon sans split") == "test"
    # Fixed at first ingestion: a later file claiming another split changes nothing.
    later = tmp_path / "later.jsonl"
    later.write_text(jline(hash_test, ents, split="test") + "\n", encoding="utf-8")
    [rep2] = ingest_source(str(later), engine=sqlite_engine)
    assert (rep2.stored, rep2.duplicates) == (0, 1)
    assert split_of(hash_test) == "train"


def test_unreadable_sources(sqlite_engine, tmp_path):
    with pytest.raises(TrajetError, match="no such file, folder"):
        ingest_source(str(tmp_path / "missing.jsonl"), engine=sqlite_engine)
    assert ingest_source(str(tmp_path), engine=sqlite_engine) == []


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_exit_codes_and_quarantine(tmp_path):
    runner = CliRunner(env={"COLUMNS": "250"})
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(good_lines(4) + ["oops"]) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["ingest", str(good)])
    assert isinstance(res.exception, TrajetError) and "trajet db upgrade" in str(res.exception)
    assert runner.invoke(app, ["db", "current"]).exit_code == 1
    res = runner.invoke(app, ["db", "upgrade"])
    assert res.exit_code == 0 and "0003_watch_and_review" in res.output
    assert runner.invoke(app, ["db", "current"]).exit_code == 0
    res = runner.invoke(app, ["ingest", str(good)])
    assert res.exit_code == 0, res.output
    assert "accepted" in res.output and "unparseable line: 1" in res.output
    held = tmp_path / "held.jsonl"
    held.write_text("a\nb\n" + good_lines(1, offset=9)[0] + "\n", encoding="utf-8")
    res = runner.invoke(app, ["ingest", str(held)])
    assert res.exit_code == 1 and "held" in res.output
    res = runner.invoke(app, ["quarantine", "list"])
    assert res.exit_code == 0 and "held" in res.output
    res = runner.invoke(app, ["quarantine", "list", "2"])
    assert res.exit_code == 0 and "batch held" in res.output and "unparseable line" in res.output
    out = tmp_path / "q.jsonl"
    res = runner.invoke(app, ["quarantine", "export", "2", "-o", str(out)])
    assert res.exit_code == 0
    assert out.read_bytes() == held.read_bytes()
    res = runner.invoke(app, ["ingest", str(held), "--max-bad-ratio", "0.9"])
    assert res.exit_code == 0 and "accepted" in res.output
    res = runner.invoke(app, ["quarantine", "export", "99"])
    assert isinstance(res.exception, TrajetError)


def test_cli_errors_are_one_line_and_gx_is_not_imported(tmp_path):
    code = "import sys, trajet.cli; print('great_expectations' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    env = {**os.environ, "TRAJET_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    res = subprocess.run([sys.executable, "-m", "trajet", "ingest", str(tmp_path / "nope.jsonl")], cwd=REPO,
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert res.stderr.strip() == ("error: database schema is at nothing (empty database), code needs 0003_watch_and_review: "
                                  "run `trajet db upgrade`")
    store.upgrade(env["TRAJET_DATABASE_URL"])
    res = subprocess.run([sys.executable, "-m", "trajet", "ingest", str(tmp_path / "nope.jsonl")], cwd=REPO,
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert "no such file, folder or s3:// inbox" in res.stderr and "Traceback" not in res.stderr


# ------------------------------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_inbox_skips_ingested_objects(moto_endpoint, sqlite_engine, monkeypatch):
    import boto3

    for key, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    bucket = f"inbox-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/a.jsonl", Body="\n".join(good_lines(3)).encode())
    s3.put_object(Bucket=bucket, Key="in/b.conll", Body=GOOD_CONLL[0].encode())
    s3.put_object(Bucket=bucket, Key="in/readme.txt", Body=b"not data")
    s3.put_object(Bucket=bucket, Key="other/c.jsonl", Body="\n".join(good_lines(2, offset=5)).encode())
    reports = ingest_source(f"s3://{bucket}/in/", engine=sqlite_engine)
    assert [(r.source, r.status, r.stored) for r in reports] == [
        (f"s3://{bucket}/in/a.jsonl", "accepted", 3), (f"s3://{bucket}/in/b.conll", "accepted", 1)]
    s3.put_object(Bucket=bucket, Key="in/d.jsonl", Body="\n".join(good_lines(2, offset=7) + ["bad"]).encode())
    reports = ingest_source(f"s3://{bucket}/in/", engine=sqlite_engine)
    assert [r.status for r in reports] == ["already_ingested", "already_ingested", "accepted"]
    assert (reports[2].stored, reports[2].quarantined) == (2, 1)
    assert count(sqlite_engine, store.PhraseRow) == 6
    with pytest.raises(TrajetError, match="cannot list the inbox"):
        ingest_source("s3://no-such-bucket-here/x", engine=sqlite_engine)


def test_entities_json_is_json_dumps():
    import json

    from trajet.ingest_sql import entities_json

    spans = [{"start": 0, "end": 5, "label": "DEPART"}, {"start": 8, "end": 12, "label": "VIA"}]
    assert entities_json(spans) == json.dumps(spans)
    assert entities_json([]) == json.dumps([])


def test_rows_orjson_refuses_keep_the_json_module_reasons():
    """orjson parses the hot path; what it refuses (NaN, huge ints, lone surrogates) is read by json as before."""
    import orjson

    from trajet.parsers import parse_jsonl_row

    ok = '{"text": "de Paris à Lyon", "entities": [], "meta": {"score": NaN, "big": 123456789012345678901234567890}}'
    surrogate = '{"text": "de Paris \\ud800 à Lyon", "entities": []}'
    nul_meta = '{"text": "de Paris à Lyon", "entities": [], "meta": {"note": "a\\u0000b"}}'
    for line in (ok, surrogate):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(line)
    row = parse_jsonl_row(1, ok)
    assert row.text == "de Paris à Lyon" and not row.counts["unparseable"] and not row.counts["n_unencodable"]
    assert json.loads(row.extras_json)["meta"]["big"] == 123456789012345678901234567890
    assert parse_jsonl_row(2, surrogate).counts["n_unencodable"] == 1
    assert parse_jsonl_row(3, nul_meta).counts["n_unencodable"] == 1
    assert parse_jsonl_row(4, '{"text": "x", "entities": [}').counts["unparseable"] == 1
