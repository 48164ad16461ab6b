"""Parallel ingests of overlapping batches into one store (PostgreSQL and SQLite), in separate processes as two
workers or two `trajet ingest` would run: no phrase twice, no row lost, the same object stored once.

Every process checks its batch against the store, then waits at a barrier until all have, so every overlapping
phrase is really written by two of them at once (without it, the first batch usually commits before the others
look, and the race this file is about never happens)."""

from __future__ import annotations

import dataclasses
import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy as sa
from flow_data import phrase_rows, write_jsonl

from trajet import store, validate
from trajet.ingest import _normalise_surface

pytest_plugins = ["dbfixtures"]

pytestmark = pytest.mark.slow


def _ingest_after_barrier(url: str, path: str, barrier, results) -> None:
    """Child process: ingest `path`, holding the write back until every child has checked the store."""
    from trajet import ingest, ingest_sql

    original = ingest_sql.stored_annotations
    waited = []

    def gated(engine, hashes):
        found = original(engine, hashes)
        if not waited:
            waited.append(True)
            barrier.wait(timeout=120)
        return found

    ingest_sql.stored_annotations = gated
    engine = store.get_engine(url)
    try:
        results.put((path, [dataclasses.asdict(r) for r in ingest.ingest_source(path, engine=engine)]))
    except Exception as exc:  # reported to the test, which fails on it
        results.put((path, repr(exc)))
        barrier.abort()
    finally:
        engine.dispose()


def _run_parallel(url: str, paths: list[str]) -> dict[str, list[dict]]:
    ctx = multiprocessing.get_context("spawn")  # no inherited database connections
    barrier, results = ctx.Barrier(len(paths)), ctx.Queue()
    procs = [ctx.Process(target=_ingest_after_barrier, args=(url, p, barrier, results)) for p in paths]
    for proc in procs:
        proc.start()
    out = dict(results.get(timeout=300) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    failed = {p: r for p, r in out.items() if isinstance(r, str)}
    assert not failed, failed
    return out


def _overlapping_batches(folder: Path) -> tuple[dict[str, str], list[dict], dict]:
    """A = rows 0-299; B = rows 150-449 in reverse order, one of them annotated otherwise; C = rows 300-599;
    D = A's bytes again."""
    rows = phrase_rows(600, seed=21, split="train")
    i = next(k for k in range(150, 300) if len(rows[k]["entities"]) >= 2)
    variant = {**rows[i], "entities": rows[i]["entities"][:1]}  # same text, a different annotation
    b_rows = [variant if k == i else rows[k] for k in range(449, 149, -1)]
    paths = {"A": write_jsonl(folder / "a.jsonl", rows[:300]), "B": write_jsonl(folder / "b.jsonl", b_rows),
             "C": write_jsonl(folder / "c.jsonl", rows[300:])}
    paths["D"] = str(folder / "d.jsonl")
    Path(paths["D"]).write_bytes(Path(paths["A"]).read_bytes())
    return paths, rows, variant


def test_parallel_overlapping_ingests_store_each_phrase_once_and_count_every_row(db_url, tmp_path):
    engine = store.get_engine(db_url)
    store.upgrade(engine=engine)
    paths, rows, variant = _overlapping_batches(tmp_path)
    out = _run_parallel(db_url, list(paths.values()))
    reports = {name: out[path][0] for name, path in paths.items()}

    # the same object twice: stored once, the other run says so
    assert sorted(reports[n]["status"] for n in "AD") == ["accepted", "already_ingested"]
    first = next(reports[n] for n in "AD" if reports[n]["status"] == "accepted")
    assert all(reports[n]["status"] == "accepted" for n in "BC")
    accepted = [first, reports["B"], reports["C"]]
    # every row accounted for: stored, a duplicate of a stored phrase, or quarantined (the conflicting variant)
    for r in accepted:
        assert r["stored"] + r["duplicates"] + r["quarantined"] == r["rows_read"] == 300, r
    assert sum(r["stored"] for r in accepted) == 600
    assert sum(r["quarantined"] for r in accepted) == 1
    assert sum(r["reasons"].get(validate.CONFLICT, 0) for r in accepted) == 1
    assert sum(r["duplicates"] for r in accepted) == 900 - 600 - 1

    with engine.connect() as conn:
        P = store.PhraseRow
        assert conn.scalar(sa.select(sa.func.count()).select_from(P)) == 600
        assert conn.scalar(sa.select(sa.func.count(sa.distinct(P.norm_hash)))) == 600
        texts = set(conn.scalars(sa.select(P.text)))
        assert texts == {r["text"] for r in rows}
        batches = conn.execute(sa.select(store.Batch.sha256, store.Batch.status)).all()
        assert len(batches) == 3 and {s for _, s in batches} == {"accepted"}  # one row per accepted object
        stored = conn.execute(sa.select(P.text, P.entities)).all()
        places = set(conn.scalars(sa.select(store.PlaceName.name)))
    assert places == {_normalise_surface(t[e["start"]:e["end"]]) for t, ents in stored for e in ents}
    # whichever annotation of the disputed phrase won is the one stored; the other was quarantined
    winner = next(ents for t, ents in stored if t == variant["text"])
    assert len(winner) in (1, len([r for r in rows if r["text"] == variant["text"]][0]["entities"]))
    engine.dispose()
