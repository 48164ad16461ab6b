"""`trajet model ...`: list, show, pull, push, promote and roll back registry versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from trajet.errors import TrajetError

model_app = typer.Typer(no_args_is_help=True, help="Model registry: versions, champion, verified pulls.")

REGISTRY_OPT = typer.Option(None, "--registry", help="Registry URI (default TRAJET_REGISTRY_URI).")
ENTITIES = ("DEPART", "ARRIVEE", "VIA")


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _esc(value: Any) -> str:
    """Registry addresses, paths and manifest values are data: printed as they are, never read as markup."""
    from rich.markup import escape

    return escape(str(value))


def _f1(manifest: dict[str, Any], *path: str) -> str:
    node: Any = manifest.get("metrics") or {}
    for key in ("test", *path):
        node = node.get(key) if isinstance(node, dict) else None
    return f"{node:.4f}" if isinstance(node, int | float) else "-"


def versions_table(versions: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="Model versions")
    table.add_column("version", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    table.add_column("macro F1", justify="right")
    for entity in ENTITIES:
        table.add_column(f"{entity} F1", justify="right")
    table.add_column("created")
    table.add_column("snapshot")
    styles = {"champion": "bold green", "previous": "yellow", "archived": "dim"}
    for m in versions:
        stage = m["stage"]
        table.add_row(
            _esc(m["version"]),
            f"[{styles[stage]}]{stage}[/]",
            _f1(m, "macro", "f1"),
            *(_f1(m, "per_entity", e, "f1") for e in ENTITIES),
            _esc(str(m.get("created_at", "-"))[:16].replace("T", " ")),
            _esc(str(m.get("snapshot_hash") or "-")[:12]),
        )
    return table


@model_app.command("list")
def list_cmd(registry: str = REGISTRY_OPT) -> None:
    """Every version with its stage (champion / previous / archived) and test scores."""
    from trajet.registry import open_registry

    reg = open_registry(registry)
    versions = reg.list_versions()
    console = _console()
    if not versions:
        console.print(f"no model versions in {_esc(reg.uri)}")
        return
    console.print(versions_table(versions))


@model_app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="A version, or 'champion'."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw manifest."),
    registry: str = REGISTRY_OPT,
) -> None:
    """One version's manifest: files, checksums, metrics, gate decision, provenance."""
    from rich.table import Table

    from trajet.registry import open_registry

    reg = open_registry(registry)
    version, _ = reg.resolve(ref)
    manifest = reg.manifest(version)
    if as_json:
        typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))
        return
    from trajet.manifest import Manifest, stage_of

    console = _console()
    stage = stage_of(version, reg.champion())
    record = Manifest.from_dict(manifest, reg.version_uri(version))
    console.print(f"[bold]{_esc(version)}[/] ({stage}) at {_esc(reg.version_uri(version))}")
    for key in ("created_at", "code_version", "snapshot_hash", "base_model"):
        if getattr(record, key):
            console.print(f"  {key}: {_esc(getattr(record, key))}")
    console.print(
        f"  test macro F1 {_f1(manifest, 'macro', 'f1')}, "
        + ", ".join(f"{e} {_f1(manifest, 'per_entity', e, 'f1')}" for e in ENTITIES)
    )
    if isinstance(record.gate, dict) and "rules" in record.gate:
        from trajet.gate import GateDecision

        console.print(GateDecision.from_dict(record.gate).table())
    files = Table(title="Files")
    files.add_column("path")
    files.add_column("bytes", justify="right")
    files.add_column("sha256")
    for f in record.files:
        files.add_row(_esc(f.path), _esc(f.size), _esc(f.sha256))
    console.print(files)


@model_app.command("pull")
def pull_cmd(
    ref: str = typer.Argument("champion", help="'champion' or a version."),
    dest: Path = typer.Option(..., "--dest", help="Folder to create (absent or empty)."),
    registry: str = REGISTRY_OPT,
) -> None:
    """Download a model, every file checked against the manifest's sha256 before it appears in DEST."""
    from trajet.registry import open_registry

    reg = open_registry(registry)
    version, _ = reg.resolve(ref)
    path = reg.pull(version, dest)
    n = len(reg.manifest(version)["files"])
    _console().print(f"pulled {version} ({n} files, sha256 verified) into {_esc(path)}")


