"""Perturbations of a sentence for the invariance (INV) and directional (DIR) tests.

Each returns the perturbed sample and how the answer should move: `renames` (a place's text in the
original -> in the perturbed sentence) and `added` (entities the perturbation adds), or None when the
perturbation does not apply to that sentence. Case and accent changes keep every character's position
(one character for one), so spans stay where they were.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from trajet.behaviour.samples import Piece, Sample, attach, pick_place, replace_place
from trajet.behaviour.templates import DETAILS, PREFIXES, SUFFIXES, VIA_PHRASES


@dataclass(frozen=True)
class Perturbed:
    sample: Sample
    renames: tuple[tuple[str, str], ...] = ()
    added: tuple[tuple[str, str], ...] = ()


Perturbation = Callable[[Sample, random.Random], "Perturbed | None"]
_FINAL = re.compile(r"\s*[?!.…]+\s*$")


def _per_char(sample: Sample, fn: Callable[[str, str], str]) -> Sample:
    """Maps each character (given the one before it) to exactly one character, piece by piece."""
    pieces, prev = [], " "
    for p in sample.pieces:
        chars = []
        for c in p.text:
            new = fn(c, prev)
            chars.append(new if len(new) == 1 else c)
            prev = c
        pieces.append(Piece("".join(chars), p.label, p.kind, p.name))
    return sample.with_pieces(pieces)


def _strip_accent(c: str) -> str:
    return unicodedata.normalize("NFD", c)[0]


def lowercase(sample: Sample, rng: random.Random) -> Perturbed:
    return Perturbed(_per_char(sample, lambda c, _: c.lower()))


def uppercase(sample: Sample, rng: random.Random) -> Perturbed:
    return Perturbed(_per_char(sample, lambda c, _: c.upper()))


def titlecase(sample: Sample, rng: random.Random) -> Perturbed:
    """Every word capitalised, the way some people (and some forms) type: `Je Vais À Saint-Malo`."""
    return Perturbed(_per_char(sample, lambda c, prev: c.upper() if prev.isspace() else c))


def strip_accents(sample: Sample, rng: random.Random) -> Perturbed:
    return Perturbed(_per_char(sample, lambda c, _: _strip_accent(c)))


def punctuation(sample: Sample, rng: random.Random) -> Perturbed | None:
    """One of: the final punctuation removed, added or doubled; commas removed; a comma after the first word."""
    last = sample.pieces[-1]
    ends = not last.is_place and _FINAL.search(last.text)
    options: list[str] = ["double" if ends else "add"]
    if ends:
        options.append("strip")
    if any("," in p.text for p in sample.pieces if not p.is_place):
        options.append("no_commas")
    first = sample.pieces[0]
    if not first.is_place and re.match(r"^\w+ ", first.text):
        options.append("comma")
    choice = rng.choice(options)
    pieces = list(sample.pieces)
    if choice == "strip":
        pieces[-1] = Piece(_FINAL.sub("", last.text))
    elif choice == "double":
        pieces[-1] = Piece(_FINAL.sub(rng.choice(("!!", " ??", "...", " !!!")), last.text))
    elif choice == "add":
        pieces.append(Piece(rng.choice((".", " ?", " !", "."))))
    elif choice == "no_commas":
        pieces = [p if p.is_place else Piece(p.text.replace(", ", " ").replace(",", "")) for p in pieces]
    else:
        pieces[0] = Piece(re.sub(r"^(\w+) ", r"\1, ", first.text))
    return Perturbed(sample.with_pieces(pieces))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() or text[1:2] in (" ", "'") else text


def prefix_suffix(sample: Sample, rng: random.Random) -> Perturbed:
    """Politeness, voice-assistant and SMS openings and closings (one or both)."""
    pieces = list(sample.pieces)
    mode = rng.choice(("prefix", "suffix", "both"))
    if mode in ("prefix", "both"):
        prefix = rng.choice(PREFIXES)
        if not pieces[0].is_place and not prefix.rstrip().endswith(("!", "?", ".")):
            pieces[0] = Piece(_lower_first(pieces[0].text))
        pieces.insert(0, Piece(prefix))
    if mode in ("suffix", "both"):
        text, inside = rng.choice(SUFFIXES)
        last = pieces[-1]
        m = None if last.is_place else _FINAL.search(last.text)
        if m and inside:
            pieces[-1] = Piece(last.text[: m.start()] + text + last.text[m.start() :])
        elif m or inside:
            pieces.append(Piece(text))
        else:  # no final punctuation before a sentence-like closing
            pieces.append(Piece("," + text[:2].lower() + text[2:]))
    return Perturbed(sample.with_pieces(pieces))


def insert_detail(sample: Sample, rng: random.Random) -> Perturbed:
    """A time, date, price, passenger count or train number, right after a place or at the end."""
    detail = " " + rng.choice([d for d in DETAILS if d not in sample.text])
    pieces = list(sample.pieces)
    places = [i for i in sample.places() if i + 1 == len(pieces) or pieces[i + 1].text[:1] in " ,.?!"]
    if places and rng.random() < 0.7:
        at = rng.choice(places) + 1
        pieces.insert(at, Piece(detail))
    else:
        last = pieces[-1]
        m = None if last.is_place else _FINAL.search(last.text)
        if m:
            pieces[-1] = Piece(last.text[: m.start()] + detail + last.text[m.start() :])
        else:
            pieces.append(Piece(detail))
    return Perturbed(sample.with_pieces(pieces))


def _renamed(sample: Sample, changes: dict[int, tuple[str, str]]) -> Perturbed:
    """Each place index -> (new name, its pool), the renames recorded from old text to new text."""
    out = sample
    for index, (name, kind) in changes.items():
        out = replace_place(out, index, name, kind)
    renames = tuple((sample.pieces[i].text, out.pieces[i].text) for i in changes)
    return Perturbed(out, renames)


def same_kind_place(sample: Sample, rng: random.Random) -> Perturbed | None:
    """Every place replaced by another place of its own pool (a small commune by a small commune...)."""
    places = sample.places()
    if not places:
        return None
    used = {sample.pieces[i].name or sample.pieces[i].text for i in places}
    changes: dict[int, tuple[str, str]] = {}
    for i in places:
        name, kind = pick_place(rng, sample.pieces[i].kind or "city", used)
        used.add(name)
        changes[i] = (name, kind)
    return _renamed(sample, changes)


def invented_place(sample: Sample, rng: random.Random) -> Perturbed | None:
    """The trip's places replaced by invented names the gazetteer lacks (`Vaudrecourt-sur-Lize`)."""
    trip = [i for i in sample.places() if sample.pieces[i].label]
    if not trip:
        return None
    used = {p.name or p.text for p in sample.pieces if p.is_place}
    changes: dict[int, tuple[str, str]] = {}
    for i in trip:
        name, kind = pick_place(rng, "invented", used)
        used.add(name)
        changes[i] = (name, kind)
    return _renamed(sample, changes)


