"""`trajet check`: the behavioural suite (MFT / INV / DIR) on one model, as a table and a JSON report.

It reports and exits 0 whatever the pass rates: deciding is the gate's job (its behaviour rules)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from trajet.backends import BACKEND_HELP
from trajet.errors import TrajetError


def check(
    model: str = typer.Option(..., "--model", "-m", help="Model directory, `champion` or a registry version."),
    n_per_test: int = typer.Option(100, "--n-per-test", help="Sentences per test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the place draws and perturbations."),
    examples: int = typer.Option(5, "--examples", help="Failing examples kept per test in the JSON report."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the full JSON report here."),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
    batch_size: int = typer.Option(64, "--batch-size", help="Sentences per forward pass."),
    threads: int = typer.Option(
        1, "--threads", help="CPU threads for inference (0: torch's default). One, because two spin-wait whenever "
        "the other core is busy: 3,400 sentences took 6.6 s on one thread and 58 s on two on a loaded 2-core box."
    ),
) -> None:
    """Behavioural tests (CheckList): hand-written requests filled with gazetteer places (MFT), answers that must
    not change under case, accents, punctuation, politeness, details or place swaps (INV), and answers that
    must move as the sentence does (DIR). Prints pass rate per test with failing examples."""
    import time

    from trajet.backends import check_backend
    from trajet.behaviour import check_model, report_table
    from trajet.commands.predict import resolve_model
    from trajet.evaluate import write_report
    from trajet.predict import load_predictor

    if n_per_test < 1:
        raise TrajetError(f"--n-per-test {n_per_test}: expected at least 1")
    if examples < 0:
        raise TrajetError(f"--examples {examples}: expected 0 or more")
    check_backend(backend)  # before resolve_model may pull the champion
    if threads < 0:
        raise TrajetError(f"--threads {threads}: expected 0 or more")
    predictor = load_predictor(resolve_model(model), backend=backend, batch_size=batch_size, num_threads=threads)
    started = time.perf_counter()
    report = check_model(predictor.predict_entities, n_per_test=n_per_test, seed=seed, examples=examples)
    seconds = time.perf_counter() - started
    Console().print(report_table(report))
    err = Console(stderr=True)
    err.print(f"{report['n_sentences']} sentences checked in {seconds:.1f} s")
    if json_out is not None:
        write_report({**report, "model": model}, json_out)
        err.print(f"report written to {json_out}")


def register(app: typer.Typer) -> None:
    app.command("check")(check)
