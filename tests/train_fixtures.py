"""Small deterministic annotated phrases for the training/evaluation/prediction tests (test data, written
with the project's markup; the real data set comes from the generator)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from trajet.phrases import Entity, Phrase, parse_markup

CITIES = [
    "Paris", "Lyon", "Marseille", "Lille", "Nantes", "Rennes", "Dijon", "Metz", "Brest", "Tours",
    "Nice", "Rouen", "Reims", "Angers", "Caen", "Pau", "Albi", "Niort", "Toulouse", "Bordeaux",
]
TEMPLATES = [
    "Je veux aller de [{d}|D] à [{a}|A]",
    "Un billet de [{d}|D] à [{a}|A] via [{v}|V] s'il vous plaît",
    "Je pars de [{d}|D] pour [{a}|A] demain.",
    "[{d}|D] - [{a}|A]",
    "Trajet [{d}|D] [{a}|A] en passant par [{v}|V]",
    "Comment aller à [{a}|A] depuis [{d}|D] ?",
    "Je voudrais un train pour [{a}|A] au départ de [{d}|D] le 3 mai",
    "Il fait beau à {x} aujourd'hui.",
    "Quel temps fait-il à {x} ?",
]


def make_phrases(n: int, seed: int = 0) -> list[Phrase]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        d, a, v, x = rng.sample(CITIES, 4)
        template = rng.choice(TEMPLATES)
        out.append(parse_markup(template.format(d=d, a=a, v=v, x=x)))
    return out


_TRAINED: dict[str, Any] = {}


def trained_tiny(root: Path) -> dict[str, Any]:
    """Build a tiny base and train it once per test process (shared by the train/predict test modules)."""
    if "model" in _TRAINED:
        return _TRAINED
    from trajet.minibase import MiniSpec, build_mini
    from trajet.train import train_model
    from trajet.train_config import config_for

    train, val = make_phrases(200, seed=1), make_phrases(40, seed=2)
    base = build_mini([p.text for p in train], root / "base", MiniSpec.named("tiny"))
    cfg = config_for("tiny", {"base_model": str(base), "num_epochs": 8})
    result = train_model(train, val, cfg, root / "model", snapshot_hash="abc123", progress=False)
    _TRAINED.update(base=base, model=result.output_dir, result=result, train=train, val=val, config=cfg)
    return _TRAINED


_SURE: dict[str, Any] = {}


def trained_sure(root: Path) -> dict[str, Any]:
    """The tiny model trained on the same phrases until it is sure of them (30 epochs, about 10 s), once per test
    process. The annotation audit judges a row by the model's probabilities: the 8-epoch model tags its own
    phrases right but with low probabilities (its least sure word 0.25-0.9), where a champion is near 1, so at the
    audit's default thresholds it could tell an annotator's slip from nothing."""
    if "model" in _SURE:
        return _SURE
    from trajet.minibase import MiniSpec, build_mini
    from trajet.train import train_model
    from trajet.train_config import config_for

    train, val = make_phrases(200, seed=1), make_phrases(40, seed=2)
    base = build_mini([p.text for p in train], root / "base", MiniSpec.named("tiny"))
    cfg = config_for("tiny", {"base_model": str(base), "num_epochs": 30})
    result = train_model(train, val, cfg, root / "model", snapshot_hash="sure", progress=False)
    _SURE.update(base=base, model=result.output_dir, train=train, val=val)
    return _SURE


def known_rows(tiny: dict[str, Any], size: int, chunk: int) -> list[Phrase]:
    """Distinct rows the tiny model was trained on (it knows them), `size` per chunk, chunks disjoint."""
    rows = list({p.text: p for p in tiny["train"]}.values())
    if len(rows) < size * (chunk + 1):
        raise ValueError(f"only {len(rows)} distinct training rows: no chunk {chunk} of {size}")
    return rows[size * chunk : size * (chunk + 1)]


SWAP = {"DEPART": "ARRIVEE", "ARRIVEE": "DEPART"}


def swapped_roles(phrases: list[Phrase], share: float = 1.0) -> list[Phrase]:
    """Annotations with departure and arrival exchanged on the first `share` of the trip rows: a batch whose
    annotator confused the two, which a model that reads the roles right must score low on."""
    trips = [i for i, p in enumerate(phrases) if any(e.label in SWAP for e in p.entities)]
    chosen = set(trips[: round(len(trips) * share)])
    return [Phrase(p.text, tuple(Entity(e.start, e.end, SWAP.get(e.label, e.label)) for e in p.entities))
            if i in chosen else p for i, p in enumerate(phrases)]
