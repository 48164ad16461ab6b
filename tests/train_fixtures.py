"""Small deterministic annotated phrases for the training/evaluation/prediction tests (test data, written
with the project's markup; the real data set comes from the generator)."""

from __future__ import annotations

import random

from trajet.phrases import Phrase, parse_markup

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
