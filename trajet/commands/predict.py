"""`trajet predict`, and how every command finds a model and reads JSONL requests.

A model reference is a folder or a registry name (`champion`, a version): resolving it is a CLI concern, so the
inference modules never import the registry.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from trajet.backends import BACKEND_HELP
from trajet.errors import TrajetError

if TYPE_CHECKING:
    from trajet.predictor import Predictor

console = Console(stderr=True)


def predict(
    text: str | None = typer.Argument(None, help="One sentence; prints one JSON object."),
    model: str = typer.Option(..., "--model", "-m", help="Model directory, `champion` or a registry version."),
    input_file: str | None = typer.Option(None, "--input", "-i", help="JSONL with a `text` field per line, or - for stdin."),
    output_file: str | None = typer.Option(None, "--output", "-o", help="Where to write JSONL (default, or -: stdout)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Sentences per forward pass."),
    backend: str = typer.Option("torch", "--backend", help=BACKEND_HELP),
) -> None:
    """Tag departure, arrival and stops; adds entities/departure/arrival/via (or error) to each object."""
    from trajet.backends import check_backend
    from trajet.predict import load_predictor

    if (text is None) == (input_file is None):
        raise TrajetError("give either one TEXT argument or --input FILE (or - for stdin)")
    check_backend(backend)  # before resolve_model may pull the champion
    # One sentence: tracing the model in-process would cost more than the one forward pass it speeds up; the
    # trace saved by the first such call is loaded instead (no transformers import).
    predictor = load_predictor(resolve_model(model), backend=backend, batch_size=batch_size, trace=text is None,
                               saved_trace=text is not None)
    if text is not None:
        result = predictor.predict([text])[0]
        typer.echo(json.dumps({"text": text, **result}, ensure_ascii=False))
        return
    assert input_file is not None
    if input_file == "-":
        lines, source = sys.stdin, "<stdin>"
    else:
        path = Path(input_file)
        if not path.is_file():
            raise TrajetError(f"input file not found: {path}")
        try:
            lines, source = path.read_text(encoding="utf-8-sig").splitlines(), str(path)
        except UnicodeDecodeError as exc:
            raise TrajetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if output_file in (None, "-"):
        counts = predict_stream(predictor, lines, sys.stdout, source)
    else:
        out_path = Path(output_file)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with out_path.open("w", encoding="utf-8", newline="\n") as fh:
            counts = predict_stream(predictor, lines, fh, source)
        console.print(f"{counts['lines']} lines written to {escape(str(out_path))} ({counts['errors']} with an error field)",
                      highlight=False)


def resolve_model(ref: str) -> Path:
    """An existing directory as is; otherwise the registry's `champion` or a version."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    try:
        from trajet.registry import resolve_model_ref
    except ImportError:
        raise TrajetError(f"model {ref!r} is not a directory and the registry is not available") from None
    return Path(resolve_model_ref(ref))


def read_requests(lines: Iterable[str], source: str) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(object, error) per non-blank JSONL line; a bad line keeps its place with an error naming it."""
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield {"line": n}, f"{source}:{n}: not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        if not isinstance(obj, dict):
            yield {"line": n, "value": obj}, f"{source}:{n}: a line must be a JSON object"
        elif not isinstance(obj.get("text"), str):
            yield obj, f"{source}:{n}: missing string field 'text'"
        else:
            yield obj, None


def predict_stream(predictor: Predictor, lines: Iterable[str], out: TextIO, source: str, chunk: int = 256) -> dict[str, int]:
    """Read JSONL requests, write each object back with the prediction fields added, in input order."""
    counts = {"lines": 0, "errors": 0}
    pending: list[tuple[dict[str, Any], str | None]] = []

    def flush() -> None:
        texts = [obj["text"] for obj, err in pending if err is None]
        preds = iter(predictor.predict(texts))
        for obj, err in pending:
            result = {"error": err} if err is not None else next(preds)
            counts["lines"] += 1
            counts["errors"] += "error" in result
            out.write(json.dumps({**obj, **result}, ensure_ascii=False) + "\n")
        pending.clear()

    for item in read_requests(lines, source):
        pending.append(item)
        if len(pending) >= chunk:
            flush()
    if pending:
        flush()
    out.flush()
    return counts
