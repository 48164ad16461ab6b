"""Sentences as pieces (plain text or a place), the place pools they are filled from, and template filling.

A sentence is kept as pieces rather than as text + offsets so that a perturbation (UPPERCASE, a prefix, a
place swapped for another) rewrites pieces and the gold spans follow for free: no offset arithmetic.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from trajet.behaviour.templates import INVENTED_ENDINGS, INVENTED_ROOTS, INVENTED_TAILS
from trajet.phrases import Entity

ROLES = {"D": "DEPART", "A": "ARRIVEE", "V": "VIA", "V2": "VIA", "X": None}
POOLS = ("city", "town", "small", "compound", "articled", "station", "gare", "invented")
#: The `mixed` pool: a request names big cities most often, but small and compound names are where
#: a template-trained model breaks.
MIXED = (("city", 0.35), ("town", 0.2), ("small", 0.15), ("compound", 0.2), ("articled", 0.1))
_SLOT = re.compile(r"\{(D|A|V2|V|X)(?::(\w+))?\}")
_VOWELS = set("AEIOUYÂÀÉÈÊÎÏÔÛaeiouyâàéèêîïôû")


@dataclass(frozen=True)
class Piece:
    """Plain text (`kind` None) or a place; `label` is its role in the trip (None: named outside the trip).
    `name` is the place's full name when the text dropped a contracted article (`Havre` of `du Havre`)."""

    text: str
    label: str | None = None
    kind: str | None = None
    name: str = ""

    @property
    def is_place(self) -> bool:
        return self.kind is not None


@dataclass(frozen=True)
class Sample:
    pieces: tuple[Piece, ...]
    source: str = ""  # the template it was filled from

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces)

    @property
    def entities(self) -> tuple[Entity, ...]:
        out, pos = [], 0
        for p in self.pieces:
            if p.label:
                out.append(Entity(pos, pos + len(p.text), p.label))
            pos += len(p.text)
        return tuple(out)

    def labelled(self) -> list[tuple[str, str]]:
        return [(p.label, p.text) for p in self.pieces if p.label]

    def places(self) -> list[int]:
        return [i for i, p in enumerate(self.pieces) if p.is_place]

    def with_pieces(self, pieces: Sequence[Piece]) -> Sample:
        return replace(self, pieces=tuple(merge_text(pieces)))


def merge_text(pieces: Sequence[Piece]) -> list[Piece]:
    """Adjacent plain pieces joined, empty ones dropped: equal samples then have equal pieces."""
    out: list[Piece] = []
    for p in pieces:
        if not p.text:
            continue
        if out and not p.is_place and not out[-1].is_place:
            out[-1] = Piece(out[-1].text + p.text)
        else:
            out.append(p)
    return out


# ------------------------------------------------------------------------------------------ places


def contraction_class(name: str) -> str:
    """How `de` / `à` combine with the name: `le` (du, au), `les` (des, aux), `vowel` (d'), or `plain`."""
    first = name.split(" ", 1)[0]
    if first == "Le" and " " in name:
        return "le"
    if first == "Les" and " " in name:
        return "les"
    return "vowel" if name[:1] in _VOWELS else "plain"


def attach(before: str, name: str) -> tuple[str, str]:
    """(text before, place text) with French contraction: `de` + `Le Havre` -> `du` + `Havre`."""
    m = re.search(r"(^|[\s'’])(de|De|à|À) $", before)
    if not m:
        return before, name
    prep, head = m.group(2), before[: m.start(2)]
    cls = contraction_class(name)
    if cls in ("le", "les"):
        lower = prep.lower()
        word = {("de", "le"): "du", ("de", "les"): "des", ("à", "le"): "au", ("à", "les"): "aux"}[(lower, cls)]
        if prep[0].isupper():
            word = word.capitalize()
        return f"{head}{word} ", name.split(" ", 1)[1]
    if cls == "vowel" and prep.lower() == "de":
        return f"{head}{prep[0]}'", name
    return before, name


def _usable(name: str) -> bool:
    from trajet.patterns import AMBIGUOUS_TOWNS, PEOPLE, SURNAMES

    if len(name) < 4 or any(c.isdigit() or c in "()/" for c in name):
        return False
    if name.split(" ")[0] in ("Aux", "Au") or name in AMBIGUOUS_TOWNS or name in PEOPLE or name in SURNAMES:
        return False
    return True


