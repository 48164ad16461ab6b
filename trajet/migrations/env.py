"""Alembic environment: Trajet passes an open connection in `config.attributes["connection"]`; a URL in
the `sqlalchemy.url` option (or TRAJET_DATABASE_URL) is the fallback for running alembic by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from trajet import feedback, runs  # noqa: F401  (register their tables on Base.metadata)
from trajet.store import Base, get_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = get_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    raise SystemExit("Trajet migrations run online only: use `trajet db upgrade`")
run_migrations_online()
