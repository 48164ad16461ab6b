"""The annotation audit (trajet.audit) with a real tiny model on the kinds of phrase it learned: each kind of
annotator slip is found with its kind, a clean batch queues nothing, the policies hold what they say, the audit
is idempotent per champion version, and snapshots leave held rows out until a person decides.

The slips come from bench/audit_noise.py's injector (the one the measurement uses), so its rows are checked here
too: every noisy row is still one ingestion stores whole.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.train_fixtures import make_phrases, trained_sure
from trajet import store
from trajet.audit import AuditConfig, audit_batch, audit_rows, compare
from trajet.config import REPO_ROOT
from trajet.errors import TrajetError
from trajet.feedback import ReviewItem
from trajet.ingest import ingest_source
from trajet.labels import LABELS
from trajet.phrases import Entity, Phrase, tokenize, write_jsonl
from trajet.predict import Predictor
from trajet.review import entries, export_rows
from trajet.review_accept import accept_file
from trajet.suggest import write_rows
from trajet.tags import spans_to_tags

pytest_plugins = ["dbfixtures"]


def _load_bench():
    spec = importlib.util.spec_from_file_location("audit_noise_bench", REPO_ROOT / "bench" / "audit_noise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


noise = _load_bench()


@pytest.fixture(scope="session")
def sure(tmp_path_factory):
    return trained_sure(tmp_path_factory.mktemp("sure"))


@pytest.fixture(scope="module")
def predictor(sure):
    return Predictor.load(sure["model"])


def unique(phrases: list[Phrase]) -> list[Phrase]:
    """One phrase per text (the templates repeat a few): ingestion would quarantine the copies."""
    seen: dict[str, Phrase] = {}
    for p in phrases:
        seen.setdefault(p.text, p)
    return list(seen.values())


def clean_batch() -> list[Phrase]:
    """Requests of the learned templates that the model never saw."""
    return unique(make_phrases(150, seed=5))


def noisy_batch(seed: int = 3) -> list[tuple[Phrase, str | None]]:
    """`clean_batch()` in the same order, a tenth of it with one slip: (phrase, the slip's kind or None)."""
    return noise.inject(clean_batch(), 0.1, seed)


def ingest(engine, path: Path, phrases: list[Phrase]) -> int:
    write_jsonl(path, phrases)
    [report] = ingest_source(str(path), engine=engine)
    assert (report.status, report.stored, report.quarantined) == ("accepted", len(phrases), 0), report.reasons
    return report.batch_id


def queued(engine) -> dict[str, ReviewItem]:
    with store.session(engine) as s:
        rows = s.execute(sa.select(store.PhraseRow.text, ReviewItem)
                         .join(ReviewItem, ReviewItem.phrase_id == store.PhraseRow.id)).all()
    return {text: item for text, item in rows}


# ------------------------------------------------------------------------------------------- findings


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_each_kind_of_slip_is_found_with_its_kind(predictor, sure, kind):
    known = unique(sure["train"])
    clean = audit_rows(predictor, [(p.text, p.entities) for p in known])
    assert max(r.confidence for r in clean) < AuditConfig().min_confidence  # it agrees with what it learned
    cases = [(p, v) for p in known for v in noise.noisy_versions(p, kind)]
    assert len(cases) >= 20
    results = audit_rows(predictor, [(p.text, v) for p, v in cases])
    flagged = [(p, v, r) for (p, v), r in zip(cases, results, strict=True) if AuditConfig().queued(r.confidence)]
    assert len(flagged) >= 0.9 * len(cases)
    for p, slip, r in flagged:
        assert r.reason == noise.EXPECTED_REASON[kind]
        top = r.findings[0]
        # both versions, as spans of this text: the slip on the annotated side, the learned one on the model's
        assert {(s["start"], s["end"], s["label"]) for s in top.annotated} <= {(e.start, e.end, e.label) for e in slip}
        assert {(s["start"], s["end"], s["label"]) for s in top.model} <= {(e.start, e.end, e.label) for e in p.entities}
        assert all(p.text[s["start"]:s["end"]] == s["text"] for s in top.annotated + top.model)


def test_a_place_the_model_reads_as_no_trip_is_an_unlikely_span(predictor, sure):
    weather = [p for p in unique(sure["train"]) if not p.entities]
    rows = []
    for p in weather:
        town = next(t for t in tokenize(p.text)[1:] if t.text[0].isupper())  # "Il fait beau à [Metz] ..."
        rows.append((p.text, [Entity(town.start, town.end, "ARRIVEE")]))
    results = audit_rows(predictor, rows)
    assert len(rows) >= 10 and all(r.reason == "unlikely_span" and r.confidence >= 0.9 for r in results)
    assert all(r.findings[0].model == [] and r.model_entities == [] for r in results)


def test_confidence_is_read_from_the_models_distributions(predictor):
    text = "Je veux aller de Paris à Lyon"
    tokens = tokenize(text)
    swapped = [Entity(17, 22, "ARRIVEE"), Entity(25, 29, "DEPART")]
    [tagged] = predictor.tag_words([text])
    result = compare(text, swapped, tagged)
    gold = spans_to_tags(text, tokens, swapped)
    assert [f.kind for f in result.findings] == ["role_swap", "role_swap"]
    for f in result.findings:
        [word] = [k for k, t in enumerate(tokens) if t.start == f.annotated[0]["start"]]
        assert f.wrong == pytest.approx(1 - tagged.label_probs[word][LABELS.index(gold[word])])
        others = [tagged.probs[k] for k in range(len(tokens)) if k != word]
        assert f.sure == pytest.approx(min(others)) and f.confidence == pytest.approx(f.wrong * f.sure)
    assert result.model_entities == predictor.predict([text])[0]["entities"]


# ---------------------------------------------------------------------------------------------- batches


def test_a_clean_batch_queues_nothing(engine, predictor, tmp_path):
    phrases = clean_batch()
    batch = ingest(engine, tmp_path / "clean.jsonl", phrases)
    report = audit_batch(engine, batch, predictor, champion_version="v1")
    assert (report.phrases, report.audited, report.skipped) == (len(phrases), len(phrases), 0)
    assert (report.items, report.held) == (0, 0) and queued(engine) == {}


def test_a_noisy_batch_is_queued_with_both_versions(engine, predictor, tmp_path):
    batch_rows = noisy_batch()
    kind_of = {p.text: k for p, k in batch_rows}
    injected = {t for t, k in kind_of.items() if k}
    assert len(injected) == round(0.1 * len(batch_rows)) and set(kind_of.values()) >= set(noise.NOISE_KINDS)
    batch = ingest(engine, tmp_path / "noisy.jsonl", [p for p, _ in batch_rows])
    report = audit_batch(engine, batch, predictor, champion_version="v1")
    items = queued(engine)
    assert report.items == len(items) and report.held == sum(i.held for i in items.values())
    assert set(items) <= injected  # no clean row queued
    assert len(items) >= 0.8 * len(injected)
    stored = {p.text: p for p, _ in batch_rows}
    for text, item in items.items():
        assert item.reason == noise.EXPECTED_REASON[kind_of[text]] and item.status == "open"
        assert item.champion_version == "v1" and item.batch_id == batch
        assert item.held == (item.confidence >= AuditConfig().hold_confidence)
        assert item.annotation == [e.to_dict() for e in stored[text].entities]  # the annotation as stored
        assert [(e["start"], e["end"], e["label"]) for e in item.model_entities] == [
            (e["start"], e["end"], e["label"]) for e in predictor.predict([text])[0]["entities"]]
        assert item.confidence == pytest.approx(item.findings[0]["confidence"], abs=1e-4)
    # a queued phrase is not queued again, by this champion or the next; the others are read again, to no effect
    for version in ("v1", "v2"):
        again = audit_batch(engine, batch, predictor, champion_version=version)
        assert (again.audited, again.skipped, again.items) == (len(batch_rows) - len(items), len(items), 0)
    assert len(queued(engine)) == len(items)


@pytest.mark.parametrize(("policy", "hold"), [("train", None), ("hold_all", None), ("hold_confident", 0.995),
                                              ("hold_confident", None)])
def test_policies_decide_what_is_held(sqlite_engine, predictor, tmp_path, policy, hold):
    batch = ingest(sqlite_engine, tmp_path / "noisy.jsonl", [p for p, _ in noisy_batch()])
    config = AuditConfig.from_env({}, policy=policy, hold_confidence=hold)
    report = audit_batch(sqlite_engine, batch, predictor, champion_version="v1", config=config)
    items = list(queued(sqlite_engine).values())
    assert report.items == len(items) >= 10
    expected = {"train": 0, "hold_all": len(items)}.get(
        policy, sum(i.confidence >= config.hold_confidence for i in items))
    assert report.held == sum(i.held for i in items) == expected


def test_held_rows_stay_out_of_snapshots_until_decided(engine, predictor, tmp_path):
    batch_rows = noisy_batch()
    batch = ingest(engine, tmp_path / "noisy.jsonl", [p for p, _ in batch_rows])
    before = store.create_snapshot(engine)
    assert sum(before.counts.values()) == len(batch_rows)
    audit_batch(engine, batch, predictor, champion_version="v1", config=AuditConfig(policy="hold_all"))
    held = entries(engine)
    assert held and all(e.item.held for e in held)
    snap = store.create_snapshot(engine)
    assert sum(snap.counts.values()) == len(batch_rows) - len(held) and snap.content_hash != before.content_hash
    with engine.connect() as conn:
        in_snap = set(conn.scalars(sa.select(store.SnapshotPhrase.phrase_id)
                                   .where(store.SnapshotPhrase.snapshot_id == snap.id)))
    assert not in_snap & {e.phrase.id for e in held}
    # a person keeps the first annotation as it is: that phrase is back, the others still out
    path = tmp_path / "review.jsonl"
    write_rows(path, export_rows(held[:1]))
    report = accept_file(engine, path)
    assert (report.accepted, report.corrected, report.released, report.problems) == (1, 0, 1, [])
    after = store.create_snapshot(engine)
    assert sum(after.counts.values()) == len(batch_rows) - len(held) + 1
    with engine.connect() as conn:
        assert held[0].phrase.id in set(conn.scalars(sa.select(store.SnapshotPhrase.phrase_id)
                                                     .where(store.SnapshotPhrase.snapshot_id == after.id)))
    # the train policy queues without holding: snapshots keep every row
    stored = {p.text for p, _ in batch_rows}
    more = [p for p, _ in noise.inject(unique(make_phrases(80, seed=6)), 0.2, 1) if p.text not in stored]
    other = ingest(engine, tmp_path / "more.jsonl", more)
    report = audit_batch(engine, other, predictor, champion_version="v1", config=AuditConfig(policy="train"))
    assert report.items > 0 and report.held == 0
    assert sum(store.create_snapshot(engine).counts.values()) == sum(after.counts.values()) + len(more)


# ------------------------------------------------------------------------------------------------ config


def test_config_from_the_environment_and_its_errors():
    env = {"TRAJET_AUDIT_POLICY": "hold_all", "TRAJET_AUDIT_MIN_CONFIDENCE": "0.8"}
    assert AuditConfig.from_env(env) == AuditConfig(policy="hold_all", min_confidence=0.8)
    assert AuditConfig.from_env(env, policy="train").policy == "train"  # an explicit setting wins
    assert AuditConfig() == AuditConfig.from_env({}) and AuditConfig().policy == "hold_confident"
    with pytest.raises(TrajetError, match=r"^audit policy 'keep': expected one of train, hold_confident, hold_all$"):
        AuditConfig.from_env({"TRAJET_AUDIT_POLICY": "keep"})
    with pytest.raises(TrajetError, match=r"^TRAJET_AUDIT_HOLD_CONFIDENCE='high': not a number$"):
        AuditConfig.from_env({"TRAJET_AUDIT_HOLD_CONFIDENCE": "high"})
    with pytest.raises(TrajetError, match=r"^audit setting min_confidence=1.5: expected a number between 0 and 1$"):
        AuditConfig(min_confidence=1.5)


def test_unknown_batch_is_one_line(sqlite_engine, predictor):
    with pytest.raises(TrajetError, match=r"^no batch 42 \(see"):
        audit_batch(sqlite_engine, 42, predictor, champion_version="v1")


# ------------------------------------------------------------------------------------------------- bench


def test_bench_measures_the_audit_end_to_end(sure, tmp_path):
    source = tmp_path / "batch.jsonl"
    phrases = clean_batch()
    write_jsonl(source, phrases)
    result = noise.run(sure["model"], [source], rate=0.1, seed=3, overrides={},
                       write_noisy=tmp_path / "noisy.jsonl", write_kept=tmp_path / "kept.jsonl")
    injected = round(0.1 * len(phrases))
    assert (result["rows"], result["injected"], result["clean"]) == (len(phrases), injected, len(phrases) - injected)
    assert sum(k["injected"] for k in result["per_kind"].values()) == injected
    assert result["queued"]["recall"] >= 0.8 and result["queued"]["false_alarm_rate"] == 0.0
    assert result["config"] == AuditConfig().to_dict()
    assert result["sweep"]["0.9"]["flagged"] == result["queued"]["flagged"]
    noisy = (tmp_path / "noisy.jsonl").read_text(encoding="utf-8").splitlines()
    kept = (tmp_path / "kept.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(noisy) == len(phrases) and len(kept) == len(phrases) - result["held"]["flagged"]
