"""Inference backends a predictor can run on; light on purpose: the CLI reads the help text at start-up."""

from __future__ import annotations

from trajet.errors import TrajetError

BACKENDS = ("torch", "onnx")
BACKEND_HELP = (  # "\\[" keeps rich (typer's help renderer) from reading [onnx] as markup
    "Inference backend: torch (default) or onnx (ONNX Runtime, int8 weights: faster on CPU; the model is "
    "exported once and cached by the sha256 of its weights; needs pip install 'trajet\\[onnx]')."
)


def check_backend(backend: str) -> str:
    """A known backend whose runtime is installed, or a one-line error (before any model is pulled or loaded)."""
    if backend not in BACKENDS:
        raise TrajetError(f"unknown backend {backend!r}: choose {' or '.join(BACKENDS)}")
    if backend == "onnx":
        from trajet.onnx_runtime import require

        require("onnxruntime")
    return backend
