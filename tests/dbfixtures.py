"""Store fixtures for SQLite and PostgreSQL (127.0.0.1:5432, user postgres, database `test`).

Each test session creates its own PostgreSQL database (dropped at the end), and each store inside it is a
fresh schema selected through `search_path`, so parallel runs and tests never see each other's rows.
PostgreSQL missing: the PostgreSQL cases skip on a laptop but FAIL under CI=true (it is part of the contract).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trajet import store

PG_ADMIN_URL = os.environ.get("TRAJET_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not reachable ({reason})")


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    """A database of our own for this test session; yields its URL."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"trajet_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _pg_unavailable(str(exc.orig).strip().splitlines()[0])
    url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def new_store_url(backend: str, folder: Path, request: pytest.FixtureRequest) -> str:
    """URL of an empty store: a new SQLite file, or a new schema in the session's PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{folder / f'store-{uuid.uuid4().hex[:8]}.db'}"
    base = request.getfixturevalue("pg_base_url")
    schema = f"s_{uuid.uuid4().hex[:12]}"
    eng = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    eng.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


def migrated_engine(url: str) -> Engine:
    engine = store.get_engine(url)
    store.upgrade(engine=engine)
    return engine


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty (not migrated) store URL, once per backend."""
    return new_store_url(request.param, tmp_path, request)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty store, once per backend."""
    eng = migrated_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = migrated_engine(f"sqlite:///{tmp_path / 'store.db'}")
    yield eng
    eng.dispose()
