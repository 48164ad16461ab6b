"""Numbers that say whether a dataset can teach what the challenge set asks: labels, pattern families,
no-trip share, sentences ending on a place, and how many test places the model never saw in train."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from trajet.labels import ENTITY_TYPES, LABELS
from trajet.phrases import Phrase, normalise_text


def surface_key(text: str) -> str:
    """How two spellings count as the same place: case, accents, apostrophes, hyphens and spacing aside."""
    return normalise_text(text.replace("-", " "))


class SplitCounter:
    """The numbers of one split, counted a phrase at a time: memory holds the counters, not the phrases."""

    def __init__(self) -> None:
        self.entities: Counter[str] = Counter()
        self.tags: Counter[str] = Counter()
        self.patterns: Counter[str] = Counter()
        self.groups: Counter[str] = Counter()
        self.n = self.no_trip = self.ends_on_place = 0

    def add(self, p: Phrase) -> None:
        _, bio = p.tokens_and_tags()
        self.n += 1
        self.tags.update(bio)
        self.entities.update(e.label for e in p.entities)
        self.patterns[str(p.meta.get("pattern", "?"))] += 1
        self.groups[str(p.meta.get("group", "?"))] += 1
        if not p.entities:
            self.no_trip += 1
        elif max(e.end for e in p.entities) == len(p.text.rstrip()):
            self.ends_on_place += 1

    def result(self) -> dict[str, Any]:
        n = self.n
        return {
            "sentences": n,
            "entities": {label: self.entities.get(label, 0) for label in ENTITY_TYPES},
            "tags": {label: self.tags.get(label, 0) for label in LABELS},
            "no_trip": self.no_trip,
            "no_trip_share": self.no_trip / n if n else 0.0,
            "ends_on_place_share": self.ends_on_place / n if n else 0.0,
            "patterns": dict(sorted(self.patterns.items())),
            "groups": dict(sorted(self.groups.items())),
        }


def split_stats(phrases: Iterable[Phrase]) -> dict[str, Any]:
    counter = SplitCounter()
    for p in phrases:
        counter.add(p)
    return counter.result()


def _surfaces(phrases: Iterable[Phrase], counter: SplitCounter | None = None) -> Counter[str]:
    """Entity surfaces (normalised) with their counts; counts the split's other numbers on the way."""
    surfaces: Counter[str] = Counter()
    for p in phrases:
        if counter is not None:
            counter.add(p)
        surfaces.update(surface_key(p.text[e.start : e.end]) for e in p.entities)
    return surfaces


def _unseen(seen: Counter[str], test: Counter[str]) -> dict[str, Any]:
    occurrences = sum(test.values())
    unseen_occ = sum(count for s, count in test.items() if s not in seen)
    unseen_unique = sum(1 for s in test if s not in seen)
    return {
        "test_entities": occurrences,
        "unseen_entities": unseen_occ,
        "rate": unseen_occ / occurrences if occurrences else 0.0,
        "test_surfaces": len(test),
        "unseen_surfaces": unseen_unique,
        "surface_rate": unseen_unique / len(test) if test else 0.0,
    }


def unseen_places(train: Iterable[Phrase], test: Iterable[Phrase]) -> dict[str, Any]:
    """Share of test entity surfaces (normalised) that never occur as an entity surface in train."""
    return _unseen(_surfaces(train), _surfaces(test))


def dataset_stats(splits: Mapping[str, Iterable[Phrase]]) -> dict[str, Any]:
    """One pass over each split (an iterable is read once, so a file can be streamed); memory grows with the
    distinct place names and pattern families, not with the number of phrases."""
    counters = {name: SplitCounter() for name in splits}
    surfaces = {name: _surfaces(phrases, counters[name]) for name, phrases in splits.items()}
    out: dict[str, Any] = {"splits": {name: c.result() for name, c in counters.items()}}
    if "train" in splits and "test" in splits:
        out["unseen"] = _unseen(surfaces["train"], surfaces["test"])
    families = set()
    for s in out["splits"].values():
        families |= set(s["patterns"])
    out["pattern_families"] = len(families)
    return out


def render(stats: dict[str, Any]) -> list[Any]:
    """rich tables for people: one per view, returned so the caller decides where to print."""
    from rich.markup import escape
    from rich.table import Table

    names = list(stats["splits"])
    splits = stats["splits"]
    overview = Table(title="Dataset", title_justify="left")
    overview.add_column("")
    for name in names:
        overview.add_column(name, justify="right")
    overview.add_row("sentences", *(str(splits[n]["sentences"]) for n in names))
    for label in ENTITY_TYPES:
        overview.add_row(f"{label} entities", *(str(splits[n]["entities"][label]) for n in names))
    overview.add_row(
        "no-trip sentences",
        *(f"{splits[n]['no_trip']} ({splits[n]['no_trip_share']:.1%})" for n in names),
    )
    overview.add_row("ends on a place", *(f"{splits[n]['ends_on_place_share']:.1%}" for n in names))
    overview.add_row("pattern families", *(str(len(splits[n]["patterns"])) for n in names))

    tags = Table(title="Tokens per BIO label", title_justify="left")
    tags.add_column("label")
    for name in names:
        tags.add_column(name, justify="right")
    for label in LABELS:
        tags.add_row(label, *(str(splits[n]["tags"][label]) for n in names))

    groups = Table(title="Sentences per group", title_justify="left")
    groups.add_column("group")
    for name in names:
        groups.add_column(name, justify="right")
    all_groups = sorted({g for n in names for g in splits[n]["groups"]})
    for g in all_groups:
        groups.add_row(escape(str(g)), *(str(splits[n]["groups"].get(g, 0)) for n in names))

    patterns = Table(title=f"Sentences per pattern family ({stats['pattern_families']})", title_justify="left")
    patterns.add_column("pattern")
    for name in names:
        patterns.add_column(name, justify="right")
    all_patterns = sorted({p for n in names for p in splits[n]["patterns"]})
    for p in all_patterns:
        patterns.add_row(escape(str(p)), *(str(splits[n]["patterns"].get(p, 0)) for n in names))

    tables: list[Any] = [overview, tags, groups, patterns]
    if "unseen" in stats:
        u = stats["unseen"]
        unseen = Table(title="Places in test never seen in train", title_justify="left")
        unseen.add_column("")
        unseen.add_column("unseen", justify="right")
        unseen.add_column("total", justify="right")
        unseen.add_column("rate", justify="right")
        unseen.add_row("entity occurrences", str(u["unseen_entities"]), str(u["test_entities"]), f"{u['rate']:.1%}")
        unseen.add_row(
            "distinct surfaces", str(u["unseen_surfaces"]), str(u["test_surfaces"]), f"{u['surface_rate']:.1%}"
        )
        tables.append(unseen)
    return tables
