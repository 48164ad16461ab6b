"""`trajet generate` and `trajet data stats`: the generated dataset and the numbers that describe it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from trajet.errors import TrajetError

data_app = typer.Typer(name="data", help="Inspect the phrase datasets.", no_args_is_help=True)
console = Console()


def _phrases_dir(path: Path | None) -> Path:
    from trajet.config import data_dir

    return path if path is not None else data_dir() / "phrases"


def generate_cmd(
    seed: int = typer.Option(13, help="Random seed; the default reproduces the committed files."),
    out_dir: Path | None = typer.Option(None, "--out-dir", help="Where train.jsonl and test.jsonl go (default: data/phrases)."),
    train: int = typer.Option(8000, help="Number of training phrases."),
    test: int = typer.Option(2000, help="Number of test phrases."),
) -> None:
    """Generate the annotated train/test phrases (deterministic for a given seed)."""
    import time

    from trajet.generate import write_dataset

    if train < 1 or test < 1:
        raise TrajetError("--train and --test must be at least 1")
    target = _phrases_dir(out_dir)
    started = time.perf_counter()
    paths = write_dataset(target, seed=seed, counts={"train": train, "test": test})
    elapsed = time.perf_counter() - started
    for split, path in paths.items():
        console.print(f"wrote {escape(str(path))} ({train if split == 'train' else test} phrases)", highlight=False)
    console.print(f"seed {seed}, {elapsed:.1f} s")


@data_app.command("stats")
def stats_cmd(
    data_dir: Path | None = typer.Option(None, "--dir", help="Folder holding train.jsonl and test.jsonl (default: data/phrases)."),
    json_out: bool = typer.Option(False, "--json", help="Print the numbers as JSON instead of tables."),
) -> None:
    """Counts per label and pattern family, the no-trip share and the unseen-place rate in test."""
    import json

    from trajet.datastats import dataset_stats, render
    from trajet.phrases import iter_jsonl

    folder = _phrases_dir(data_dir)
    splits = {}
    for split in ("train", "test"):
        path = folder / f"{split}.jsonl"
        if not path.exists():
            raise TrajetError(f"{path}: not found (run `trajet generate` first)")
        splits[split] = iter_jsonl(path)
    stats = dataset_stats(splits)
    if json_out:
        typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    for table in render(stats):
        console.print(table)


@data_app.command("export-snapshot")
def export_snapshot_cmd(
    snapshot: int | None = typer.Option(None, "--snapshot", help="Store snapshot id (default: a new snapshot)."),
    to: str | None = typer.Option(None, "--to", help="Export root: a folder or s3://bucket/prefix "
                                  "(default: TRAJET_SNAPSHOT_ROOT, else the registry, TRAJET_REGISTRY_URI)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest and URI as JSON."),
) -> None:
    """Export a store snapshot once as Parquet under its content hash (verified and reused if already there).

    Prints the snapshot URI that `trajet train --snapshot-uri` and the finetune flow read without the database."""
    import json

    from trajet import store
    from trajet.snapshot_export import default_root, export_snapshot

    engine = store.open_store().engine
    result = export_snapshot(engine, to or default_root(), snapshot)
    m = result.manifest
    if as_json:
        typer.echo(json.dumps({"uri": result.uri, "snapshot_id": result.snapshot_id, "reused": result.reused,
                               "seconds": round(result.seconds, 2), "manifest": json.loads(m.to_json())}, indent=2))
        return
    verb = "verified existing export of" if result.reused else "exported"
    counts = ", ".join(f"{k} {v}" for k, v in m.counts.items())
    Console(stderr=True).print(
        f"{verb} snapshot {result.snapshot_id} ({m.rows} phrases: {counts}; {m.size / 1e6:.1f} MB, "
        f"sha256 {m.sha256[:12]}...) in {result.seconds:.1f} s", highlight=False, soft_wrap=True)
    typer.echo(result.uri)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_cmd)
    app.add_typer(data_app, name="data")
