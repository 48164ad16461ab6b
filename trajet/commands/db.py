"""`trajet db upgrade|current`: the store's schema, managed by the Alembic migrations shipped in the package."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

db_app = typer.Typer(help="Create or upgrade the store's schema (SQLite or PostgreSQL).", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade_cmd() -> None:
    """Run the migrations up to the revision this code needs (safe to run again)."""
    from trajet import store

    engine = store.get_engine()
    before = store.current_revision(engine)
    store.upgrade(engine=engine)
    after = store.current_revision(engine)
    url = escape(store.masked_url(engine))
    if before == after:
        Console().print(f"{url}: already at {after}", highlight=False)
    else:
        Console().print(f"{url}: upgraded {before or 'empty database'} -> {after}", highlight=False)


@db_app.command("current")
def current_cmd() -> None:
    """Show the database's schema revision and the one the code needs; exit 1 when they differ."""
    from trajet import store

    engine = store.get_engine()
    have, need = store.current_revision(engine), store.head_revision()
    url = escape(store.masked_url(engine))
    Console().print(f"{url}: database at {have or 'nothing (empty database)'}, code needs {need}", highlight=False)
    if have != need:
        Console(stderr=True).print("out of date: run `trajet db upgrade`")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