def add_via(sample: Sample, rng: random.Random) -> Perturbed | None:
    """A stop added right after the trip's last place: exactly one VIA more, nothing else changes."""
    trip = [i for i in sample.places() if sample.pieces[i].label in ("DEPART", "ARRIVEE")]
    if not trip or any(p.label == "VIA" for p in sample.pieces):
        return None
    at = max(trip)
    used = {p.name or p.text for p in sample.pieces if p.is_place}
    name, kind = pick_place(rng, "mixed", used)
    before, _, after = rng.choice(VIA_PHRASES).partition("{V}")
    before, text = attach(before, name)
    pieces = list(sample.pieces)
    if at + 1 == len(pieces) or not pieces[at + 1].text.startswith(" "):
        after = after.rstrip(",")  # no comma before the sentence's own punctuation
    pieces[at + 1 : at + 1] = [Piece(before), Piece(text, "VIA", kind, name), Piece(after)]
    return Perturbed(sample.with_pieces(pieces), added=(("VIA", text),))


def swap_roles(sample: Sample, rng: random.Random) -> Perturbed | None:
    """Departure and arrival places exchanged: the roles must follow the positions, not the names."""
    by_label = {p.label: i for i, p in enumerate(sample.pieces) if p.label in ("DEPART", "ARRIVEE")}
    if len(by_label) != 2:
        return None
    d, a = by_label["DEPART"], by_label["ARRIVEE"]
    pd, pa = sample.pieces[d], sample.pieces[a]
    if (pd.kind == "gare") != (pa.kind == "gare"):
        return None
    return _renamed(sample, {d: (pa.name or pa.text, pa.kind or "city"), a: (pd.name or pd.text, pd.kind or "city")})


INVARIANCE: dict[str, tuple[str, Perturbation]] = {
    "inv_lowercase": ("all lower case", lowercase),
    "inv_titlecase": ("Every Word Capitalised", titlecase),
    "inv_uppercase": ("ALL UPPER CASE", uppercase),
    "inv_no_accents": ("accents stripped (é -> e)", strip_accents),
    "inv_punctuation": ("final punctuation removed, added or doubled; commas removed or added", punctuation),
    "inv_prefix_suffix": ("politeness, voice-assistant and SMS openings and closings", prefix_suffix),
    "inv_details": ("times, dates, prices, passengers, train numbers inserted", insert_detail),
    "inv_same_kind_place": ("each place replaced by another place of the same kind", same_kind_place),
    "inv_invented_place": ("the trip's places replaced by invented names the gazetteer lacks", invented_place),
}
DIRECTIONAL: dict[str, tuple[str, Perturbation]] = {
    "dir_add_via": ("a stop added: one VIA more, nothing else changes", add_via),
    "dir_swap_roles": ("departure and arrival places swapped: the roles swap", swap_roles),
}

