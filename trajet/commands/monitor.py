"""`trajet monitor` (the champion's quality across batches: table, plots, a check for cron) and `trajet watch`
(score stored batches by hand). Both read and write `batch_watch` through trajet.watch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from trajet.backends import BACKEND_HELP
from trajet.errors import TrajetError

DATABASE_HELP = "SQLAlchemy URL of the store (default: TRAJET_DATABASE_URL, else the embedded SQLite)."


def _engine(database: str | None) -> Any:
    """A store engine whose schema is the code's (a watch row needs migration 0003)."""
    import sqlalchemy as sa

    from trajet import store

    if database is not None:
        try:
            sa.engine.make_url(database)
        except sa.exc.ArgumentError:  # the value is not echoed: it may hold a password
            raise TrajetError("--database is not a database URL (expected e.g. "
                              "postgresql+psycopg://user@host:5432/trajet or sqlite:////path/trajet.db)") from None
    engine = store.get_engine(database)
    store.ensure_schema(engine)
    return engine


def monitor(
    database: str | None = typer.Option(None, "--database", help=DATABASE_HELP),
    champion: str | None = typer.Option(None, "--champion", help="Only the rows of this champion version."),
    last: int = typer.Option(30, "--last", help="The newest N batches (0: every batch)."),
    png: Path | None = typer.Option(None, "--png", help="Also write the trend as a PNG figure (matplotlib) here."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Draw the trend in the terminal under the table."),
    check: bool = typer.Option(False, "--check", help="Print one line and exit 1 when the newest scored batch "
                               "alerts, 0 otherwise (for cron and alerting)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows, the settings and the check as JSON."),
) -> None:
    """How the champion does on each new batch's own annotations, batch after batch and champion after champion:
    strict F1 per entity, exact match, no-trip rows left clean, answers the invariance checks changed, alerts."""
    from trajet.watch import WatchConfig, latest, trend
    from trajet.watch_report import check_line, terminal_plot, watch_table, write_png

    if last < 0:
        raise TrajetError(f"--last {last}: expected 0 or more")
    config = WatchConfig.from_env()
    rows = trend(_engine(database), champion=champion, config=config)
    newest = latest(rows)
    newest_batches = set(sorted({r.batch_id for r in rows})[-last:]) if last else None
    shown = [r for r in rows if newest_batches is None or r.batch_id in newest_batches]
    console = Console()
    if as_json:
        typer.echo(json.dumps({"config": config.to_dict(), "rows": [r.to_dict() for r in shown],
                               "check": {"alert": bool(newest and newest.alert), "line": check_line(newest)}},
                              ensure_ascii=False, indent=2))
    elif check:
        console.print(escape(check_line(newest)), highlight=False, soft_wrap=True)
    elif not rows:
        console.print("no batch scored by a champion yet: the ingest flow scores each accepted batch once a "
                      "champion exists (or run `trajet watch --batch ID`)", highlight=False)
    else:
        console.print(watch_table(shown, title=f"champion watch ({len(shown)} rows)"))
        if plot:
            console.print(terminal_plot(shown, config, width=min(console.width, 110), color=console.is_terminal),
                          highlight=False, markup=False)
        console.print(escape(check_line(newest)), highlight=False, soft_wrap=True)
    if png is not None:
        write_png(shown, config, png)
        Console(stderr=True).print(f"trend written to {escape(str(png))}", highlight=False)
    if check and newest is not None and newest.alert:
        raise typer.Exit(1)


def watch(
    batches: list[int] = typer.Option(..., "--batch", "-b", help="A stored batch id (repeat for several)."),
    model: str = typer.Option("champion", "--model", "-m", help="`champion`, a registry version or a model "
                              "directory (recorded under its folder name)."),
    database: str | None = typer.Option(None, "--database", help=DATABASE_HELP),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
) -> None:
    """Score stored batches with a model now and record the rows, as the ingest flow does after each batch:
    to re-score after a promotion, or a batch ingested before the first champion. Scoring a pair again replaces
    its row."""
    from trajet.backends import check_backend
    from trajet.commands.predict import resolve_model
    from trajet.predict import load_predictor
    from trajet.watch import WatchConfig, batch_phrases, watch_batch
    from trajet.watch_report import watch_table

    engine = _engine(database)
    config = WatchConfig.from_env()
    for batch_id in batches:
        batch_phrases(engine, batch_id)  # a wrong id fails before a model is pulled and loaded
    check_backend(backend)
    model_dir = resolve_model(model)
    predictor = load_predictor(model_dir, backend=backend)
    rows = [watch_batch(engine, predictor, model_dir.name, batch_id, config) for batch_id in batches]
    Console().print(watch_table(rows, title=f"model {escape(model_dir.name)} on {len(rows)} batch(es)"))


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
    app.command("watch")(watch)
