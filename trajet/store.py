"""The SQL store: batches, phrases, quarantined rows and dataset snapshots (SQLite or PostgreSQL).

The schema is owned by Alembic migrations shipped in `trajet/migrations/`; the ORM below mirrors them and a
test checks the two never drift. Code refuses to run on a database whose schema is not at the head revision,
because a half-migrated store silently corrupts splits and snapshots.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, Index, String, Text, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from trajet import config
from trajet.errors import TrajetError
from trajet.phrases import Entity, Phrase

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SPLITS = ("train", "validation", "test")
SQLITE_BUSY_TIMEOUT_S = 60.0
SNAPSHOT_CHUNK = 10_000  # rows per fetch and per insert when a snapshot is taken (~30 MB of rows)


class Base(DeclarativeBase):
    """Declarative base shared by every table; later migrations (runs, model versions) extend it."""

    type_annotation_map = {dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


def _now() -> datetime:
    return datetime.now(UTC)


class Batch(Base):
    """One ingested file or S3 object; its sha256 makes re-ingesting the same bytes a no-op."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    status: Mapped[str] = mapped_column(String(20))
    rows_read: Mapped[int] = mapped_column(default=0)
    stored: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    quarantined: Mapped[int] = mapped_column(default=0)
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message: Mapped[str] = mapped_column(Text, default="")


class PhraseRow(Base):
    """A stored phrase. Split and validation membership are fixed here at first ingestion, never recomputed."""

    __tablename__ = "phrases"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    norm_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entities: Mapped[list[Any]] = mapped_column()
    split: Mapped[str] = mapped_column(String(10))
    is_validation: Mapped[bool] = mapped_column(default=False)
    group: Mapped[str | None] = mapped_column(String(100))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    n_depart: Mapped[int] = mapped_column(default=0)
    n_arrivee: Mapped[int] = mapped_column(default=0)
    n_via: Mapped[int] = mapped_column(default=0)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)


class QuarantinedRow(Base):
    """A rejected row kept byte for byte (bytes: a non-UTF-8 or NUL-bearing line must survive verbatim)."""

    __tablename__ = "quarantined_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    line: Mapped[int] = mapped_column()
    raw: Mapped[bytes] = mapped_column(sa.LargeBinary)
    reasons: Mapped[list[Any]] = mapped_column()


class PlaceName(Base):
    """Normalised entity surfaces seen so far, for the batch check 'share of never-seen place names'."""

    __tablename__ = "place_names"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)


class Snapshot(Base):
    """A frozen dataset: which phrases a training run saw, identified by a hash of their content."""

    __tablename__ = "dataset_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SnapshotPhrase(Base):
    __tablename__ = "snapshot_phrases"

    snapshot_id: Mapped[int] = mapped_column(ForeignKey("dataset_snapshots.id"), primary_key=True)
    phrase_id: Mapped[int] = mapped_column(ForeignKey("phrases.id"), primary_key=True)


Index("ix_snapshot_phrases_phrase_id", SnapshotPhrase.phrase_id)


# ----------------------------------------------------------------------------------------- engine + schema


def get_engine(url: str | None = None) -> Engine:
    """Engine for `url` (default: config.database_url()); creates the SQLite file's folder first."""
    url = url or config.database_url()
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise TrajetError("TRAJET_DATABASE_URL is not a database URL (expected e.g. "
                          "postgresql+psycopg://user@host:5432/trajet or sqlite:////path/trajet.db)") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # SQLite lets one writer in at a time: parallel ingests wait for each other's batch (seconds), not 5 s and fail
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S} if parsed.get_backend_name() == "sqlite" else {}
    try:
        engine = sa.create_engine(url, connect_args=connect_args)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise TrajetError(f"cannot use the database {parsed.render_as_string(hide_password=True)}: no driver for "
                          f"{parsed.drivername} here ({exc}); Trajet supports sqlite and postgresql+psycopg") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The revision this code needs (the head of the shipped migrations)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = ScriptDirectory.from_config(cfg).get_heads()
    if len(heads) != 1:
        raise TrajetError(f"the shipped migrations have {len(heads)} heads ({', '.join(heads)}): merge them")
    return heads[0]