@lru_cache(maxsize=2)
def place_pools(_data_key: str = "") -> dict[str, tuple[str, ...]]:
    """Place names per pool, drawn from the gazetteer (data/places) and sorted, so a seed gives the same
    places on any machine with the same gazetteer."""
    from trajet.places import communes, stations

    best: dict[str, int] = {}
    for c in communes():
        if _usable(c.name):
            best[c.name] = max(best.get(c.name, 0), c.population)
    pools: dict[str, set[str]] = {k: set() for k in POOLS}
    for name, pop in best.items():
        cls = contraction_class(name)
        if cls in ("le", "les") or name.split(" ")[0] in ("La", "L'"):
            pools["articled"].add(name)
        elif "-" in name and (name.count("-") >= 2 or name.startswith(("Saint-", "Sainte-"))):
            pools["compound"].add(name)
        elif pop >= 30_000:
            pools["city"].add(name)
        elif pop >= 3_000:
            pools["town"].add(name)
        else:
            pools["small"].add(name)
    for s in stations():
        if s.name.startswith("Aéroport") or "Aéroport" in s.name:
            continue
        pools["gare" if s.kind == "gare" else "station"].add(s.name)
    pools["invented"] = set(invented_names())
    return {k: tuple(sorted(v)) for k, v in pools.items()}


def invented_names(limit: int = 400) -> list[str]:
    """Plausible French place names built from parts, kept only when no word of them is a known place."""
    from trajet.lexicon import Lexicon
    from trajet.phrases import tokenize

    lexicon = Lexicon.from_gazetteer()
    rng = random.Random("trajet-check-invented")
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(limit * 4):
        root, ending = rng.choice(INVENTED_ROOTS), rng.choice(INVENTED_ENDINGS)
        stem = root + (ending[1:] if root[-1] == ending[0] else ending)
        r = rng.random()
        name = (
            stem if r < 0.35
            else stem + rng.choice(INVENTED_TAILS) if r < 0.75
            else f"Saint-{stem}" if r < 0.9
            else f"{stem}-{rng.choice(INVENTED_ROOTS)}{rng.choice(INVENTED_ENDINGS)}"
        )
        if name in seen:
            continue
        seen.add(name)
        if any(lexicon.word_features([t.text for t in tokenize(name)])):
            continue
        out.append(name)
        if len(out) >= limit:
            break
    return out


def pick_place(rng: random.Random, pool: str, avoid: set[str]) -> tuple[str, str]:
    """(name, its pool); `mixed` draws a pool first."""
    pools = place_pools()
    if pool == "mixed":
        pool = rng.choices([k for k, _ in MIXED], [w for _, w in MIXED])[0]
    if pool not in pools or not pools[pool]:
        raise ValueError(f"unknown or empty place pool {pool!r}")
    for _ in range(50):
        name = rng.choice(pools[pool])
        if name not in avoid:
            return name, pool
    return name, pool


def fill(template: str, rng: random.Random, pool: str) -> Sample:
    """A template filled with distinct places; gold spans on the trip's places only."""
    pieces: list[Piece] = []
    used: set[str] = set()
    last = 0
    for m in _SLOT.finditer(template):
        before = template[last : m.start()]
        name, kind = pick_place(rng, m.group(2) or pool, used)
        used.add(name)
        before, text = attach(before, name)
        pieces.append(Piece(before))
        pieces.append(Piece(text, ROLES[m.group(1)], kind, name))
        last = m.end()
    pieces.append(Piece(template[last:]))
    return Sample(tuple(merge_text(pieces)), template)


def replace_place(sample: Sample, index: int, name: str, kind: str) -> Sample:
    """The place at `index` renamed, the contraction before it redone (`du Havre` -> `de Rouen`)."""
    pieces = list(sample.pieces)
    old = pieces[index]
    before = pieces[index - 1].text if index > 0 and not pieces[index - 1].is_place else None
    if before is not None:
        before = _uncontract(before, old.name or old.text, old.text)
        before, text = attach(before, name)
        pieces[index - 1] = Piece(before)
    else:
        text = name
    pieces[index] = Piece(text, old.label, kind, name)
    return sample.with_pieces(pieces)


def _uncontract(before: str, name: str, text: str) -> str:
    """The text before a place as it was before `attach` contracted it."""
    if text != name:  # article dropped: du/au/des/aux
        m = re.search(r"(du|Du|au|Au|des|Des|aux|Aux) $", before)
        if m:
            prep = {"du": "de", "des": "de", "au": "à", "aux": "à"}[m.group(1).lower()]
            if m.group(1)[0].isupper():
                prep = prep.capitalize()
            return before[: m.start()] + prep + " "
    m = re.search(r"(^|[\s'’])([dD])'$", before)
    if m:
        return before[: m.start(2)] + m.group(2) + "e "
    return before