def manifest_extra_from_model_dir(model_dir: Path, evaluation: Path | None) -> dict[str, Any]:
    """Provenance for a manual push: what training wrote next to the weights, plus an optional
    `evaluate.full_evaluation` JSON as the version's metrics."""
    from trajet.manifest import provenance
    from trajet.model_dir import ModelDir

    folder = ModelDir(model_dir, check=False)
    metrics = None
    if evaluation is not None:
        try:
            metrics = json.loads(evaluation.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrajetError(f"{evaluation}: cannot read evaluation JSON ({exc})") from exc
    return provenance(folder.training_info if folder.has_training_info else None, metrics=metrics)


def default_version(model_dir: Path) -> str:
    """Sortable and content-derived: v<UTC time>-<8 hex of the files' hashes>."""
    import datetime as dt
    import hashlib

    from trajet.registry import scan_model_dir

    files = scan_model_dir(model_dir)
    fingerprint = hashlib.sha256("".join(f"{f.path}:{f.digest.sha256}" for f in files).encode()).hexdigest()
    return f"v{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{fingerprint[:8]}"


@model_app.command("push")
def push_cmd(
    model_dir: Path = typer.Argument(..., help="A trained model directory (safetensors only)."),
    version: str = typer.Option(None, "--version", help="Version name (default v<UTC time>-<hash>)."),
    evaluation: Path = typer.Option(None, "--evaluation", help="full_evaluation JSON to store as metrics."),
    promote: bool = typer.Option(False, "--promote", help="Make it the champion once pushed."),
    registry: str = REGISTRY_OPT,
) -> None:
    """Upload a model directory as a new immutable version (the pipeline does this after the gate)."""
    from trajet.registry import open_registry

    reg = open_registry(registry)
    version = version or default_version(model_dir)
    manifest = reg.push(version, model_dir, manifest_extra_from_model_dir(model_dir, evaluation))
    console = _console()
    total = sum(f["size"] for f in manifest["files"])
    console.print(
        f"pushed {version}: {len(manifest['files'])} files, {total} bytes, verified, at {_esc(reg.version_uri(version))}"
    )
    if promote:
        pointer = reg.promote(version)
        console.print(f"champion is now {pointer['version']} (previous: {pointer['previous'] or 'none'})")


@model_app.command("promote")
def promote_cmd(
    version: str = typer.Argument(...),
    expect: str = typer.Option(
        None, "--expect", help="Only if the champion is still this version ('none' for no champion)."
    ),
    registry: str = REGISTRY_OPT,
) -> None:
    """Point the champion at VERSION (compare-and-swap: a concurrent promotion makes this one fail)."""
    from trajet.registry import open_registry

    reg = open_registry(registry)
    if expect is None:
        pointer = reg.promote(version)
    else:
        pointer = reg.promote(version, expected=None if expect == "none" else expect)
    _console().print(f"champion is now {pointer['version']} (previous: {pointer['previous'] or 'none'})")


@model_app.command("rollback")
def rollback_cmd(registry: str = REGISTRY_OPT) -> None:
    """Point the champion back at the previous champion."""
    from trajet.registry import open_registry

    pointer = open_registry(registry).rollback()
    _console().print(
        f"rolled back from {pointer['rolled_back_from']}: champion is now {pointer['version']} "
        f"(previous: {pointer['previous'] or 'none'})"
    )


@model_app.command("history")
def history_cmd(registry: str = REGISTRY_OPT) -> None:
    """Every move of the champion pointer, oldest first."""
    from rich.table import Table

    from trajet.registry import open_registry

    records = open_registry(registry).history()
    table = Table(title="Champion history")
    for col in ("when", "action", "version", "previous"):
        table.add_column(col)
    for r in records:
        table.add_row(
            str(r.get("promoted_at", ""))[:19].replace("T", " "),
            str(r.get("action", "")),
            str(r.get("version", "")),
            str(r.get("previous") or "-"),
        )
    _console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
