"""Constrained decoding: the best tag sequence that is a valid trip, not the best tag of each word alone.

Why: a token classifier picks each word's tag on its own, so it can answer sequences no annotation can
have: an `I-VIA` after `O`, a `B-DEPART I-ARRIVEE` span, or two departures in "Paris Lyon Dijon" where the
last word should be the stop. The data contract (trajet.validate refuses such rows) says a request has at
most one DEPART and one ARRIVEE and well-formed IOB2 spans. Among all sequences that keep those rules, this
module returns the one with the highest total log-probability (Viterbi over tag x "departure used" x
"arrival used"). When the per-word best tags already keep the rules they are that optimum, so the search runs
only on the few sentences that break one, and costs nothing on the rest.

One more rule comes from the words themselves: no place name ends on a function word (`la`, `de`, `l'`, `à`...),
a preposition, a conjunction, a pronoun or a possessive (`sur`, `qui`, `je`, `votre`...): none of the gazetteer's
33,000 spellings of names and none of the annotated entities in `data/` does (checked when the list was set;
`tests/test_decode.py` checks it again). Yet a small encoder tags the `la` of "la carte Avantage" as a place now
and then, and lets a name it has never seen run into the next word ("Grésanerque sur Lormoigny", "X qui").
Words that end a name stay open: `Vers`, `entre`, `notre`, `via` (Font-Romeu-Odeillo-Via), `ce` (Les Ponts-de-Cé),
`elle` (Moon-sur-Elle), `son` (Lalande-en-Son), all written without hyphens now and then. Words marked `closed` can
begin or sit inside an entity (`La Rochelle`, `Paris Gare de Lyon`), never end one; nor can a word that ends
on punctuation, as no annotation may (ingestion's "span edge is space or punctuation").
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

from trajet.labels import LABELS
from trajet.lexicon import FUNCTION_WORDS
from trajet.phrases import normalise_text

_NEG = -math.inf
_O = LABELS.index("O")
_TYPE = [None if t == "O" else t[2:] for t in LABELS]
_BEGIN = [t.startswith("B-") for t in LABELS]
_INSIDE = [t.startswith("I-") for t in LABELS]
# Entity types of which a request names at most one.
ONCE = ("DEPART", "ARRIVEE")


def closed_words(words: Sequence[str]) -> list[bool]:
    """Which words cannot end an entity: the closed-class words (`NEVER_LAST`), and words ending on punctuation or a symbol (the
    `St.` of `St.Herlain`), which ingestion refuses as a span's edge."""
    out = []
    for w in words:
        closed = _CLOSED.get(w)
        if closed is None:
            closed = normalise_text(w) in NEVER_LAST or bool(w) and unicodedata.category(w[-1])[0] in "PZSC"
            if len(_CLOSED) >= 100_000:
                _CLOSED.clear()
            _CLOSED[w] = closed
        out.append(closed)
    return out


_CLOSED: dict[str, bool] = {}  # per word: requests repeat their words
NEVER_LAST = FUNCTION_WORDS | frozenset(
    "sur sous par pour dans avec chez depuis jusqu jusque puis ou mais donc car sans selon pendant apres "
    "qui que quoi dont qu' je j' tu il nous vous ils elles on me m' te t' se s' ne n' moi toi lui leur "
    "c' cet cette ces mon ma mes ton ta tes sa ses votre nos vos leurs un une".split()
)


def is_valid(tag_ids: Sequence[int], closed: Sequence[bool] | None = None) -> bool:
    """IOB2 spans well formed, at most one DEPART and one ARRIVEE entity, none ending on a `closed` word."""
    prev = _O
    seen: set[str] = set()
    for i, t in enumerate(tag_ids):
        if closed is not None and i > 0 and _TYPE[prev] is not None and not _INSIDE[t] and closed[i - 1]:
            return False
        if _INSIDE[t]:
            if _TYPE[prev] != _TYPE[t]:
                return False
        elif _BEGIN[t]:
            kind = _TYPE[t]
            if kind in ONCE:
                if kind in seen:
                    return False
                seen.add(kind)
        prev = t
    return not (closed is not None and tag_ids and _TYPE[prev] is not None and closed[len(tag_ids) - 1])


def _argmax(row: Sequence[float]) -> int:
    best, best_v = 0, row[0]
    for i in range(1, len(row)):
        if row[i] > best_v:
            best, best_v = i, row[i]
    return best


def decode(log_probs: Sequence[Sequence[float]], closed: Sequence[bool] | None = None,
           best: list[int] | None = None) -> list[int]:
    """Tag ids, one per word, from per-word log-probabilities over `LABELS` (any monotone score works);
    `closed` (see `closed_words`) marks the words that cannot end an entity. `best`: each row's best tag (the
    first of equal maxima) when the caller has it already (the predictor takes them for a whole batch at once)."""
    if best is None:
        best = [_argmax(row) for row in log_probs]
    if is_valid(best, closed):
        return best
    return viterbi(log_probs, closed)


def _transitions() -> tuple[tuple[tuple[tuple[int, int, int], ...], ...], ...]:
    """Per "an open entity must go on" (0/1), per state: the allowed (tag, next state) moves, in tag order."""
    n_tags = len(LABELS)
    once_bit = {kind: 1 << k for k, kind in enumerate(ONCE)}
    n_states = n_tags * (1 << len(ONCE))
    table = []
    for must_go_on in (False, True):
        per_state = []
        for state in range(n_states):
            prev, used = state % n_tags, state // n_tags
            moves = []
            for t in range(n_tags):
                if must_go_on and _TYPE[prev] is not None and not _INSIDE[t]:
                    continue
                if _INSIDE[t]:
                    if _TYPE[prev] != _TYPE[t]:
                        continue
                    nxt_used = used
                elif _BEGIN[t]:
                    bit = once_bit.get(_TYPE[t], 0)  # type: ignore[arg-type]
                    if used & bit:
                        continue
                    nxt_used = used | bit
                else:
                    nxt_used = used
                moves.append((t, nxt_used * n_tags + t))
            per_state.append(tuple(moves))
        table.append(tuple(per_state))
    return tuple(table)


_MOVES = _transitions()  # the rules are fixed: built once, not for every word of every sentence


def viterbi(log_probs: Sequence[Sequence[float]], closed: Sequence[bool] | None = None) -> list[int]:
    """The highest-scoring valid sequence. A state is (tag, departure opened, arrival opened); the moves a
    state allows come from `_MOVES`, visited in the same order (states, then tags) so ties fall the same way."""
    n_tags = len(LABELS)
    n_states = len(_MOVES[0])
    score = [_NEG] * n_states
    score[_O] = 0.0  # before the first word: as if after an O, nothing used (state of O with nothing used)
    back: list[list[int]] = []
    for i, row in enumerate(log_probs):
        new = [_NEG] * n_states
        ptr = [-1] * n_states
        moves = _MOVES[closed is not None and i > 0 and bool(closed[i - 1])]  # an entity open at i-1 continues
        for state in range(n_states):
            s = score[state]
            if s == _NEG:
                continue
            for t, j in moves[state]:
                cand = s + row[t]
                if cand > new[j]:
                    new[j], ptr[j] = cand, state
        back.append(ptr)
        score = new
    if closed is not None and log_probs and closed[-1]:  # nor may one end with the sentence
        score = [v if _TYPE[st % n_tags] is None else _NEG for st, v in enumerate(score)]
    state = max(range(n_states), key=score.__getitem__)
    tags: list[int] = []
    for ptr in reversed(back):
        tags.append(state % n_tags)
        state = ptr[state]
    tags.reverse()
    return tags
