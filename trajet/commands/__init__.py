"""CLI command groups, one module per pipeline stage. Each module imports its heavy libraries
(transformers, great_expectations, prefect) inside the command body, so `trajet --help` stays fast."""

from __future__ import annotations

import importlib

import typer

MODULES = ("data", "db", "ingest", "train", "check", "model", "serve", "demo")


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        importlib.import_module(f"trajet.commands.{name}").register(app)
