"""Inference as callers use it: `load_predictor(model_dir, backend=...)` picks the backend and loads the model.

`Predictor` (trajet.predictor) is the torch backend and the type every backend returns; the ONNX Runtime and
saved-TorchScript backends subclass it and are imported only when chosen. Nothing here imports back from a
backend's module, so the backends depend on the predictor and not the other way round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from trajet.backends import check_backend
from trajet.predictor import MAX_CHARS, Predictor

__all__ = ["MAX_CHARS", "Predictor", "load_predictor", "percentile"]


def load_predictor(model_dir: Path, *, backend: str = "torch", batch_size: int = 32, num_threads: int = 0,
                   trace: bool = True, saved_trace: bool = False) -> Predictor:
    """A Predictor for `backend`: `torch` (the model as trained) or `onnx` (ONNX Runtime, dynamic int8).
    `trace=False` skips the TorchScript trace, which costs more than it saves for a handful of sentences.
    `saved_trace=True` (torch) runs the trace saved by an earlier call (trajet.torchscript): no transformers
    import, seconds less start-up for a one-shot command; a service keeps one in-process trace per architecture."""
    if check_backend(backend) == "onnx":
        from trajet.onnx_runtime import OnnxPredictor

        return OnnxPredictor.load(model_dir, batch_size=batch_size, num_threads=num_threads)
    if saved_trace:
        from trajet.torchscript import load_saved

        return load_saved(model_dir, batch_size=batch_size, num_threads=num_threads)
    return Predictor.load(model_dir, batch_size=batch_size, num_threads=num_threads, trace=trace)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of per-sentence latencies, as the benches report them."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]