def masked_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def connect(engine: Engine) -> sa.Connection:
    """A connection, or one line naming the database (password masked) and the driver's reason: an
    unreachable database is an operator's problem to fix, not a traceback to read."""
    try:
        return engine.connect()
    except sa.exc.DBAPIError as exc:
        reason = " ".join(str(exc.orig or exc).split())
        raise TrajetError(f"cannot connect to the database {masked_url(engine)}: {reason}") from None


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with connect(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str | None = None, *, engine: Engine | None = None) -> None:
    """Run the shipped migrations to head (`trajet db upgrade`)."""
    from alembic import command

    engine = engine or get_engine(url)
    with connect(engine) as conn, conn.begin():
        command.upgrade(_alembic_config(conn), "head")


_run_upgrade = upgrade  # open_store's `upgrade` flag shadows the function name inside it


def ensure_schema(engine: Engine) -> None:
    """Refuse to work on a schema older or newer than this code expects."""
    need = head_revision()
    try:
        have = current_revision(engine)
    except sa.exc.OperationalError as exc:
        raise TrajetError(f"cannot open the database {engine.url!r}: {exc.orig}") from None
    if have != need:
        raise TrajetError(
            f"database schema is at {have or 'nothing (empty database)'}, code needs {need}: run `trajet db upgrade`"
        )


