"""A tiny annotated data set for the flow tests, written with the project's markup (test data, not the
generator's), plus the tiny training and lenient gate settings those tests use."""

from __future__ import annotations

CITIES = [
    "Paris", "Lyon", "Marseille", "Lille", "Nantes", "Rennes", "Dijon", "Metz", "Brest", "Tours", "Nice",
    "Rouen", "Reims", "Angers", "Caen", "Pau", "Albi", "Niort", "Toulouse", "Bordeaux", "Le Havre",
    "La Rochelle", "Saint-Étienne", "Grenoble", "Amiens", "Limoges", "Poitiers", "Besançon", "Orléans",
]
TEMPLATES = [
    "Je veux aller de [{d}|D] à [{a}|A]",
    "Un billet de [{d}|D] à [{a}|A] via [{v}|V] s'il vous plaît",
    "Je pars de [{d}|D] pour [{a}|A] demain.",
    "[{d}|D] - [{a}|A]",
    "Trajet [{d}|D] [{a}|A] en passant par [{v}|V]",
    "Comment aller à [{a}|A] depuis [{d}|D] ?",
    "Je voudrais un train pour [{a}|A] au départ de [{d}|D] le {n} mai",
    "Il fait beau à {d} aujourd'hui, {n} degrés.",
]


def phrase_rows(n: int, seed: int, split: str) -> list[dict]:
    """`n` distinct annotated rows (JSONL dicts with an explicit split), deterministic for a seed."""
    import random

    from trajet.phrases import parse_markup

    rng = random.Random(seed)
    rows: dict[str, dict] = {}
    while len(rows) < n:
        d, a, v = rng.sample(CITIES, 3)
        phrase = parse_markup(rng.choice(TEMPLATES).format(d=d, a=a, v=v, n=rng.randint(1, 28)))
        rows.setdefault(phrase.text, {**phrase.to_dict(), "split": split})
    return list(rows.values())


def write_jsonl(path, rows: list[dict], extra_lines: list[str] = ()) -> str:
    import json

    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


#: Small and fast: the `tiny` preset (a from-scratch 1-layer model) capped at a few optimizer steps.
TINY_TRAINING = {"max_steps": 40, "eval_steps": 20, "save_steps": 20}
#: Absolute rules off for a model this small: the tests check the gate's logic, not the model's quality.
LENIENT_GATE = {"min_f1": 0.0, "min_behaviour_pass_rate": 0.0}
#: Behavioural-suite sentences per test in the flow tests: enough to exercise the rules and the artifacts.
BEHAVIOUR_N = 4
