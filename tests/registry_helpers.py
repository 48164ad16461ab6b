"""Builders shared by the registry, gate and promotion tests: real model files, report dicts."""

from __future__ import annotations

import json
from pathlib import Path


def write_model(path: Path, seed: int) -> Path:
    """A tiny but real HF-style model folder: config, safetensors weights, tokenizer."""
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    gen = torch.Generator().manual_seed(seed)
    save_file(
        {"classifier.weight": torch.randn(7, 16, generator=gen), "classifier.bias": torch.zeros(7)},
        str(path / "model.safetensors"),
    )
    (path / "config.json").write_text(json.dumps({"model_type": "camembert", "num_labels": 7, "seed": seed}))
    (path / "tokenizer.json").write_text(
        json.dumps({"version": "1.0", "model": {"type": "BPE", "seed": seed}})
    )
    return path


def report(macro: float, depart: float, arrivee: float, via: float, n: int = 200, groups=None) -> dict:
    return {
        "n_sentences": n,
        "micro": {"precision": macro, "recall": macro, "f1": macro},
        "macro": {"precision": macro, "recall": macro, "f1": macro},
        "per_entity": {
            "DEPART": {"precision": depart, "recall": depart, "f1": depart, "support": 190},
            "ARRIVEE": {"precision": arrivee, "recall": arrivee, "f1": arrivee, "support": 195},
            "VIA": {"precision": via, "recall": via, "f1": via, "support": 60},
        },
        "exact_match": macro - 0.02,
        "no_trip": {"n": 10, "clean": 1.0},
        "groups": {name: {"n": 10, "micro_f1": f1, "exact_match": f1} for name, f1 in (groups or {}).items()},
    }


def evaluation(macro, depart, arrivee, via, groups=None, n=200) -> dict:
    challenge = report(macro - 0.1, 0.9, 0.9, 0.8, n=40, groups=groups) if groups is not None else None
    return {"test": report(macro, depart, arrivee, via, n=n), "challenge": challenge}
