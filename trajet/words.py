"""The French word tokenizer's core: the token pattern, glued-word splitting and text folding.

It sits below the gazetteer (trajet.lexicon reads place names with it) and below the phrase model
(trajet.phrases adds the gazetteer's default splitter on top), so neither has to import the other.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

# Elided articles/pronouns split from the following word (d'Orléans -> d' + Orléans) so that the place
# name alone can be an entity. Only at the start of a token: "Sables-d'Olonne" and "aujourd'hui" stay whole.
_ELISION_BODY = r"(?i:jusqu|lorsqu|puisqu|quoiqu|presqu|qu|[dljmnstc])['’]"
_ELISION = _ELISION_BODY + r"(?=\w)"
# A word may hold inner hyphens and apostrophes (Saint-Étienne, Villeneuve-d'Ascq) but never ends with one.
_WORD = r"\w+(?:[-'’]\w+)*"
_PUNCT = r"->|=>|\.\.\.|[^\w\s]"
_TOKEN_RE = re.compile(f"{_ELISION}|{_WORD}|{_PUNCT}")
_ELISION_RE = re.compile(f"^{_ELISION_BODY}$")
# Prepositions and articles people glue to the next place when they type fast (deLyon, aParis, auHavre,
# jusqu'àNice: the elided jusqu' is split first), folded as place names are (à -> a).
GLUED_PREFIXES = frozenset("a au aux de des du en par pour vers via depuis".split())
GLUED_MIN_CHARS = 3  # a shorter remainder (Eu, Y) is a commune and a piece of too many words
_GLUED_STARTS = tuple(sorted({p[0] for p in GLUED_PREFIXES}))


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


class WordSplitter:
    """Splits a word people glued together when its pieces are known places and the word is not a known word.

    `names`: the folded one-word place names a piece between hyphens may be (`lyon`, `havre`,
    `saint-etienne`); `glued`: those a glued preposition may stand before (towns of some size: villages named
    like word endings, `Ris`, `Sap`, `Mire`, would cut `Parris`, `asap`, `amire`); `whole`: folded words never
    split (every word of a known place name, so `Saint-Étienne`, `Aix-en-Provence` or `Bar-le-Duc` stay whole,
    and French words a split would break: `pardon` is not par + Don, `avion` not a + Vion). A word is cut after
    a glued preposition or article (`deLyon` -> de + Lyon) and at hyphens between places (`Lyon-Paris` ->
    Lyon - Paris); `/`, `>`, `->`, `=>` and `→` are punctuation already. Case and accents never change the
    answer: every test is on folded text.
    """

    def __init__(self, names: Iterable[str] = (), whole: Iterable[str] = (), glued: Iterable[str] | None = None) -> None:
        self.names = frozenset(names)
        self.glued = self.names if glued is None else frozenset(glued)
        self.whole = frozenset(whole) | self.names
        self._seen: dict[str, list[tuple[int, int]] | None] = {}  # requests repeat their words

    def _place(self, word: str) -> bool:
        return normalise_text(word) in self.names

    def split(self, word: str) -> list[tuple[int, int]] | None:
        """The (start, end) pieces of `word` (a hyphen is a piece of its own), or None to keep it whole."""
        if not self.names:
            return None
        if word not in self._seen:
            if len(self._seen) >= 200_000:
                self._seen.clear()
            self._seen[word] = self._split(word)
        return self._seen[word]

    def _split(self, word: str) -> list[tuple[int, int]] | None:
        folded = normalise_text(word)
        if folded in self.whole or ("-" not in word and not folded.startswith(_GLUED_STARTS)):
            return None
        bounds = [0] + [k for k, ch in enumerate(word) if ch == "-"] + [len(word)]
        # best[j]: fewest places covering the hyphen segments before bounds[j] (a glued prefix only at 0).
        best: list[tuple[int, list[tuple[int, int]]] | None] = [None] * len(bounds)
        best[0] = (0, [])
        for j in range(1, len(bounds)):
            for i in range(j):
                if best[i] is None:
                    continue
                start = bounds[i] + (i > 0)
                piece = word[start : bounds[j]]
                cuts = self._cuts(piece, first=i == 0)
                if cuts is None:
                    continue
                pieces = best[i][1] + ([(bounds[i], bounds[i] + 1)] if i > 0 else [])
                pieces += [(start + a, start + b) for a, b in cuts]
                if best[j] is None or best[i][0] + 1 < best[j][0]:
                    best[j] = (best[i][0] + 1, pieces)
        found = best[-1]
        return found[1] if found is not None and len(found[1]) > 1 else None

    def _cuts(self, piece: str, *, first: bool) -> list[tuple[int, int]] | None:
        """`piece` as one place, or (first piece of the word only) a glued prefix then a place."""
        if self._place(piece):
            return [(0, len(piece))]
        if not first:
            return None
        for k in range(1, min(len(piece), 8)):
            rest = piece[k:]
            if (normalise_text(piece[:k]) in GLUED_PREFIXES and rest[:1].isalpha()
                    and len(normalise_text(rest)) >= GLUED_MIN_CHARS and normalise_text(rest) in self.glued):
                return [(0, k), (k, len(piece))]
        return None


NO_SPLIT = WordSplitter()  # the bare pattern: what the gazetteer's own names are read with


def scan_spans(text: str, start: int, end: int, splitter: WordSplitter) -> Iterator[tuple[int, int]]:
    for m in _TOKEN_RE.finditer(text, start, end):
        pieces = splitter.split(m.group()) if m.group()[:1].isalnum() and len(m.group()) > 3 else None
        if pieces is None:
            yield m.span()
        else:
            yield from ((m.start() + a, m.start() + b) for a, b in pieces)


def split_words(text: str, splitter: WordSplitter) -> list[Token]:
    """Words and punctuation of `text`, glued words cut by `splitter` (NO_SPLIT: the bare pattern). The loop of
    `scan_spans`, written out: every request goes through here, and the generator cost a third of it."""
    split = splitter.split
    out: list[Token] = []
    for m in _TOKEN_RE.finditer(text):
        word = m.group()
        pieces = split(word) if len(word) > 3 and word[:1].isalnum() else None
        if pieces is None:
            out.append(Token(word, m.start(), m.end()))
        else:
            at = m.start()
            out.extend(Token(text[at + a : at + b], at + a, at + b) for a, b in pieces)
    return out


def is_elision(token: str) -> bool:
    return bool(_ELISION_RE.match(token))


@lru_cache(maxsize=1 << 16)
def normalise_text(text: str) -> str:
    """Key for duplicate detection: case, accents, apostrophe style and spacing do not make a new phrase. Also
    the folded form of every word the lexicon looks up: cached, since requests repeat their words."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    stripped = stripped.replace("’", "'").lower()
    return " ".join(stripped.split())
