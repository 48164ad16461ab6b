"""CLI command groups, one module per pipeline stage. Each module imports its heavy libraries
(transformers, great_expectations) inside the command body, so `trajet --help` stays fast.

Commands that drive Prefect (`demo`, `ui`) cannot live here: trajet/ never imports Prefect or the flows. The
flows package adds them through the `trajet.commands` entry-point group (pyproject.toml), a plugin hook any
installed package may use: its value is a `register(app)` function like the ones below.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

import typer

MODULES = ("data", "db", "ingest", "train", "check", "model", "serve", "suggest", "review", "monitor")
PLUGIN_GROUP = "trajet.commands"


def command_plugins() -> list[EntryPoint]:
    """The installed `trajet.commands` entry points, by name so the help lists them in a stable order."""
    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)


def register_all(app: typer.Typer, plugins: Iterable[EntryPoint] | None = None) -> None:
    for name in MODULES:
        importlib.import_module(f"trajet.commands.{name}").register(app)
    for plugin in command_plugins() if plugins is None else plugins:
        plugin.load()(app)
