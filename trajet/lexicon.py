"""Gazetteer match features: which words of a sentence spell a known place, fed to the model as token types.

Why: a small encoder trained from scratch on generated sentences sees a few thousand place names; a real
request names any of France's communes and stations, and the encoder has to guess from context alone where
an unseen name begins and ends (`Saint-Martin-de-Ré`, `la gare du Nord`, `Lyon Part-Dieu`). The gazetteer
already knows. Each word gets 0 (no match), 1 (first word of a known place) or 2 (inside one), and the
model reads it through its token-type embedding, so nothing else in the architecture changes. It is a hint,
not a rule: person names that are towns (`Florence`), places outside the trip and no-trip sentences still
depend on the context the model learns, and training hides the hint on some places so that a place missing
from the gazetteer (a typo, a hamlet) is still found.

The lexicon a model was trained with is saved in its directory, so a model pulled from the registry reads
exactly the features it learned on, whatever gazetteer the machine that runs it has.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from trajet.errors import TrajetError
from trajet.phrases import normalise_text, tokenize

FEATURE = "gazetteer-bio-v1"  # written in the model's config.json as `trajet_features`
LEXICON_FILE = "trajet_lexicon.txt"
NONE, BEGIN, INSIDE = 0, 1, 2
N_TYPES = 3
ARTICLES = ("le", "la", "les", "l'")
# Never a place on their own (an article-less variant of `La` or a stray alternate would otherwise be).
FUNCTION_WORDS = frozenset("le la les l' de du des d' à a au aux en et y".split())


def _words(text: str) -> tuple[str, ...]:
    """Folded words: case, accents and apostrophe style do not change a match (`saint etienne`, `orleans`);
    the same key the store uses for duplicates (`phrases.normalise_text`)."""
    return tuple(normalise_text(t.text) for t in tokenize(text))


_SAINT = re.compile(r"\b(s)ain(te?)\b", re.IGNORECASE)


def name_keys(name: str) -> set[tuple[str, ...]]:
    """The word sequences a place name is typed as: as written, hyphens as spaces, `St`/`Ste` for
    `Saint`/`Sainte`, without its article."""
    forms = {name, _SAINT.sub(r"\1\2", name)}
    keys = {_words(form) for form in forms} | {_words(form.replace("-", " ")) for form in forms}
    for key in list(keys):
        if len(key) > 1 and key[0] in ARTICLES:
            keys.add(key[1:])
    return {k for k in keys if k and not (len(k) == 1 and k[0] in FUNCTION_WORDS)}


class Lexicon:
    """Folded place names as word tuples, indexed by first word for a greedy longest match."""

    def __init__(self, entries: Iterable[tuple[str, ...]]) -> None:
        self.entries = frozenset(e for e in entries if e)
        lengths: dict[str, set[int]] = {}
        for entry in self.entries:
            lengths.setdefault(entry[0], set()).add(len(entry))
        self._lengths = {first: sorted(ls, reverse=True) for first, ls in lengths.items()}

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> Lexicon:
        entries: set[tuple[str, ...]] = set()
        for name in names:
            entries |= name_keys(name)
        return cls(entries)

    @classmethod
    def from_gazetteer(cls) -> Lexicon:
        """Every commune (name, ascii form, alternates) and station of data/places."""
        from trajet.places import communes, stations

        names: list[str] = []
        for c in communes():
            names += [c.name, c.ascii, *c.alternates]
        for s in stations():
            names.append(s.name)
        return cls.from_names(names)

    def save(self, path: Path) -> None:
        lines = sorted(" ".join(e) for e in self.entries)
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TrajetError(f"{path}: the model expects gazetteer features but its lexicon file is missing") from None
        except UnicodeDecodeError as exc:
            raise TrajetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        return cls(tuple(line.split(" ")) for line in text.splitlines() if line.strip())

    def word_features(self, words: Sequence[str]) -> list[int]:
        """0/1/2 per word; at each position the longest known name wins, then matching resumes after it."""
        folded = [normalise_text(w) for w in words]
        out = [NONE] * len(words)
        i = 0
        while i < len(folded):
            for n in self._lengths.get(folded[i], ()):
                if i + n <= len(folded) and tuple(folded[i : i + n]) in self.entries:
                    out[i] = BEGIN
                    for k in range(i + 1, i + n):
                        out[k] = INSIDE
                    i += n
                    break
            else:
                i += 1
        return out


def drop_spans(features: Sequence[int], keep: Sequence[bool]) -> list[int]:
    """The features with the k-th matched span zeroed where keep[k] is False (training-time hint dropout)."""
    out = list(features)
    span = -1
    for i, f in enumerate(features):
        if f == BEGIN:
            span += 1
        if f != NONE and span < len(keep) and not keep[span]:
            out[i] = NONE
    return out


def model_lexicon(model_dir: Path, feature: str | None) -> Lexicon | None:
    """The lexicon saved with a model whose config asks for gazetteer features (`trajet_features` in its
    config.json); None for a plain model."""
    if feature is None:
        return None
    if feature != FEATURE:
        raise TrajetError(f"{model_dir}: unknown input features {feature!r} (this Trajet reads {FEATURE!r})")
    return Lexicon.load(Path(model_dir) / LEXICON_FILE)


def token_types(features: Sequence[int], word_ids: Sequence[int | None]) -> list[int]:
    """Word features spread to every sub-token of the word; special tokens get 0."""
    return [NONE if wid is None else features[wid] for wid in word_ids]
