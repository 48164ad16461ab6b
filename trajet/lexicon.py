"""Gazetteer match features: which words of a sentence spell a known place, fed to the model as token types.

Why: a small encoder trained from scratch on generated sentences sees a few thousand place names; a real
request names any of France's communes and stations, and the encoder has to guess from context alone where
an unseen name begins and ends (`Saint-Martin-de-Ré`, `la gare du Nord`, `Lyon Part-Dieu`). The gazetteer
already knows. Each word gets 0 (no match), 1 (first word of a known place) or 2 (inside one), and the
model reads it through its token-type embedding, so nothing else in the architecture changes. It is a hint,
not a rule: person names that are towns (`Florence`), places outside the trip and no-trip sentences still
depend on the context the model learns, and training hides the hint on some places so that a place missing
from the gazetteer (a typo, a hamlet) is still found.

Typed names miss an exact match (`Monpellier`, `Perpigan`, `Noisy le Grnd`): with `fuzzy`, a span that matches
no name exactly but is one keyboard slip away from one (a letter dropped, doubled, swapped with its neighbour or
replaced) gets its own pair of types, 3 and 4. Words the training sentences use as context (`pour`, `dans`,
`demain`: each one slip from some commune) never start or end such a span: they are the words the model
already knows, saved with the lexicon. One-slip matches keep their own types because they are weaker evidence
than exact ones: the model learns from the context how far to trust them.

People mistype the words around the places too (`horaiires`, `puuis`, `dpeuis`, `verrs`), and to a small encoder
an unknown word beside a place looks like part of it, or like a place of its own; a misspelled cue (`puuis`,
`jusqqu'à`) also loses what it says about the next place's role. With `spelling`, a word that matches no place,
was seen fewer than SEEN_MIN_COUNT times in the training sentences and is one slip from a frequent context word
of those sentences (`horaires`, `puis`, `depuis`, `vers`) is read as that word and typed 5, so the model sees
the word that was meant and knows it was corrected. Only rare forms are corrected: `Marie`, `Camille` or
`elle`, frequent in training, are words of their own, not slips of `mairie`, `famille` or `aller`.

The lexicon a model was trained with is saved in its directory, so a model pulled from the registry reads
exactly the features it learned on, whatever gazetteer the machine that runs it has.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from trajet.errors import TrajetError
from trajet.words import NO_SPLIT, WordSplitter, normalise_text, split_words

FEATURE = "gazetteer-bio-v1"  # written in the model's config.json as `trajet_features`: exact matches
FUZZY_FEATURE = "gazetteer-bio-fuzzy-v1"  # exact and one-slip matches
SPELL_FEATURE = "gazetteer-bio-fuzzy-spell-v1"  # exact and one-slip matches, misspelled context words read right
FEATURES = (FEATURE, FUZZY_FEATURE, SPELL_FEATURE)
LEXICON_FILE = "trajet_lexicon.txt"
KNOWN_WORDS_FILE = "trajet_known_words.txt"  # context words of the training sentences (fuzzy lexicons)
VOCABULARY_FILE = "trajet_vocabulary.txt"  # word, its usual form, times tagged O, times seen (spelling lexicons)
KNOWN_MIN_COUNT = 2  # a word typed once (often a typo) is not "known"
SEEN_MIN_COUNT = 3  # a form seen this often in training is a word the model learnt, never corrected
CONTEXT_MIN_COUNT = 10  # a word corrections may lead to: tagged O this often...
CONTEXT_MIN_SHARE = 0.8  # ...and at least this share of the times it was seen (not `paris`, often a place),
CONTEXT_MIN_SHARE_NOT_PLACE = 0.3  # or this share for a word no place is named (`gare`, often in station names)
SPELL_MIN_CHARS = 4  # shorter words are one slip from too many others
NONE, BEGIN, INSIDE, FUZZY_BEGIN, FUZZY_INSIDE, CONTEXT_SLIP = 0, 1, 2, 3, 4, 5
BEGINS = (BEGIN, FUZZY_BEGIN)
PLACE_TYPES = (BEGIN, INSIDE, FUZZY_BEGIN, FUZZY_INSIDE)
FUZZY_MIN_CHARS = 4  # shorter spans are one slip from too many names (`pour`, `dans`, `ter`)
FUZZY_MAX_WORDS = 4
SCAN_QUERIES = 200  # one-slip lookups answered without the index; then it is built (Lexicon._one_slip_candidates)
ARTICLES = ("le", "la", "les", "l'")
# Never a place on their own (an article-less variant of `La` or a stray alternate would otherwise be).
FUNCTION_WORDS = frozenset("le la les l' de du des d' à a au aux en et y".split())


def _words(text: str) -> tuple[str, ...]:
    """Folded words: case, accents and apostrophe style do not change a match (`saint etienne`, `orleans`);
    the same key the store uses for duplicates (`phrases.normalise_text`). Read with the bare pattern: a
    name is never split into places (the splitter is built from these keys)."""
    return tuple(normalise_text(t.text) for t in split_words(text, NO_SPLIT))


_SAINT = re.compile(r"\b(s)ain(te?)\b", re.IGNORECASE)


def name_keys(name: str) -> set[tuple[str, ...]]:
    """The word sequences a place name is typed as: as written, hyphens as spaces, `St`/`Ste` for
    `Saint`/`Sainte`, without its article."""
    forms = {name, _SAINT.sub(r"\1\2", name), _SAINT.sub(r"\1\2.", name).replace(".-", ".")}
    keys = {_words(form) for form in forms} | {_words(form.replace("-", " ")) for form in forms}
    for key in list(keys):
        if len(key) > 1 and key[0] in ARTICLES:
            keys.add(key[1:])
    return {k for k in keys if k and not (len(k) == 1 and k[0] in FUNCTION_WORDS)}


def _one_slip(a: str, b: str) -> bool:
    """Optimal-string-alignment distance of exactly 1: one letter dropped, added, replaced, or two neighbours
    swapped."""
    la, lb = len(a), len(b)
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    if abs(la - lb) != 1:
        return False
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def _typing_slip(typed: str, word: str) -> bool:
    """`typed` is `word` with one letter dropped, one letter doubled, or two neighbours swapped. Not a replaced
    letter: among common words that turns too many real ones into each other (`jour`/`pour`, `dont`/`sont`,
    `Dupuis`/`depuis`), and a corpus-sized vocabulary cannot tell which is which."""
    if len(typed) == len(word) - 1:
        return any(word[:i] + word[i + 1 :] == typed for i in range(len(word)))
    if len(typed) == len(word) + 1:
        return any(typed[i] == typed[i + 1] and typed[:i] + typed[i + 1 :] == word for i in range(len(typed) - 1))
    if len(typed) == len(word):
        diff = [i for i in range(len(word)) if typed[i] != word[i]]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and typed[diff[0]] == word[diff[1]] and typed[diff[1]] == word[diff[0]]
    return False


def _deletions(key: str) -> set[str]:
    return {key[:i] + key[i + 1 :] for i in range(len(key))}


def match_case(template: str, word: str) -> str:
    """`word` in the case pattern of `template` (all capitals, capitalised, or as it is)."""
    if template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


class Vocabulary:
    """The words of the training sentences, counted: which forms the model learnt (never corrected), and the
    frequent context words a rare form one slip away is taken for (symmetric-delete index)."""

    def __init__(self, rows: Iterable[tuple[str, str, int, int]], places: Collection[str] = ()) -> None:
        """`places`: the folded one-word place names (a word that may be a place needs a higher O share)."""
        self.rows = {folded: (surface, o_count, count) for folded, surface, o_count, count in rows}
        self.seen = frozenset(w for w, (_, _, c) in self.rows.items() if c >= SEEN_MIN_COUNT)
        places = frozenset(places)

        def is_target(w: str, o: int, c: int) -> bool:
            share = CONTEXT_MIN_SHARE if w in places else CONTEXT_MIN_SHARE_NOT_PLACE
            return len(w) >= SPELL_MIN_CHARS and o >= CONTEXT_MIN_COUNT and o >= share * c

        targets = {w: (surface, o) for w, (surface, o, c) in self.rows.items() if is_target(w, o, c)}
        self._index: dict[str, list[str]] = {}
        for w in targets:
            for d in _deletions(w) | {w}:
                self._index.setdefault(d, []).append(w)
        self._surface = {w: surface for w, (surface, _) in targets.items()}
        self._meant: dict[str, str | None] = {}  # answers per folded word: requests repeat their words

    @classmethod
    def count(cls, sentences: Iterable[Sequence[tuple[str, str]]], places: Collection[str] = ()) -> Vocabulary:
        """From (word, tag) sentences; only forms seen SEEN_MIN_COUNT times or more are kept (the rest are, by
        definition, rare, which is all a lookup needs to know)."""
        counts: dict[str, list[int]] = {}
        surfaces: dict[str, dict[str, int]] = {}
        for sentence in sentences:
            for word, tag in sentence:
                key = normalise_text(word)
                c = counts.setdefault(key, [0, 0])
                c[0] += tag == "O"
                c[1] += 1
                forms = surfaces.setdefault(key, {})
                forms[word.lower()] = forms.get(word.lower(), 0) + 1
        rows = [(w, max(surfaces[w].items(), key=lambda kv: (kv[1], kv[0]))[0], o, n)
                for w, (o, n) in counts.items() if n >= SEEN_MIN_COUNT]
        return cls(rows, places)

    def lines(self) -> list[str]:
        return [f"{w}\t{surface}\t{o}\t{c}" for w, (surface, o, c) in sorted(self.rows.items())]

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = VOCABULARY_FILE, places: Collection[str] = ()) -> Vocabulary:
        rows = []
        for n, line in enumerate(lines, 1):
            parts = line.split("\t")
            if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
                raise TrajetError(f"{source}:{n}: expected word, form, O count, count separated by tabs")
            rows.append((parts[0], parts[1], int(parts[2]), int(parts[3])))
        return cls(rows, places)

    def meant(self, folded: str) -> str | None:
        """The frequent context word a rare form is a slip of (its usual form), or None when it is a slip of none
        or of several (`dpuis` is `depuis` with a letter dropped; it is also `puis` with one added, but only a
        doubled letter counts as added)."""
        if len(folded) < SPELL_MIN_CHARS or folded in self.seen or not folded.replace("'", "").isalpha():
            return None
        if folded in self._meant:
            return self._meant[folded]
        found = {w for d in _deletions(folded) | {folded} for w in self._index.get(d, ()) if _typing_slip(folded, w)}
        answer = self._surface[found.pop()] if len(found) == 1 else None
        if len(self._meant) >= 100_000:
            self._meant.clear()
        self._meant[folded] = answer
        return answer


class Lexicon:
    """Folded place names as word tuples, indexed by first word for a greedy longest match; with `fuzzy`, also
    by one-letter deletions of the whole name (symmetric-delete lookup) for one-slip matches."""

    def __init__(
        self,
        entries: Iterable[tuple[str, ...]],
        *,
        fuzzy: bool = False,
        known_words: Iterable[str] = (),
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.entries = frozenset(e for e in entries if e)
        self.fuzzy = fuzzy
        self.known_words = frozenset(known_words)
        if vocabulary is not None and not fuzzy:
            raise TrajetError("context-word spelling needs a fuzzy lexicon (gazetteer_fuzzy=true)")
        self.vocabulary = vocabulary
        lengths: dict[str, set[int]] = {}
        for entry in self.entries:
            lengths.setdefault(entry[0], set()).add(len(entry))
        self._lengths = {first: sorted(ls, reverse=True) for first, ls in lengths.items()}
        self._by_deletion: dict[str, list[str]] | None = None
        self._by_ends: dict[tuple[int, str], list[str]] | None = None
        self._by_length: dict[int, list[str]] | None = None
        self._scans = 0

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def feature(self) -> str:
        """The name a model trained on these features records in its config."""
        if self.vocabulary is not None:
            return SPELL_FEATURE
        return FUZZY_FEATURE if self.fuzzy else FEATURE

    @property
    def n_types(self) -> int:
        """Token types a model reading these features needs."""
        if self.vocabulary is not None:
            return CONTEXT_SLIP + 1
        return FUZZY_INSIDE + 1 if self.fuzzy else INSIDE + 1

    @classmethod
    def from_names(cls, names: Iterable[str], *, fuzzy: bool = False) -> Lexicon:
        entries: set[tuple[str, ...]] = set()
        for name in names:
            entries |= name_keys(name)
        return cls(entries, fuzzy=fuzzy)

    @classmethod
    def from_gazetteer(cls, *, fuzzy: bool = False) -> Lexicon:
        """Every place of data/places (`trajet.places.place_names`)."""
        return cls(gazetteer_entries(), fuzzy=fuzzy)


    def with_known_words(self, sentences: Iterable[Sequence[tuple[str, str]]], *, spelling: bool = False) -> Lexicon:
        """This lexicon knowing the context words of these (word, tag) sentences: the words tagged O at least
        KNOWN_MIN_COUNT times that are not themselves a known place; with `spelling`, also their vocabulary."""
        counts: dict[str, int] = {}

        def counted() -> Iterator[list[tuple[str, str]]]:
            # One pass, a sentence at a time: a training set streamed from a snapshot is never held here.
            for sentence in sentences:
                sentence = list(sentence)
                for word, tag in sentence:
                    if tag == "O":
                        key = normalise_text(word)
                        counts[key] = counts.get(key, 0) + 1
                yield sentence

        vocabulary = None
        if spelling:
            vocabulary = Vocabulary.count(counted(), _one_word_names(self.entries))
        else:
            for _ in counted():
                pass
        known = {w for w, c in counts.items() if c >= KNOWN_MIN_COUNT and (w,) not in self.entries}
        return Lexicon(self.entries, fuzzy=self.fuzzy, known_words=known, vocabulary=vocabulary)

    def save(self, model_dir: Path) -> None:
        """Into a model directory: the names, and for a fuzzy lexicon the known context words."""
        lines = sorted(" ".join(e) for e in self.entries)
        (Path(model_dir) / LEXICON_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
        if self.fuzzy:
            (Path(model_dir) / KNOWN_WORDS_FILE).write_text("\n".join(sorted(self.known_words)) + "\n", encoding="utf-8")
        if self.vocabulary is not None:
            (Path(model_dir) / VOCABULARY_FILE).write_text("\n".join(self.vocabulary.lines()) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, model_dir: Path, *, fuzzy: bool = False, spelling: bool = False) -> Lexicon:
        lines = _read_lines(Path(model_dir) / LEXICON_FILE)
        known = _read_lines(Path(model_dir) / KNOWN_WORDS_FILE) if fuzzy else []
        entries = [tuple(line.split(" ")) for line in lines]
        vocabulary = None
        if spelling:
            path = Path(model_dir) / VOCABULARY_FILE
            vocabulary = Vocabulary.from_lines(_read_lines(path), str(path), _one_word_names(entries))
        return cls(entries, fuzzy=fuzzy, known_words=known, vocabulary=vocabulary)

    def _exact(self, folded: Sequence[str], i: int) -> int:
        """Word count of the longest known name starting at word i, 0 if none."""
        for n in self._lengths.get(folded[i], ()):
            if i + n <= len(folded) and tuple(folded[i : i + n]) in self.entries:
                return n
        return 0

    def _deletion_index(self) -> dict[str, list[str]]:
        """Built on first use (~1 s for the full gazetteer): a plain exact-match model never pays for it."""
        if self._by_deletion is None:
            index: dict[str, list[str]] = {}
            for entry in self.entries:
                key = " ".join(entry)
                if len(key) < FUZZY_MIN_CHARS:
                    continue
                for d in _deletions(key) | {key}:
                    index.setdefault(d, []).append(key)
            self._by_deletion = index
        return self._by_deletion

    def build_index(self) -> None:
        """Build the one-slip index now (a service, before its first request)."""
        self._deletion_index()

    def _ends_index(self) -> tuple[dict[tuple[int, str], list[str]], dict[int, list[str]]]:
        """Names by (length, first two letters), by (length, last two letters), and by length: ~30 ms to build."""
        if self._by_ends is None or self._by_length is None:
            ends: dict[tuple[int, str], list[str]] = {}
            lengths: dict[int, list[str]] = {}
            for entry in self.entries:
                key = " ".join(entry)
                if len(key) < FUZZY_MIN_CHARS:
                    continue
                lengths.setdefault(len(key), []).append(key)
                ends.setdefault((len(key), "^" + key[:2]), []).append(key)
                ends.setdefault((len(key), key[-2:] + "$"), []).append(key)
            self._by_ends, self._by_length = ends, lengths
        return self._by_ends, self._by_length

    def _one_slip_candidates(self, key: str) -> Iterable[str]:
        """Names that may be one slip from `key`. The symmetric-delete index answers in microseconds but costs
        ~1 s to build: a command that tags a few sentences would spend most of its time on it. Its first
        SCAN_QUERIES lookups use the names of nearby lengths sharing the first or last two letters instead: one
        slip changes at most two neighbouring letters, so from 6 letters on it keeps one of those two ends; a
        shorter key scans its lengths whole. Either way `_one_slip` decides, so the answers are the same."""
        if self._by_deletion is None and self._scans < SCAN_QUERIES:
            self._scans += 1
            ends, lengths = self._ends_index()
            sizes = (len(key) - 1, len(key), len(key) + 1)
            if len(key) < 6:
                return [name for size in sizes for name in lengths.get(size, ())]
            return {name for size in sizes for end in ("^" + key[:2], key[-2:] + "$")
                    for name in ends.get((size, end), ())}
        index = self._deletion_index()
        return (name for d in _deletions(key) | {key} for name in index.get(d, ()))

    def _near(self, folded: Sequence[str], i: int) -> int:
        """Word count of the longest span starting at word i that is one slip from a known name, 0 if none."""
        first = folded[i]
        if first in self.known_words and first not in ARTICLES:  # no span may start on it: the test below, once
            return 0
        for n in range(min(FUZZY_MAX_WORDS, len(folded) - i), 0, -1):
            span = folded[i : i + n]
            first_ok = span[0] not in self.known_words or (n > 1 and span[0] in ARTICLES)
            if not first_ok or span[-1] in self.known_words or not span[-1][-1:].isalpha():
                continue
            key = " ".join(span)
            if len(key) < FUZZY_MIN_CHARS + (n - 1) or any(ch.isdigit() for ch in key):
                continue
            if any(_one_slip(key, name) for name in self._one_slip_candidates(key)):
                return n
        return 0

    def word_features(self, words: Sequence[str]) -> list[int]:
        """One type per word; at each position the longest exact name wins, else (spelling) a misspelled context
        word, else (fuzzy) the longest one-slip name; matching resumes after it."""
        folded = [normalise_text(w) for w in words]
        out = [NONE] * len(words)
        lengths, entries, size = self._lengths, self.entries, len(folded)
        i = 0
        while i < size:
            n, begin, inside = 0, BEGIN, INSIDE
            for m in lengths.get(folded[i], ()):  # `_exact`, inline: it runs on every word of every request
                if i + m <= size and tuple(folded[i : i + m]) in entries:
                    n = m
                    break
            if not n and self.vocabulary is not None and self.vocabulary.meant(folded[i]) is not None:
                out[i] = CONTEXT_SLIP
                i += 1
                continue
            if not n and self.fuzzy:
                n, begin, inside = self._near(folded, i), FUZZY_BEGIN, FUZZY_INSIDE
            if not n:
                i += 1
                continue
            out[i] = begin
            for k in range(i + 1, i + n):
                out[k] = inside
            i += n
        return out

    def respell(self, words: Sequence[str], features: Sequence[int]) -> list[str]:
        """The words the model reads: each CONTEXT_SLIP word replaced by the word it was meant to be (its case
        kept). Offsets and entities still come from the words as typed."""
        if self.vocabulary is None:
            return list(words)
        out = list(words)
        for i, f in enumerate(features):
            if f == CONTEXT_SLIP:
                meant = self.vocabulary.meant(normalise_text(words[i]))
                if meant is not None:
                    out[i] = match_case(words[i], meant)
        return out

    def read(self, words: Sequence[str]) -> tuple[list[str], list[int]]:
        """(the words the model reads, their features): what training and prediction feed the encoder."""
        features = self.word_features(words)
        return self.respell(words, features), features


@lru_cache(maxsize=4)
def _gazetteer_entries(places: str) -> frozenset[tuple[str, ...]]:
    from trajet.places import place_names

    entries: set[tuple[str, ...]] = set()
    for name in place_names():
        entries |= name_keys(name)
    return frozenset(entries)


def gazetteer_entries() -> frozenset[tuple[str, ...]]:
    """The name keys of data/places, built once per process (~1 s): tokenization and training both need them."""
    from trajet.places import places_dir

    return _gazetteer_entries(str(places_dir()))


def gazetteer_splitter() -> WordSplitter:
    """`phrases.WordSplitter` of data/places: every one-word name may be a piece between hyphens; the towns
    of GLUED_MIN_POPULATION or more (and places abroad, stations, hubs) and every hyphenated name
    (`Saint-Jean-Pied-de-Port`: no word ends like that by chance) may follow a glued preposition; no word of
    a name nor a word of data/places/whole_words.txt is ever split."""
    from trajet.places import glued_place_names, whole_words

    entries = gazetteer_entries()
    glued: set[tuple[str, ...]] = set()
    for name in glued_place_names():
        glued |= name_keys(name)
    one_word = _one_word_names(entries)
    return WordSplitter(one_word, {w for e in entries for w in e} | whole_words(),
                        set(_one_word_names(glued)) | {w for w in one_word if "-" in w})


def _one_word_names(entries: Iterable[tuple[str, ...]]) -> list[str]:
    """The folded place names of one word: a context word that may be one needs a higher O share to be a target."""
    return [e[0] for e in entries if len(e) == 1]


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrajetError(f"{path}: the model expects gazetteer features but this file is missing") from None
    except UnicodeDecodeError as exc:
        raise TrajetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return [line for line in text.splitlines() if line.strip()]


def drop_spans(features: Sequence[int], keep: Sequence[bool]) -> list[int]:
    """The features with the k-th matched span zeroed where keep[k] is False (training-time hint dropout)."""
    out = list(features)
    span = -1
    for i, f in enumerate(features):
        if f in BEGINS:
            span += 1
        if f in PLACE_TYPES and span < len(keep) and not keep[span]:
            out[i] = NONE
    return out


def model_lexicon(model_dir: Path, feature: str | None) -> Lexicon | None:
    """The lexicon saved with a model whose config asks for gazetteer features (`trajet_features` in its
    config.json); None for a plain model."""
    if feature is None:
        return None
    if feature not in FEATURES:
        raise TrajetError(f"{model_dir}: unknown input features {feature!r} (this Trajet reads {', '.join(FEATURES)})")
    lexicon = Lexicon.load(Path(model_dir), fuzzy=feature in (FUZZY_FEATURE, SPELL_FEATURE),
                           spelling=feature == SPELL_FEATURE)
    return lexicon  # a service builds the one-slip index at load (Lexicon.build_index), a command when it pays


def token_types(features: Sequence[int], word_ids: Sequence[int | None]) -> list[int]:
    """Word features spread to every sub-token of the word; special tokens get 0."""
    return [NONE if wid is None else features[wid] for wid in word_ids]
