"""Deterministic generator of annotated French travel requests (data/phrases/{train,test}.jsonl).

Why it looks like this: a model trained on a handful of templates learns the templates (NOTES.md, "What
goes wrong"): it stretches the last entity to the end of the sentence, tags dates and people, swaps
departure and arrival when the arrival comes first, and tags cities in sentences that ask for no trip.
So the generator varies what those errors feed on: ~110 sentence families written as small grammars
(`trajet/patterns.py`), both orders, 0-3 stops, stations, contracted articles, people and distractor
places that must stay untagged, no-trip sentences, endings of every kind, and the noise people type
(lowercase, no accents, capitals, typos, missing spaces). Test places are drawn from a vocabulary held
out of train, so the test split measures generalisation to unseen places.

A sentence is built as segments (text, label or None); noise is applied per segment, so character spans
stay exact, and every phrase is checked with `spans_to_bio` before it is written.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from trajet import patterns as P
from trajet.phrases import Entity, Phrase, normalise_text, spans_to_bio, write_jsonl
from trajet.places import Commune, Station, communes, stations

DEFAULT_SEED = 13
DEFAULT_COUNTS = {"train": 8000, "test": 2000}
NO_TRIP_SHARE = 0.15  # a chat front-end gets many messages that name towns and ask for no trip
# Share of the commune vocabulary (outside the big shared cities) kept for test only.
HELD_OUT_SHARE = 0.35
N_SHARED_CITIES = 150
ROLE_LABEL = {"D": "DEPART", "A": "ARRIVEE", "V1": "VIA", "V2": "VIA", "V3": "VIA"}
Segment = tuple[str, str | None]


# ---------------------------------------------------------------------------------------------- places


@dataclass(frozen=True)
class Place:
    """One place as the generator writes it. kind: commune | station | gare (Paris "gare du Nord",
    written after `la`) | airport (written after `l'`)."""

    name: str
    kind: str
    alternates: tuple[str, ...] = ()
    city: str = ""


@cache
def place_key(name: str) -> str:
    """Vocabulary key: the normalised name (case, accents and apostrophe style do not make a new place)."""
    return normalise_text(name.replace("-", " "))


def _held_out(key: str) -> bool:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELD_OUT_SHARE


@dataclass
class Pool:
    items: list[Place]
    weights: list[float]

    def __post_init__(self) -> None:
        self._cum: list[float] = []
        total = 0.0
        for w in self.weights:
            total += w
            self._cum.append(total)

    def pick(self, rng: random.Random) -> Place:
        x = rng.random() * self._cum[-1]
        return self.items[min(bisect.bisect_right(self._cum, x), len(self.items) - 1)]


@dataclass
class Vocabulary:
    """The places one split may use: big shared cities, small communes of its side, stations of its side."""

    big: Pool
    small: Pool
    articled: Pool
    station: Pool
    ambiguous: Pool


def _station_place(s: Station) -> Place:
    if s.kind == "gare":
        return Place(s.name, "gare", city=s.city)
    if s.name.startswith("Aéroport"):
        return Place(s.name, "airport", city=s.city)
    return Place(s.name, "station", city=s.city)


def build_vocabularies() -> dict[str, Vocabulary]:
    """Split the gazetteer by name: shared big cities, then each other name goes to train or to test."""
    by_name: dict[str, Commune] = {}
    for c in communes():
        if c.name.split(" ")[0] in ("Aux", "Au"):
            continue  # "Aux Marais" would read as a preposition: keep the convention checks simple
        if c.name not in by_name or c.population > by_name[c.name].population:
            by_name[c.name] = c
    ranked = sorted(by_name.values(), key=lambda c: (-c.population, c.name))
    shared_names = {c.name for c in ranked[:N_SHARED_CITIES]} | set(P.AMBIGUOUS_TOWNS) | set(P.ALWAYS_SHARED)
    vocab: dict[str, Vocabulary] = {}
    for split in ("train", "test"):
        big_items, big_w, small_items, small_w, art_items, art_w = [], [], [], [], [], []
        for c in ranked:
            place = Place(c.name, "commune", c.alternates, c.name)
            if c.name in shared_names:
                big_items.append(place)
                big_w.append(c.population**0.55)
                continue
            if _held_out(place_key(c.name)) != (split == "test"):
                continue
            # Favour towns over hamlets a little: people ask for Vierzon more often than for Vœgtlinshoffen.
            w = max(0.3, math.log10(c.population) - 2.2)
            small_items.append(place)
            small_w.append(w)
            if c.name.split(" ")[0] in ("Le", "La", "Les") or c.name.startswith("L'"):
                art_items.append(place)
                art_w.append(w)
        st_items, st_w = [], []
        seen: set[str] = set()
        for s in stations():
            if s.name in seen:
                continue
            seen.add(s.name)
            shared = s.kind in ("paris", "gare") or s.name in P.ALWAYS_SHARED
            if not shared and _held_out(place_key(s.name)) != (split == "test"):
                continue
            st_items.append(_station_place(s))
            st_w.append(3.0 if s.kind in ("paris", "gare") else 1.0)
        amb = [Place(n, "commune", by_name[n].alternates, n) for n in P.AMBIGUOUS_TOWNS if n in by_name]
        vocab[split] = Vocabulary(
            big=Pool(big_items, big_w),
            small=Pool(small_items, small_w),
            articled=Pool(art_items, art_w),
            station=Pool(st_items, st_w),
            ambiguous=Pool(amb, [1.0] * len(amb)),
        )
    return vocab


def pick_place(rng: random.Random, vocab: Vocabulary, hint: str) -> Place:
    """hint: any | st (a named station) | commune (no station: `la gare de X` wraps it)."""
    if hint == "st":
        return vocab.station.pick(rng)
    r = rng.random()
    if hint != "commune" and r < 0.12:
        return vocab.station.pick(rng)
    if r < 0.15:
        return vocab.ambiguous.pick(rng)
    if r < 0.22:
        return vocab.articled.pick(rng)
    if r < 0.60:
        return vocab.big.pick(rng)
    return vocab.small.pick(rng)


_ABBREV = (("Saint-", "St-"), ("Sainte-", "Ste-"), ("Saint-", "St "), ("Sainte-", "Ste "), ("Saint-", "St."))


def surface_name(rng: random.Random, place: Place) -> str:
    """The spelling a person types: mostly the name, sometimes a short form, `St-`, or spaces for hyphens."""
    name = place.name
    if place.kind != "commune":
        return name
    r = rng.random()
    if name in P.MISSPELLINGS and r < 0.08:
        return rng.choice(P.MISSPELLINGS[name])
    if place.alternates and r < 0.06:
        return rng.choice(place.alternates)
    if "Saint-" in name or "Sainte-" in name:
        if r < 0.18:
            old, new = rng.choice(_ABBREV)
            if old in name:
                return name.replace(old, new, 1)
    if "-" in name and rng.random() < 0.08:
        return name.replace("-", " ")
    return name


# --------------------------------------------------------------------------------------------- grammar


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Slot:
    name: str
    arg: str


@dataclass(frozen=True)
class Choice:
    options: tuple[tuple, ...]


def parse_template(src: str) -> tuple:
    """`[a|b]` picks one option (nestable), `{name}` a filler, `{prep:ROLE}` a place, `{VIAS}` the stops."""
    nodes, pos = _parse_seq(src, 0, top=True)
    if pos != len(src):
        raise ValueError(f"unbalanced template {src!r}")
    return nodes


def _parse_seq(src: str, pos: int, top: bool) -> tuple[tuple, int]:
    nodes: list = []
    buf: list[str] = []
    while pos < len(src):
        ch = src[pos]
        if ch in "|]" and not top:
            break
        if ch in "|]":
            raise ValueError(f"stray {ch!r} in template {src!r}")
        if ch == "[":
            if buf:
                nodes.append(Lit("".join(buf)))
                buf = []
            options = []
            pos += 1
            while True:
                seq, pos = _parse_seq(src, pos, top=False)
                options.append(seq)
                if pos >= len(src):
                    raise ValueError(f"unclosed [ in template {src!r}")
                if src[pos] == "]":
                    pos += 1
                    break
                pos += 1  # '|'
            nodes.append(Choice(tuple(options)))
            continue
        if ch == "{":
            end = src.index("}", pos)
            body = src[pos + 1 : end]
            name, _, arg = body.partition(":")
            if buf:
                nodes.append(Lit("".join(buf)))
                buf = []
            nodes.append(Slot(name, arg))
            pos = end + 1
            continue
        buf.append(ch)
        pos += 1
    if buf:
        nodes.append(Lit("".join(buf)))
    return tuple(nodes), pos


_PARSED: dict[str, tuple] = {}


def _parsed(src: str) -> tuple:
    tree = _PARSED.get(src)
    if tree is None:
        tree = _PARSED[src] = parse_template(src)
    return tree


_VOWELS = set("aeiouyàâäéèêëîïôöûüœAEIOUYÀÂÄÉÈÊËÎÏÔÖÛÜŒ")


class Builder:
    """Expands one template into segments, choosing places lazily so a slot can ask for a kind of place."""

    def __init__(self, rng: random.Random, vocab: Vocabulary) -> None:
        self.rng = rng
        self.vocab = vocab
        self.places: dict[str, Place] = {}
        self.surfaces: dict[str, str] = {}
        self.segments: list[Segment] = []
        self.lower_article = rng.random() < 0.35

    # -- places
    def place(self, role: str, hint: str) -> tuple[Place, str]:
        if role not in self.places:
            # Never Paris -> Paris Gare de Lyon: two places of one sentence are in different towns.
            taken = {p.city for p in self.places.values()}
            for _ in range(50):
                p = pick_place(self.rng, self.vocab, hint)
                if p.city not in taken:
                    break
            self.places[role] = p
            self.surfaces[role] = surface_name(self.rng, p)
        return self.places[role], self.surfaces[role]

    def emit(self, text: str, label: str | None = None) -> None:
        if text:
            self.segments.append((text, label))

    def place_slot(self, prep: str, role_spec: str) -> None:
        role, _, hint = role_spec.partition("@")
        # X, Y, Z: places named in the sentence that are not part of the trip. `A!`: the trip's own arrival named
        # again where it is not the trip (the return leg of "et le retour de Lyon à Nantes"): untagged.
        repeat = role.endswith("!")
        role = role.removesuffix("!")
        label = None if repeat else ROLE_LABEL.get(role)
        if label is None and not hint:
            hint = "commune"  # where someone lives or was born is a town, not a station
        if prep in ("gde", "ga", "g", "lag", "depuis_gare"):
            hint = "commune"
        place, name = self.place(role, hint or "any")
        if prep in ("gde", "ga", "g", "lag", "depuis_gare"):
            lead = {"gde": "de la gare ", "ga": "à la gare ", "g": "gare ", "lag": "la gare ",
                    "depuis_gare": "depuis la gare "}[prep]
            self.emit(lead)
            self._contracted("de", place, name, label)
            return
        if prep in ("de", "a", "jusqua"):
            self._contracted(prep, place, name, label)
            return
        article = self._article(place, prep)
        if prep not in ("bare", ""):
            self.emit(prep.replace("_", " ") + " ")
        if article:
            self.emit(article)
        self.emit(self._name_case(name), label)

    def _article(self, place: Place, prep: str) -> str:
        if place.kind == "gare":
            return "la " if self.rng.random() < (0.15 if prep in ("bare", "") else 0.8) else ""
        if place.kind == "airport":
            return "l'"
        return ""

    def _name_case(self, name: str) -> str:
        """`la Rochelle` as often as `La Rochelle`: the article belongs to the name either way."""
        if self.lower_article:
            for art in ("Le ", "La ", "Les ", "L'"):
                if name.startswith(art):
                    return art.lower() + name[len(art) :]
        return name

    def _contracted(self, prep: str, place: Place, name: str, label: str | None) -> None:
        """de/à + article: du Mans, au Havre, aux Sables-d'Olonne, d'Orléans; the article stays outside."""
        de = prep == "de"
        lead = {"de": "de ", "a": "à ", "jusqua": "jusqu'à "}[prep]
        if place.kind == "gare":
            self.emit(lead + "la ")
            self.emit(name, label)
            return
        if place.kind == "airport":
            self.emit("de l'" if de else lead + "l'")
            self.emit(name, label)
            return
        for art, du, au in (("Le ", "du ", "au "), ("Les ", "des ", "aux ")):
            if name.startswith(art) or (name.lower().startswith(art.lower()) and len(name) > len(art)):
                rest = name[len(art) :]
                if de:
                    self.emit(du)
                else:
                    self.emit(("jusqu'" if prep == "jusqua" else "") + au)
                self.emit(rest, label)
                return
        if de and name[0] in _VOWELS:
            self.emit("d'")
            self.emit(self._name_case(name), label)
            return
        self.emit(lead)
        self.emit(self._name_case(name), label)

    # -- expansion
    def expand(self, nodes: Sequence) -> None:
        for node in nodes:
            if isinstance(node, Lit):
                self.emit(node.text)
            elif isinstance(node, Choice):
                self.expand(self.rng.choice(node.options))
            elif node.name == "VIAS":
                self.vias(node.arg)
            elif node.arg and node.name not in P.FILLERS:
                self.place_slot(node.name, node.arg)
            elif node.name in ROLE_LABEL or node.name in ("X", "Y", "Z"):
                self.place_slot("bare", node.name + (f"@{node.arg}" if node.arg else ""))
            else:
                options = P.FILLERS.get(node.name)
                if options is None:
                    raise ValueError(f"unknown slot {{{node.name}}}")
                self.expand(_parsed(self.rng.choice(options)))

    def vias(self, arg: str) -> None:
        r = self.rng.random()
        if arg == "+":
            n = 1 if r < 0.5 else 2 if r < 0.85 else 3
        elif arg in ("1", "2", "3"):
            n = int(arg)
        else:
            n = 0 if r < 0.6 else 1 if r < 0.86 else 2 if r < 0.96 else 3
        if n:
            self.expand(_parsed(self.rng.choice(P.VIA_FORMS[n])))


# ----------------------------------------------------------------------------------------------- noise

_ACCENT_FREE = {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"}


def strip_accents(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ACCENT_FREE:
            out.append(_ACCENT_FREE[ch])
            continue
        base = unicodedata.normalize("NFD", ch)[0]
        out.append(base if base.isalpha() else ch)
    return "".join(out)


def typo(rng: random.Random, word: str) -> str:
    """One keyboard slip: a doubled, swapped or dropped letter (the place keeps its typed spelling)."""
    letters = [i for i, c in enumerate(word) if c.isalpha()]
    if len(letters) < 3:
        return word
    for _ in range(10):
        op = rng.choice(("double", "swap", "drop", "drop"))
        i = rng.choice(letters)
        if op == "double":
            return word[: i + 1] + word[i] + word[i + 1 :]
        if op == "swap" and i + 1 < len(word) and word[i + 1].isalpha() and word[i] != word[i + 1]:
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if op == "drop" and 0 < i < len(word) - 1 and word[i - 1].isalpha() and word[i + 1].isalpha():
            return word[:i] + word[i + 1 :]
    return word


def _typo_in_text(rng: random.Random, text: str) -> str:
    """A typo in one word of 4+ letters of a plain segment; spaces and punctuation never move."""
    spans = []
    start = None
    for i, ch in enumerate(text + " "):
        if ch.isalpha() and start is None:
            start = i
        elif not ch.isalpha() and start is not None:
            if i - start >= 4:
                spans.append((start, i))
            start = None
    if not spans:
        return text
    a, b = rng.choice(spans)
    return text[:a] + typo(rng, text[a:b]) + text[b:]


_SPACE_BEFORE = ("?", "!", ":", ";", ".", ",")


def _drop_spaces(rng: random.Random, text: str) -> str:
    """`Lyon ?` -> `Lyon?`, `Bonjour, je` -> `Bonjour,je`: only around . , ; : ! ? (never a hyphen)."""
    out = text
    for p in _SPACE_BEFORE:
        if rng.random() < 0.7:
            out = out.replace(" " + p, p)
        if rng.random() < 0.5:
            out = out.replace(p + " ", p)
    return out


def apply_noise(rng: random.Random, segments: list[Segment], style: str) -> tuple[list[Segment], list[str]]:
    """Returns the noisy segments and the names of the noises applied (kept in the row for analysis)."""
    applied: list[str] = []
    segs = list(segments)
    r = rng.random()
    if style == "sms" or r < 0.20:
        segs = [(t.lower(), lab) for t, lab in segs]
        applied.append("lower")
    elif r < 0.24:
        segs = [(t.upper(), lab) for t, lab in segs]
        applied.append("caps")
    elif r < 0.30:
        segs = [(t.lower() if lab else t, lab) for t, lab in segs]
        applied.append("lower_places")
    if rng.random() < (0.45 if style == "sms" or "lower" in applied else 0.12):
        segs = [(strip_accents(t), lab) for t, lab in segs]
        applied.append("no_accents")
    n_typos = 0
    r = rng.random()
    if r < 0.20:
        n_typos = 1 if r < 0.16 else 2
    for _ in range(n_typos):
        place_idx = [i for i, (t, lab) in enumerate(segs) if lab and sum(c.isalpha() for c in t) >= 4]
        word_idx = [i for i, (t, lab) in enumerate(segs) if not lab and any(c.isalpha() for c in t)]
        if place_idx and (rng.random() < 0.55 or not word_idx):
            i = rng.choice(place_idx)
            text, lab = segs[i]
            parts = text.split(" ")
            k = rng.randrange(len(parts))
            parts[k] = _typo_in_text(rng, parts[k]) if len(parts[k]) >= 4 else parts[k]
            new = " ".join(parts)
            if new != text:
                segs[i] = (new, lab)
                applied.append("typo_place")
        elif word_idx:
            i = rng.choice(word_idx)
            text, lab = segs[i]
            new = _typo_in_text(rng, text)
            if new != text:
                segs[i] = (new, lab)
                applied.append("typo")
    if rng.random() < 0.12:
        segs = [(t if lab else _drop_spaces(rng, t), lab) for t, lab in segs]
        applied.append("no_space")
    if rng.random() < 0.05:
        segs = [(t.replace("'", "’"), lab) for t, lab in segs]
        applied.append("curly_apostrophe")
    return segs, applied


# -------------------------------------------------------------------------------------------- sentences


_ELIDED_DE = re.compile(r"(?<![^\W\d_])([dD])' +(?=(.?))")
_MULTI_SPACE = re.compile(r" {2,}")
_SPACE_BEFORE_STOP = re.compile(r" +(,|\.(?!\.))")
_DOUBLE_COMMA = re.compile(r",(?: *,)+")
_COMMA_BEFORE_STOP = re.compile(r", *(?=[.!?;:])")


def _fix_elision(text: str, next_char: str) -> str:
    """`j'ai besoin d'` + ` un billet` -> `d'un billet`; + ` deux billets` -> `de deux billets`."""

    def repl(m: re.Match[str]) -> str:
        nxt = m.group(2) or next_char
        if nxt and (nxt in _VOWELS or nxt in "hH"):
            return m.group(1) + "'"
        return m.group(1) + "e "

    return _ELIDED_DE.sub(repl, text)


def _tidy(segments: list[Segment]) -> list[Segment]:
    """Collapse doubled spaces and spaces before a comma or full stop left by empty options; trim the ends.

    Only unlabelled text is edited (entities never hold outer spaces), so no entity boundary moves."""
    merged: list[Segment] = []
    for text, label in segments:
        if label is None and merged and merged[-1][1] is None:
            merged[-1] = (merged[-1][0] + text, None)
        elif text:
            merged.append((text, label))
    out: list[Segment] = []
    for i, (text, label) in enumerate(merged):
        if label is None:
            nxt = merged[i + 1][0][:1] if i + 1 < len(merged) else ""
            text = _MULTI_SPACE.sub(" ", _fix_elision(text, nxt))
            text = _DOUBLE_COMMA.sub(",", _SPACE_BEFORE_STOP.sub(r"\1", text))
            text = _COMMA_BEFORE_STOP.sub("", text)
            if i == 0:
                text = text.lstrip(" ,")
            if i == len(merged) - 1:
                text = text.rstrip(" ,")
            if not text:
                continue
        out.append((text, label))
    return out


def _capitalise(rng: random.Random, segments: list[Segment], style: str) -> list[Segment]:
    if not segments or style == "sms" or rng.random() < 0.12:
        return segments
    text, lab = segments[0]
    return [(text[:1].upper() + text[1:], lab), *segments[1:]]


@dataclass(frozen=True)
class Family:
    name: str
    group: str
    templates: tuple[str, ...]
    weight: float = 1.0
    style: str = ""


def families() -> list[Family]:
    return [Family(*f) if not isinstance(f, Family) else f for f in P.FAMILIES]


def build_phrase(rng: random.Random, vocab: Vocabulary, family: Family, split: str) -> Phrase:
    builder = Builder(rng, vocab)
    builder.expand(_parsed(rng.choice(family.templates)))
    segments = _capitalise(rng, _tidy(builder.segments), family.style)
    segments, noise = apply_noise(rng, segments, family.style)
    text_parts: list[str] = []
    entities: list[Entity] = []
    pos = 0
    for text, label in segments:
        if label:
            entities.append(Entity(pos, pos + len(text), label))
        text_parts.append(text)
        pos += len(text)
    text = "".join(text_parts)
    entities.sort()
    spans_to_bio(text, entities)  # raises PhraseError if a span does not fall on word boundaries
    for e in entities:
        surface = text[e.start : e.end]
        if surface != surface.strip() or not surface:
            raise AssertionError(f"entity with outer spaces in {text!r}")
    meta = {"split": split, "pattern": family.name, "group": family.group}
    if noise:
        meta["noise"] = noise
    return Phrase(text, tuple(entities), meta)


def generate_split(
    split: str, n: int, seed: int, vocab: Vocabulary, seen: set[str], fams: list[Family] | None = None
) -> list[Phrase]:
    """n phrases for one split; `seen` (normalised texts) is shared so no text repeats across splits."""
    rng = random.Random(f"trajet-generate-{seed}-{split}")
    fams = fams or families()
    trip = [f for f in fams if f.group != "no_trip"]
    no_trip = [f for f in fams if f.group == "no_trip"]
    trip_w = [f.weight for f in trip]
    no_trip_w = [f.weight for f in no_trip]
    # Exactly NO_TRIP_SHARE of the rows, at shuffled positions.
    flags = [i < round(n * NO_TRIP_SHARE) for i in range(n)]
    rng.shuffle(flags)
    out: list[Phrase] = []
    for is_no_trip in flags:
        for _attempt in range(100):
            pool, weights = (no_trip, no_trip_w) if is_no_trip else (trip, trip_w)
            family = rng.choices(pool, weights)[0]
            phrase = build_phrase(rng, vocab, family, split)
            key = normalise_text(phrase.text)
            if key not in seen:
                seen.add(key)
                out.append(phrase)
                break
        else:
            raise RuntimeError(f"could not draw a new sentence after 100 tries ({split})")
    return out


def generate(
    seed: int = DEFAULT_SEED, counts: dict[str, int] | None = None
) -> dict[str, list[Phrase]]:
    counts = counts or DEFAULT_COUNTS
    vocab = build_vocabularies()
    seen: set[str] = set()
    return {split: generate_split(split, n, seed, vocab[split], seen) for split, n in counts.items()}


def write_dataset(
    out_dir: Path, seed: int = DEFAULT_SEED, counts: dict[str, int] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Path]:
    data = generate(seed, counts)
    paths = {}
    for split, phrases in data.items():
        path = Path(out_dir) / f"{split}.jsonl"
        write_jsonl(path, phrases)
        paths[split] = path
        if progress:
            progress(split, len(phrases))
    return paths
