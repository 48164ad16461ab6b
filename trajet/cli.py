"""The `trajet` command. Errors a person can fix are printed as one clear line, never a traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from trajet.commands import register_all
from trajet.errors import TrajetError

app = typer.Typer(
    name="trajet",
    no_args_is_help=True,
    add_completion=False,
    help="Trajet keeps a French travel-order NER model fresh.",
)
register_all(app)


@app.callback()
def _root() -> None:
    """Trajet keeps a French travel-order NER model fresh."""


@app.command()
def version() -> None:
    """Print Trajet's version."""
    from trajet import __version__

    typer.echo(__version__)


err_console = Console(stderr=True)


def main() -> None:
    try:
        app()
    except TrajetError as exc:
        # escaped: a message may hold brackets (pip install 'trajet[onnx]') that rich would read as markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
