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
    from trajet.phrases import read_jsonl

    folder = _phrases_dir(data_dir)
    splits = {}
    for split in ("train", "test"):
        path = folder / f"{split}.jsonl"
        if not path.exists():
            raise TrajetError(f"{path}: not found (run `trajet generate` first)")
        splits[split] = read_jsonl(path)
    stats = dataset_stats(splits)
    if json_out:
        typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    for table in render(stats):
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_cmd)
    app.add_typer(data_app, name="data")
