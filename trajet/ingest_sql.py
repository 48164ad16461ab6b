"""The SQL side of ingestion: what a batch asks the store, and the one transaction that writes it.

Kept apart from the pipeline (trajet.ingest) so the queries and the fast insert path can be read, and
tuned for PostgreSQL or SQLite, without the validation logic around them. Functions here take and return
plain values; deciding what a row is (stored, duplicate, quarantined) stays in the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.engine import Engine

from trajet import store
from trajet.errors import TrajetError
from trajet.parsers import Row

CHUNK = 2000  # values per IN (...) query: under every driver's parameter limit
INSERT_CHUNK = 10_000  # rows per executemany

Annotation = tuple[str, list[tuple[int, int, str]]]  # (text, [(start, end, label)])


def chunks(seq: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def accepted_batch(engine: Engine, sha: str) -> int | None:
    """The id of an accepted batch with these exact bytes, if any."""
    with engine.connect() as conn:
        return conn.scalar(
            select(store.Batch.id).where(store.Batch.sha256 == sha, store.Batch.status == "accepted").limit(1)
        )


def stored_annotations(engine: Engine, hashes: Sequence[str]) -> dict[str, Annotation]:
    """Text and spans of the stored phrases with these normalised-text hashes."""
    found: dict[str, Annotation] = {}
    P = store.PhraseRow
    with engine.connect() as conn:
        for part in chunks(sorted(set(hashes))):
            for nh, text, ents in conn.execute(select(P.norm_hash, P.text, P.entities).where(P.norm_hash.in_(part))):
                found[nh] = (text, [(e["start"], e["end"], e["label"]) for e in ents])
    return found


def known_places(engine: Engine, names: Iterable[str]) -> set[str]:
    """Those of `names` (normalised place surfaces) the store has seen before."""
    known: set[str] = set()
    with engine.connect() as conn:
        for part in chunks(sorted(set(names))):
            known.update(conn.scalars(select(store.PlaceName.name).where(store.PlaceName.name.in_(part))))
    return known


def store_label_counts(engine: Engine) -> dict[str, int]:
    """Entities per type over every stored phrase (kept per row, so this is one aggregate query)."""
    P = store.PhraseRow
    with engine.connect() as conn:
        dep, arr, via = conn.execute(
            select(sa.func.coalesce(sa.func.sum(P.n_depart), 0), sa.func.coalesce(sa.func.sum(P.n_arrivee), 0),
                   sa.func.coalesce(sa.func.sum(P.n_via), 0))
        ).one()
    return {"DEPART": int(dep), "ARRIVEE": int(arr), "VIA": int(via)}


def phrase_record(row: Row, nhash: str) -> dict[str, Any]:
    """The phrases-table values of a row. Split fixed now, once: an explicit train/test wins, else the
    normalised-text hash decides."""
    split = row.split if row.split in ("train", "test") else store.hash_split(nhash)
    return {
        "text": row.text,
        "norm_hash": nhash,
        "entities": [{"start": s, "end": e, "label": label} for s, e, label in sorted(row.entities)],
        "split": split,
        "is_validation": split == "train" and store.hash_is_validation(nhash),
        "group": row.group[:100] if row.group else None,
        "meta": row.extras,
        "meta_json": row.extras_json,
        "n_depart": row.counts.get("n_depart", 0),
        "n_arrivee": row.counts.get("n_arrivee", 0),
        "n_via": row.counts.get("n_via", 0),
    }


_PHRASE_COLUMNS = ("text", "norm_hash", "entities", "split", "is_validation", "group", "meta", "n_depart",
                   "n_arrivee", "n_via", "batch_id")


def insert_phrases(conn: sa.Connection, phrases: list[dict[str, Any]], batch_id: int) -> None:
    """Driver-level executemany with JSON serialised here: per-row ORM/Core parameter processing was the
    largest cost of a 100k-phrase batch, and the rows are plain values already checked by the suite."""
    if not phrases:
        return
    dialect = conn.dialect
    mark = {"qmark": "?", "numeric": None, "named": None}.get(dialect.paramstyle, "%s")
    if mark is None:  # a driver with another style: let SQLAlchemy bind
        for part in chunks(phrases, INSERT_CHUNK):
            conn.execute(sa.insert(store.PhraseRow.__table__),
                         [{**{k: v for k, v in p.items() if k != "meta_json"}, "batch_id": batch_id} for p in part])
        return
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote('phrases')} ({', '.join(quote(c) for c in _PHRASE_COLUMNS)}) "
           f"VALUES ({', '.join([mark] * len(_PHRASE_COLUMNS))})")
    for part in chunks(phrases, INSERT_CHUNK):
        conn.exec_driver_sql(sql, [(p["text"], p["norm_hash"], entities_json(p["entities"]), p["split"],
                                    p["is_validation"], p["group"], p["meta_json"], p["n_depart"], p["n_arrivee"],
                                    p["n_via"], batch_id)
                                   for p in part])


def entities_json(entities: list[dict[str, Any]]) -> str:
    """json.dumps's exact output for validated spans (int offsets, a known label), without its per-call cost."""
    return "[" + ", ".join(
        f'{{"start": {e["start"]}, "end": {e["end"]}, "label": "{e["label"]}"}}' for e in entities
    ) + "]"


def write_batch(engine: Engine, batch: dict[str, Any], phrases: list[dict[str, Any]],
                quarantine: list[dict[str, Any]], new_places: set[str]) -> int:
    """One transaction per batch: the batch row (`batch`: store.Batch's columns), its phrases, its quarantine
    and new place names. Returns the batch id."""
    try:
        with store.session(engine) as s:
            row = store.Batch(**batch)
            s.add(row)
            s.flush()
            insert_phrases(s.connection(), phrases, row.id)
            for part in chunks(quarantine, INSERT_CHUNK):
                s.execute(sa.insert(store.QuarantinedRow.__table__), [{**q, "batch_id": row.id} for q in part])
            places = sorted(n for n in new_places if len(n) <= 512)
            for part in chunks(places, INSERT_CHUNK):
                s.execute(sa.insert(store.PlaceName.__table__), [{"name": n} for n in part])
            return row.id
    except sa.exc.IntegrityError as exc:
        raise TrajetError(f"{batch['source']}: the store changed during ingestion ({exc.orig}); run it again") from None


def quarantine_rows(engine: Engine, batch_id: int) -> tuple[store.Batch, list[store.QuarantinedRow]]:
    """A batch and its quarantined rows in file order."""
    store.ensure_schema(engine)
    with store.session(engine) as s:
        batch = s.get(store.Batch, batch_id)
        if batch is None:
            raise TrajetError(f"no batch {batch_id} (see `trajet quarantine list`)")
        rows = list(s.scalars(select(store.QuarantinedRow).where(store.QuarantinedRow.batch_id == batch_id)
                              .order_by(store.QuarantinedRow.line, store.QuarantinedRow.id)))
        return batch, rows
