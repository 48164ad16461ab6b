"""`trajet serve`: the HTTP inference service that follows the registry's champion."""

from __future__ import annotations

from pathlib import Path

import typer

from trajet.backends import BACKEND_HELP


def serve(
    model: str = typer.Option(
        "champion", "--model", "-m",
        help="'champion' (follow the registry's champion, hot-swap on promotion), a version name (pinned) "
        "or a model directory.",
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; loopback by default."),
    port: int = typer.Option(8000, help="TCP port."),
    poll_interval: float = typer.Option(
        30.0, "--poll-interval", envvar="TRAJET_SERVE_POLL_INTERVAL",
        help="Seconds between two reads of the champion pointer.",
    ),
    registry: str | None = typer.Option(
        None, "--registry", help="Registry folder or s3://bucket/prefix (default: TRAJET_REGISTRY_URI)."
    ),
    max_text_chars: int = typer.Option(512, help="Longest text accepted, in characters."),
    max_texts: int = typer.Option(64, help="Most texts in one request."),
    max_body_bytes: int = typer.Option(64 * 1024, help="Largest request body, in bytes."),
    cache_dir: Path | None = typer.Option(
        None, help="Where pulled models go (default: $TRAJET_HOME/serve/models)."
    ),
    batch_texts: int = typer.Option(
        64, "--batch-texts",
        help="Most texts tagged in one forward pass when concurrent requests are merged (1: no merging).",
    ),
    threads: int = typer.Option(
        1, "--threads", envvar="TRAJET_SERVE_THREADS",
        help="torch (or ONNX Runtime, with --backend onnx) threads per inference (0: the runtime's default). "
        "Requests are short: one thread is fastest unless the cores are dedicated.",
    ),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP + " Hot-swapped champions use it too."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve POST /predict, GET /health and GET /model over HTTP (OpenAPI at /docs and /openapi.json)."""
    import logging

    from rich.console import Console

    from trajet.errors import TrajetError
    from trajet.serve import Limits, run_server
    from trajet.service import ModelService

    for name, value in (("--max-text-chars", max_text_chars), ("--max-texts", max_texts),
                        ("--max-body-bytes", max_body_bytes), ("--batch-texts", batch_texts)):
        if value <= 0:
            raise TrajetError(f"{name} must be positive, got {value}")
    if threads < 0:
        raise TrajetError(f"--threads must be 0 or more, got {threads}")
    if not 0 <= port <= 65535:
        raise TrajetError(f"--port must be between 0 and 65535, got {port}")
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    service = ModelService(model, registry_uri=registry, cache_dir=cache_dir, poll_interval=poll_interval,
                           batch_texts=batch_texts, backend=backend, threads=threads)
    console = Console(stderr=True)
    from rich.markup import escape

    with console.status(f"loading {escape(model)}"):
        loaded = service.load_initial()
    follow = f", polling the champion every {poll_interval:g}s" if service.follows_champion else ""
    runtime = ", ONNX Runtime int8" if backend == "onnx" else ""
    console.print(f"serving [bold]{escape(str(loaded.version))}[/] on http://{escape(host)}:{port}{follow}{runtime}",
                  highlight=False)
    run_server(
        service,
        host=host,
        port=port,
        limits=Limits(max_text_chars=max_text_chars, max_texts=max_texts, max_body_bytes=max_body_bytes),
        log_level=log_level,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
