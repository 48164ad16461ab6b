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
# pg_advisory_xact_lock's first key ("traj"): the batch-sha locks of ingestion, apart from anyone else's locks
_LOCK_SPACE = 0x7472616A


class StoreRaced(Exception):
    """Another ingestion stored some of this batch's phrases first (or the database broke a deadlock between
    the two): the transaction was rolled back and the batch must be checked against the store again."""


class AlreadyIngested(Exception):
    """The same bytes were accepted by a concurrent ingestion while this one validated them."""

    def __init__(self, batch_id: int) -> None:
        super().__init__(batch_id)
        self.batch_id = batch_id

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
            conn.execute(insert_ignoring(conn, store.PhraseRow.__table__, ["norm_hash"]),
                         [{**{k: v for k, v in p.items() if k != "meta_json"}, "batch_id": batch_id} for p in part])
        return
    quote = dialect.identifier_preparer.quote
    # ON CONFLICT DO NOTHING: a phrase a concurrent ingestion committed first is skipped, not an error; the
    # caller counts what landed (`write_batch`) and checks the batch again when something did not.
    sql = (f"INSERT INTO {quote('phrases')} ({', '.join(quote(c) for c in _PHRASE_COLUMNS)}) "
           f"VALUES ({', '.join([mark] * len(_PHRASE_COLUMNS))}) ON CONFLICT ({quote('norm_hash')}) DO NOTHING")
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


def insert_ignoring(conn: sa.Connection, table: sa.Table, keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING where the dialect has it (PostgreSQL, SQLite); elsewhere a
    plain INSERT, whose conflict is an IntegrityError that ingestion retries like a lost race."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return sa.insert(table)
    return insert(table).on_conflict_do_nothing(index_elements=keys)


def write_batch(engine: Engine, batch: dict[str, Any], phrases: list[dict[str, Any]],
                quarantine: list[dict[str, Any]], new_places: set[str]) -> int:
    """One transaction per batch: the batch row (`batch`: store.Batch's columns), its phrases, its quarantine
    and new place names. Returns the batch id.

    Safe beside concurrent ingestions: an accepted batch whose bytes another ingestion accepted meanwhile
    raises AlreadyIngested; a phrase another one stored first, or a deadlock between two of them, rolls the
    whole batch back and raises StoreRaced, so the caller checks it against the store again (that phrase is
    then a duplicate, or a conflict, exactly as if the two had run one after the other)."""
    try:
        with store.session(engine) as s:
            row = store.Batch(**batch)
            s.add(row)
            s.flush()  # first a write: on SQLite the transaction holds the write lock from here on
            if batch["status"] == "accepted":
                _refuse_accepted_twice(s.connection(), batch["sha256"], row.id)
            insert_phrases(s.connection(), phrases, row.id)
            if phrases:
                landed = s.scalar(sa.select(sa.func.count()).select_from(store.PhraseRow)
                                  .where(store.PhraseRow.batch_id == row.id))
                if landed != len(phrases):
                    raise StoreRaced(f"{len(phrases) - (landed or 0)} phrase(s) stored by another ingestion first")
            for part in chunks(quarantine, INSERT_CHUNK):
                s.execute(sa.insert(store.QuarantinedRow.__table__), [{**q, "batch_id": row.id} for q in part])
            places = sorted(n for n in new_places if len(n) <= 512)
            for part in chunks(places, INSERT_CHUNK):
                s.execute(insert_ignoring(s.connection(), store.PlaceName.__table__, ["name"]),
                          [{"name": n} for n in part])
            return row.id
    except sa.exc.IntegrityError as exc:
        if _is_unique_violation(exc):  # a dialect without ON CONFLICT lost a race
            raise StoreRaced(str(exc.orig)) from None
        raise TrajetError(f"{batch['source']}: the store changed during ingestion ({exc.orig}); run it again") from None
    except sa.exc.OperationalError as exc:
        if _is_lock_conflict(exc):
            raise StoreRaced(" ".join(str(exc.orig).split())) from None
        raise


def _refuse_accepted_twice(conn: sa.Connection, sha: str, batch_id: int) -> None:
    """Raise AlreadyIngested when another accepted batch has these bytes. PostgreSQL: an advisory lock on the
    sha, held to commit, makes the check and the write one step; SQLite: the write lock taken by the batch
    row already does."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:space, :key)"),
                     {"space": _LOCK_SPACE, "key": int(sha[:7], 16)})
    other = conn.scalar(select(store.Batch.id).where(store.Batch.sha256 == sha, store.Batch.status == "accepted",
                                                     store.Batch.id != batch_id).limit(1))
    if other is not None:
        raise AlreadyIngested(other)


def _is_unique_violation(exc: sa.exc.DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code == "23505" or "UNIQUE constraint failed" in str(exc.orig)


def _is_lock_conflict(exc: sa.exc.DBAPIError) -> bool:
    """A deadlock PostgreSQL broke by aborting us, or SQLite's busy timeout: both pass on a second try."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in ("40P01", "40001") or "database is locked" in str(exc.orig)


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
