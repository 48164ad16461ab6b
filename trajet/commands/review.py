"""`trajet review audit|list|show|export|accept`: the annotation audit's queue (trajet.audit, trajet.review)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trajet.backends import BACKEND_HELP
from trajet.errors import TrajetError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

review_app = typer.Typer(help="The annotation audit: rows where the champion confidently disagrees with the "
                              "annotation, for a person to decide.", no_args_is_help=True)
STATUS_HELP = "open, accepted or corrected; `all` for every item."
MAX_SHOWN = 20  # refused rows printed one by one, then counted


def _status(status: str) -> str | None:
    return None if status == "all" else status


def _engine() -> Engine:
    from trajet import store  # SQLAlchemy and the ORM only when a command runs: `trajet --help` stays fast

    return store.get_engine()


@review_app.command("audit")
def audit_cmd(
    batch: int = typer.Argument(..., help="A stored batch id (the ingest report's `batch`)."),
    model: str = typer.Option("champion", "--model", "-m", help="Model directory, `champion` or a registry version."),
    policy: str = typer.Option(None, help="train | hold_confident | hold_all (default TRAJET_AUDIT_POLICY or "
                                          "hold_confident)."),
    min_confidence: float = typer.Option(None, help="Queue from this confidence (default TRAJET_AUDIT_MIN_CONFIDENCE "
                                                    "or 0.9)."),
    hold_confidence: float = typer.Option(None, help="hold_confident holds from this confidence (default "
                                                     "TRAJET_AUDIT_HOLD_CONFIDENCE or 0.98)."),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
) -> None:
    """Compare the model with every annotated row of BATCH and queue the confident disagreements."""
    from trajet.audit import AuditConfig, audit_batch
    from trajet.backends import check_backend
    from trajet.commands.predict import resolve_model
    from trajet.predict import load_predictor

    config = AuditConfig.from_env(policy=policy, min_confidence=min_confidence, hold_confidence=hold_confidence)
    check_backend(backend)
    model_dir = resolve_model(model)
    # `champion` changes meaning over time: an item records the version that audited it (the cache folder's name)
    version = model if Path(model).expanduser().is_dir() else model_dir.name
    report = audit_batch(_engine(), batch, load_predictor(model_dir, backend=backend), champion_version=version,
                         config=config)
    reasons = ", ".join(f"{k} {n}" for k, n in sorted(report.reasons.items())) or "none"
    Console().print(f"batch {batch}, model {escape(version)}: {report.audited} rows read ({report.skipped} audited "
                    f"before or reviewed), {report.items} queued ({reasons}), {report.held} held out of snapshots "
                    f"(policy {config.policy})", highlight=False, soft_wrap=True)
    for line in report.unreadable:
        Console(stderr=True).print(f"not read: {escape(line)}", highlight=False, soft_wrap=True)


@review_app.command("list")
def list_cmd(
    status: str = typer.Option("open", help=STATUS_HELP),
    batch: int = typer.Option(None, help="Only this batch's items."),
    limit: int = typer.Option(50, help="Show at most this many (held first, then the most confident)."),
) -> None:
    """The review queue: reason, confidence, whether the row is held out of snapshots, the text."""
    from trajet.review import entries

    found = entries(_engine(), status=_status(status), batch=batch)
    table = Table(title=f"Review items ({status}{f', batch {batch}' if batch is not None else ''}): {len(found)}")
    for col in ("id", "batch", "phrase", "reason", "confidence", "held", "status", "model", "text"):
        table.add_column(col, overflow="fold", justify="right" if col in ("id", "batch", "phrase", "confidence")
                         else "left")
    for e in found[:limit]:
        i = e.item
        table.add_row(str(i.id), str(i.batch_id), str(i.phrase_id), i.reason, f"{i.confidence:.3f}",
                      "[bold red]held[/]" if i.held and i.status == "open" else ("was held" if i.held else "-"),
                      i.status, escape(i.champion_version), escape(e.phrase.text))
    Console().print(table)
    if len(found) > limit:
        Console().print(f"... and {len(found) - limit} more (--limit)", highlight=False)


@review_app.command("show")
def show_cmd(item_id: int = typer.Argument(..., help="A review item id (see `trajet review list`).")) -> None:
    """One item: the text, the annotated and the model's spans side by side, the findings, its history."""
    from trajet.review import entry, revisions, side_by_side

    engine = _engine()
    e = entry(engine, item_id)
    i = e.item
    console = Console()
    console.print(f"review item {i.id}: phrase {e.phrase.id} of batch {i.batch_id}, {i.status}"
                  f"{' (held out of snapshots)' if i.held and i.status == 'open' else ''}; audited by "
                  f"{escape(i.champion_version)} on {i.created_at:%Y-%m-%d %H:%M}", highlight=False, soft_wrap=True)
    console.print(escape(e.phrase.text), highlight=False, soft_wrap=True)
    table = Table()
    for col in ("words", "annotated", "model"):
        table.add_column(col)
    for words, ann, mod in side_by_side(e):
        style = "" if ann == mod else "bold red"
        table.add_row(escape(words), f"[{style}]{ann}[/]" if style else ann, f"[{style}]{mod}[/]" if style else mod)
    console.print(table)
    for f in i.findings:
        ann = ", ".join(f"{s['label']} {s['text']!r}" for s in f["annotated"]) or "nothing"
        mod = ", ".join(f"{s['label']} {s['text']!r}" for s in f["model"]) or "nothing"
        console.print(f"- {f['kind']} {f['confidence']:.3f}: annotated {escape(ann)} / model {escape(mod)}",
                      highlight=False, soft_wrap=True)
    if i.status != "open":
        console.print(f"decided {i.resolved_at:%Y-%m-%d %H:%M}: {escape(i.resolution)}", highlight=False, soft_wrap=True)
    for r in revisions(engine, e.phrase.id):
        console.print(f"revision {r.revised_at:%Y-%m-%d %H:%M} from {escape(r.source)}: {json.dumps(r.old_entities)} "
                      f"-> {json.dumps(r.new_entities)}", highlight=False, soft_wrap=True)


