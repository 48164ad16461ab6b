"""`trajet suggest`: the unlabeled requests most worth annotating next, pre-annotated by the model (trajet.suggest)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from trajet.backends import BACKEND_HELP
from trajet.errors import TrajetError

MAX_SHOWN = 20  # bad lines printed one by one; a pool of thousands of bad lines is summed up after these
FORMATS = ("jsonl", "labelstudio")


def suggest(
    model: str = typer.Option(..., "--model", "-m", help="Model directory, `champion` or a registry version."),
    input_file: Path = typer.Option(..., "--input", "-i",
                                    help="Unlabeled requests: JSONL with a `text` field, or a .txt file, one a line."),
    n: int = typer.Option(200, "-n", help="How many requests to suggest."),
    output_file: Path = typer.Option(..., "--output", "-o", help="Where to write the pre-annotated rows."),
    fmt: str = typer.Option("jsonl", "--format",
                            help="jsonl (rows to correct and ingest) or labelstudio (tasks to import into Label Studio, "
                                 "the model's spans as predictions)."),
    max_similarity: float = typer.Option(
        0.7, "--max-similarity",
        help="Skip a request whose word set overlaps one already chosen this much or more (Jaccard)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Sentences per forward pass."),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
) -> None:
    """Rank unlabeled requests by the model's uncertainty (its least sure word), skip near-duplicates, and write
    the top N with the model's spans as a starting point (`meta.suggested`): correct them, then `trajet ingest`
    (with --format labelstudio: import the tasks into Label Studio, annotate, ingest its JSON export)."""
    from trajet.backends import check_backend
    from trajet.commands.predict import resolve_model
    from trajet.predict import load_predictor
    from trajet.suggest import suggest as run_suggest
    from trajet.suggest import write_rows

    if n < 1:
        raise TrajetError(f"-n {n}: expected at least 1")
    if fmt not in FORMATS:
        raise TrajetError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if not 0.0 < max_similarity <= 1.0:
        raise TrajetError(f"--max-similarity {max_similarity}: expected a value in (0, 1]")
    if not input_file.is_file():
        raise TrajetError(f"input file not found: {input_file}")
    check_backend(backend)  # before resolve_model may pull the champion
    model_dir = resolve_model(model)
    # A registry reference is recorded as the version it resolved to: `champion` changes meaning over time.
    label = model if Path(model).expanduser().is_dir() else model_dir.name
    predictor = load_predictor(model_dir, backend=backend, batch_size=batch_size)
    result = run_suggest(predictor, input_file, n=n, model=label, max_similarity=max_similarity)
    if fmt == "labelstudio":
        from trajet.labelstudio import write_tasks
        from trajet.suggest import suggestion_tasks

        output_file.parent.mkdir(parents=True, exist_ok=True)
        written = write_tasks(output_file, suggestion_tasks(result.rows))
    else:
        written = write_rows(output_file, result.rows)
    err = Console(stderr=True)
    for problem in result.problems[:MAX_SHOWN]:
        err.print(f"skipped: {escape(problem)}", highlight=False, soft_wrap=True)
    if len(result.problems) > MAX_SHOWN:
        err.print(f"skipped: ... and {len(result.problems) - MAX_SHOWN} more bad lines", highlight=False)
    err.print(
        f"{written} suggestions written to {escape(str(output_file))} from {result.read} lines "
        f"({len(result.problems)} bad lines skipped, {result.near_duplicates} near-duplicates skipped)",
        highlight=False, soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("suggest")(suggest)
