"""`trajet ingest SOURCE` and `trajet quarantine list|export`: validation, storage and the way back for bad rows."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

STATUS_STYLES = {"accepted": "green", "already_ingested": "dim", "held": "bold red", "rejected": "bold red",
                 "skipped": "bold red"}
quarantine_app = typer.Typer(help="Inspect and export quarantined rows to fix and re-ingest.", no_args_is_help=True)


def ingest_cmd(
    source: str = typer.Argument(..., help="A JSONL/CoNLL file, a folder of them, or s3://bucket/prefix."),
    max_bad_ratio: float = typer.Option(None, help="Hold a batch with a larger share of bad rows "
                                                   "(default TRAJET_MAX_BAD_RATIO or 0.5)."),
) -> None:
    """Validate SOURCE, store good rows, quarantine bad ones. Exit 1 when a batch is held or rejected."""
    from trajet.ingest import ingest_source

    reports = ingest_source(source, max_bad_ratio=max_bad_ratio)
    console = Console()
    if not reports:
        console.print(f"{escape(source)}: nothing to ingest", highlight=False)
        return
    table = Table(title="Ingestion")
    for col in ("batch", "source", "status", "rows", "stored", "duplicates", "quarantined", "reasons"):
        table.add_column(col, justify="right" if col in ("batch", "rows", "stored", "duplicates", "quarantined") else "left")
    for r in reports:
        style = STATUS_STYLES.get(r.status, "bold red")
        reasons = "\n".join(f"{reason}: {n}" for reason, n in r.reasons.items())
        table.add_row(str(r.batch_id or "-"), escape(r.source), f"[{style}]{escape(r.status)}[/]", str(r.rows_read),
                      str(r.stored), str(r.duplicates), str(r.quarantined), escape(reasons))
    console.print(table)
    for r in reports:
        checks = r.checks
        if checks:
            shift = checks["label_distribution"]["max_shift"]
            console.print(f"batch {r.batch_id}: duplicate rate {checks['duplicate_rate']:.1%}, never-seen places "
                          f"{checks['unseen_place_share']:.1%}, label shift vs store "
                          f"{'n/a' if shift is None else f'{shift:.1%}'}", highlight=False)
        if r.status != "accepted":
            console.print(f"{escape(r.source)}: {escape(r.message)}", highlight=False, soft_wrap=True)
    failed = [r for r in reports if r.failed]
    if failed:
        Console(stderr=True).print(f"{len(failed)} batch(es) held, rejected or skipped: see `trajet quarantine list BATCH`"
                                   " (a skipped file was not read: fix what its line says)", highlight=False)
        raise typer.Exit(1)


@quarantine_app.command("list")
def list_cmd(batch: int = typer.Argument(None, help="A batch id; without it, every batch with quarantined rows.")) -> None:
    """Without BATCH: batches with quarantined rows. With BATCH: each row's line, reasons and raw text."""
    import sqlalchemy as sa

    from trajet import store
    from trajet.ingest_sql import quarantine_rows

    engine = store.get_engine()
    console = Console()
    if batch is None:
        store.ensure_schema(engine)
        table = Table(title="Batches with quarantined rows")
        for col in ("batch", "received", "source", "status", "rows", "stored", "quarantined"):
            table.add_column(col)
        with engine.connect() as conn:
            B = store.Batch
            for b in conn.execute(sa.select(B).where(B.quarantined > 0).order_by(B.id)):
                table.add_row(str(b.id), f"{b.received_at:%Y-%m-%d %H:%M}", escape(b.source), escape(b.status),
                              str(b.rows_read), str(b.stored), str(b.quarantined))
        console.print(table)
        return
    info, rows = quarantine_rows(engine, batch)
    table = Table(title=escape(f"Batch {info.id}: {info.source} ({info.status})"))
    for col in ("line", "reasons", "raw"):
        table.add_column(col, overflow="fold")
    for row in rows:
        raw = row.raw.decode("utf-8", "replace")
        table.add_row(str(row.line), escape("\n".join(row.reasons)), escape(raw if len(raw) <= 200 else raw[:200] + "…"))
    console.print(table)


@quarantine_app.command("export")
def export_cmd(
    batch: int = typer.Argument(..., help="The batch id (see `trajet quarantine list`)."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write; default standard output."),
) -> None:
    """Write the batch's quarantined rows back in their input format, verbatim, to fix and re-ingest."""
    from trajet import store
    from trajet.ingest import export_quarantine

    data = export_quarantine(store.get_engine(), batch)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    lines = data.count(b"\n")
    Console(stderr=True).print(f"wrote {lines} lines to {escape(str(output))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.add_typer(quarantine_app, name="quarantine")