@review_app.command("export")
def export_cmd(
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (ingestion rows) or labelstudio (tasks to import)."),
    status: str = typer.Option("open", help=STATUS_HELP),
    batch: int = typer.Option(None, help="Only this batch's items."),
) -> None:
    """Write the queue for annotators: correct `entities` (or the annotation in Label Studio), then
    `trajet review accept FILE`."""
    from trajet.labelstudio import write_tasks
    from trajet.review import EXPORT_FORMATS, entries, export_rows, export_tasks
    from trajet.suggest import write_rows

    if fmt not in EXPORT_FORMATS:
        raise TrajetError(f"--format {fmt}: expected one of {', '.join(EXPORT_FORMATS)}")
    found = entries(_engine(), status=_status(status), batch=batch)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = write_tasks(output, export_tasks(found)) if fmt == "labelstudio" else write_rows(output, export_rows(found))
    Console(stderr=True).print(f"{written} review items written to {escape(str(output))} ({fmt})", highlight=False)


@review_app.command("accept")
def accept_cmd(path: Path = typer.Argument(..., help="A reviewed export: JSONL or a Label Studio JSON export.")) -> None:
    """Apply the reviewed rows: corrected annotations replace the stored ones (history kept), the rest are
    accepted as they are; a refused row is named and the others still apply. Exit 1 when a row was refused."""
    from trajet.review_accept import accept_file

    report = accept_file(_engine(), path)
    err = Console(stderr=True)
    for problem in report.problems[:MAX_SHOWN]:
        err.print(f"refused: {escape(problem)}", highlight=False, soft_wrap=True)
    if len(report.problems) > MAX_SHOWN:
        err.print(f"refused: ... and {len(report.problems) - MAX_SHOWN} more rows", highlight=False)
    Console().print(f"{escape(str(path))}: {report.read} rows, {report.corrected} corrected, {report.accepted} accepted "
                    f"as annotated, {len(report.problems)} refused; {report.released} held phrases released",
                    highlight=False, soft_wrap=True)
    if report.problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