@contextmanager
def session(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises."""
    with Session(engine, expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


@dataclass
class Store:
    """A checked connection to the store; the other stages take its engine."""

    engine: Engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def session(self) -> Any:
        return session(self.engine)

    def create_snapshot(self) -> SnapshotInfo:
        return create_snapshot(self.engine)

    def load_split(self, snapshot_id: int, split: str) -> list[Phrase]:
        return load_split(self.engine, snapshot_id, split)

    def counts(self) -> dict[str, int]:
        return split_counts(self.engine)


def open_store(url: str | None = None, upgrade: bool = False) -> Store:
    """Open the store, migrating first when asked, else refusing an out-of-date schema."""
    engine = get_engine(url)
    if upgrade:
        _run_upgrade(engine=engine)
    ensure_schema(engine)
    return Store(engine)


# ----------------------------------------------------------------------------------------------- splits


def norm_hash(normalised: str) -> str:
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def hash_split(nhash: str) -> str:
    """80/20 train/test from the normalised-text hash: stable across runs, machines and databases."""
    return "test" if int(nhash[:8], 16) % 5 == 0 else "train"


def hash_is_validation(nhash: str) -> bool:
    """1/8 of train goes to validation (early stopping), from bits independent of the test choice."""
    return int(nhash[8:16], 16) % 8 == 0


def effective_split(split: str, is_validation: bool) -> str:
    return "validation" if split == "train" and is_validation else split


def _split_clause(split: str) -> sa.ColumnElement[bool]:
    if split == "train":
        return sa.and_(PhraseRow.split == "train", PhraseRow.is_validation.is_(False))
    if split == "validation":
        return sa.and_(PhraseRow.split == "train", PhraseRow.is_validation.is_(True))
    if split == "test":
        return PhraseRow.split == "test"
    raise TrajetError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")


def split_counts(engine: Engine) -> dict[str, int]:
    """Stored phrases per effective split (train excludes validation)."""
    counts = dict.fromkeys(SPLITS, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(PhraseRow.split, PhraseRow.is_validation, sa.func.count()).group_by(
                PhraseRow.split, PhraseRow.is_validation
            )
        )
        for split, is_val, n in rows:
            counts[effective_split(split, bool(is_val))] += n
    return counts


def row_to_phrase(row: Any) -> Phrase:
    ents = tuple(sorted(Entity(int(e["start"]), int(e["end"]), str(e["label"])) for e in row.entities))
    return Phrase(row.text, ents, dict(row.meta or {}))


# -------------------------------------------------------------------------------------------- snapshots


@dataclass
class SnapshotInfo:
    id: int
    content_hash: str
    counts: dict[str, int]


def _content_line(row: Any) -> str:
    ents = json.dumps(sorted((e["start"], e["end"], e["label"]) for e in row.entities))
    return f"{row.norm_hash}\t{effective_split(row.split, bool(row.is_validation))}\t{row.text}\t{ents}"


# trajet.feedback's review_items, named here without importing it (feedback's tables build on this module's Base)
_REVIEW_ITEMS = sa.table("review_items", sa.column("phrase_id", sa.Integer), sa.column("status", sa.String),
                         sa.column("held", sa.Boolean))


def held_for_review() -> sa.Exists:
    """Phrases with an open, held review item (trajet.audit): their annotation is in doubt until a person decides,
    so no snapshot trains or scores on them; deciding the item (trajet.review) lets the next snapshot take them."""
    r = _REVIEW_ITEMS.c
    return sa.exists().where(r.phrase_id == PhraseRow.id, r.status == "open", r.held.is_(True))


def create_snapshot(engine: Engine) -> SnapshotInfo:
    """Freeze every stored phrase not held for review; the same content always yields the same snapshot (and
    hash)."""
    cols = (PhraseRow.id, PhraseRow.norm_hash, PhraseRow.text, PhraseRow.entities, PhraseRow.split,
            PhraseRow.is_validation)
    with session(engine) as s:
        # Streamed in hash order and hashed on the way; only the ids are kept (8 bytes a phrase), so a
        # million-phrase store is snapshotted in flat memory.
        rows = s.execute(select(*cols).where(~held_for_review()).order_by(hash_order(engine)).execution_options(yield_per=SNAPSHOT_CHUNK))
        digest = hashlib.sha256()
        counts = dict.fromkeys(SPLITS, 0)
        ids = array("q")
        for row in rows:
            digest.update(_content_line(row).encode("utf-8") + b"\n")
            counts[effective_split(row.split, bool(row.is_validation))] += 1
            ids.append(row.id)
        content_hash = digest.hexdigest()
        existing = s.scalar(select(Snapshot).where(Snapshot.content_hash == content_hash))
        if existing is not None:
            return SnapshotInfo(existing.id, existing.content_hash, dict(existing.counts))
        snap = Snapshot(content_hash=content_hash, counts=counts)
        s.add(snap)
        s.flush()
        for start in range(0, len(ids), SNAPSHOT_CHUNK):
            s.execute(sa.insert(SnapshotPhrase),
                      [{"snapshot_id": snap.id, "phrase_id": i} for i in ids[start : start + SNAPSHOT_CHUNK]])
        return SnapshotInfo(snap.id, content_hash, counts)


def hash_order(engine: Engine) -> Any:
    """ORDER BY for the content hash: the hex hashes in byte order, as Python sorts them, whatever the
    PostgreSQL database's collation."""
    return PhraseRow.norm_hash.collate("C") if engine.dialect.name == "postgresql" else PhraseRow.norm_hash


def get_snapshot(engine: Engine, snapshot_id: int) -> SnapshotInfo:
    with session(engine) as s:
        snap = s.get(Snapshot, snapshot_id)
        if snap is None:
            raise TrajetError(f"no dataset snapshot with id {snapshot_id}")
        return SnapshotInfo(snap.id, snap.content_hash, dict(snap.counts))


def load_split(engine: Engine, snapshot_id: int, split: str) -> list[Phrase]:
    """The phrases of one split of a snapshot, in a stable order (by phrase id)."""
    clause = _split_clause(split)
    get_snapshot(engine, snapshot_id)
    stmt = (
        select(PhraseRow.text, PhraseRow.entities, PhraseRow.meta)
        .join(SnapshotPhrase, SnapshotPhrase.phrase_id == PhraseRow.id)
        .where(SnapshotPhrase.snapshot_id == snapshot_id, clause)
        .order_by(PhraseRow.id)
    )
    with engine.connect() as conn:
        return [row_to_phrase(r) for r in conn.execute(stmt)]
