"""Placeholder: the issue that owns this command group fills it in."""

import typer


def register(app: typer.Typer) -> None:
    return None
