"""Phrase model: text + character spans, the French word tokenizer, BIO conversion, JSONL and CoNLL I/O.

Character spans are the source of truth (they survive any re-tokenisation); word tokens + BIO tags are a
view of them. The same tokenizer feeds training, validation and inference, so a span that does not fall
on token boundaries is a data error, never something the model is asked to learn.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from trajet.errors import TrajetError
from trajet.labels import ENTITY_TYPES, LABEL2ID

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


class PhraseError(ValueError):
    """A phrase that breaks the data model; the message is the reason a person reads."""


class DataFileError(TrajetError, ValueError):
    """A bad line in a data file: names the file, the line and the reason."""

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


@dataclass(frozen=True, order=True)
class Entity:
    start: int
    end: int
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "label": self.label}


@dataclass(frozen=True)
class Phrase:
    text: str
    entities: tuple[Entity, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def spans_text(self) -> list[tuple[str, str]]:
        return [(e.label, self.text[e.start : e.end]) for e in self.entities]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "entities": [e.to_dict() for e in self.entities]}
        for key, value in self.meta.items():
            if key not in out:
                out[key] = value
        return out

    def tokens_and_tags(self) -> tuple[list[Token], list[str]]:
        return spans_to_bio(self.text, self.entities)

    def trip(self) -> dict[str, Any]:
        return trip_fields(self.text, self.entities)


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


_DEFAULT_SPLITTERS: dict[str | None, WordSplitter] = {}


def default_splitter() -> WordSplitter:
    """The splitter of the gazetteer in data/places, built once per process. Ingestion, training, the
    generator's checks and every predictor (torch, ONNX, the service) split with it, so one checkout reads
    words one way everywhere. Keyed by TRAJET_DATA_DIR itself: resolving the folder on every call cost more than
    tokenizing."""
    key = os.environ.get("TRAJET_DATA_DIR")
    splitter = _DEFAULT_SPLITTERS.get(key)
    if splitter is None:
        splitter = _DEFAULT_SPLITTERS[key] = _cached_splitter()
    return splitter


def _cached_splitter() -> WordSplitter:
    """Building the splitter from data/places takes ~1 s, most of a one-sentence `trajet predict --backend onnx`:
    its name sets are kept in TRAJET_HOME/cache under a key of the places files' (and the two modules that read
them) paths, sizes and times, and read
    back in a few tens of milliseconds. A cache that cannot be read or written is rebuilt, never an error."""
    import hashlib

    from trajet import config
    from trajet.lexicon import gazetteer_splitter

    folder = config.data_dir() / "places"
    h = hashlib.sha256(b"word-splitter-v1")
    code = Path(__file__).parent  # the rules that turn the files into sets live in these two modules
    for path in [*sorted(folder.glob("*")), code / "lexicon.py", code / "places.py"]:
        if path.is_file() and path.suffix in (".tsv", ".txt", ".py"):
            st = path.stat()
            h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    cache = config.home() / "cache" / f"word-splitter-{h.hexdigest()[:16]}.json"
    try:
        sets = json.loads(cache.read_text(encoding="utf-8"))
        return WordSplitter(sets["names"], sets["whole"], sets["glued"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    splitter = gazetteer_splitter()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"names": sorted(splitter.names), "glued": sorted(splitter.glued),
                                   "whole": sorted(splitter.whole)}), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass
    return splitter


def _scan(text: str, start: int, end: int, splitter: WordSplitter) -> Iterator[tuple[int, int]]:
    for m in _TOKEN_RE.finditer(text, start, end):
        word = m.group()
        pieces = splitter.split(word) if len(word) > 3 and word[:1].isalnum() else None
        if pieces is None:
            yield m.span()
        else:
            yield from ((m.start() + a, m.start() + b) for a, b in pieces)


def tokenize(text: str, splitter: WordSplitter | None = None) -> list[Token]:
    """Words and punctuation; `splitter` None means the gazetteer's (`default_splitter`). The loop of `_scan`,
    written out: every request goes through here, and the generator cost a third of it."""
    splitter = default_splitter() if splitter is None else splitter
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


def _chunk_tokens(text: str, i: int, splitter: WordSplitter | None) -> set[int]:
    """Start and end offsets of the tokens of the whitespace-free chunk around index `i`.

    No token spans whitespace, the token pattern has no anchor or look-behind and a split looks at one word
    only, so tokenizing the chunk alone gives exactly the tokens the whole text has there.
    """
    a = i
    while a > 0 and not text[a - 1].isspace():
        a -= 1
    b = i
    while b < len(text) and not text[b].isspace():
        b += 1
    found: set[int] = set()
    for span in _scan(text, a, b, default_splitter() if splitter is None else splitter):
        found.update(span)
    return found


def is_token_start(text: str, i: int, splitter: WordSplitter | None = None) -> bool:
    """Same answer as `i in {t.start for t in tokenize(text)}`, looking only at the word around `i`.

    Every non-space character belongs to a token, so after a space (or at 0) a token starts on any
    non-space character; only a position inside a chunk (d'Orléans, "Lyon,", deLyon) needs the chunk tokenized.
    """
    if not 0 <= i < len(text) or text[i].isspace():
        return False
    if i == 0 or text[i - 1].isspace():
        return True
    return i in _chunk_tokens(text, i, splitter)


def is_token_end(text: str, i: int, splitter: WordSplitter | None = None) -> bool:
    """Same answer as `i in {t.end for t in tokenize(text)}`, looking only at the word before `i`."""
    if not 0 < i <= len(text) or text[i - 1].isspace():
        return False
    if i == len(text) or text[i].isspace():
        return True
    return i in _chunk_tokens(text, i - 1, splitter)


def split_lines(content: str) -> list[str]:
    """Lines cut on \\n only: str.splitlines would also cut on U+2028 and friends, which JSON strings may hold."""
    return [line[:-1] if line.endswith("\r") else line for line in content.split("\n")]


def words(text: str) -> list[str]:
    return [t.text for t in tokenize(text)]


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


def spans_to_bio(text: str, entities: Iterable[Entity]) -> tuple[list[Token], list[str]]:
    tokens = tokenize(text)
    tags = ["O"] * len(tokens)
    starts = {t.start: i for i, t in enumerate(tokens)}
    ends = {t.end: i for i, t in enumerate(tokens)}
    for ent in sorted(entities):
        if ent.label not in ENTITY_TYPES:
            raise PhraseError(f"unknown label {ent.label!r} (expected one of {', '.join(ENTITY_TYPES)})")
        if not (0 <= ent.start < ent.end <= len(text)):
            raise PhraseError(f"span {ent.start}-{ent.end} is out of bounds for a text of {len(text)} characters")
        first, last = starts.get(ent.start), ends.get(ent.end)
        if first is None or last is None or last < first:
            raise PhraseError(
                f"span {ent.start}-{ent.end} {text[ent.start:ent.end]!r} does not fall on word boundaries"
            )
        for i in range(first, last + 1):
            if tags[i] != "O":
                raise PhraseError(f"span {ent.start}-{ent.end} overlaps another entity")
            tags[i] = ("B-" if i == first else "I-") + ent.label
    return tokens, tags


def bio_to_spans(tokens: Sequence[Token], tags: Sequence[str], strict: bool = True) -> list[Entity]:
    """Strict mode refuses I- without a B- of the same type (data); lenient mode opens an entity (predictions)."""
    if len(tokens) != len(tags):
        raise PhraseError(f"{len(tokens)} tokens but {len(tags)} tags")
    spans: list[Entity] = []
    cur_label: str | None = None
    cur_start = cur_end = 0
    for i, (tok, tag) in enumerate(zip(tokens, tags, strict=True)):
        if tag not in LABEL2ID:
            raise PhraseError(f"unknown tag {tag!r} on token {i + 1} {tok.text!r}")
        if tag == "O":
            if cur_label:
                spans.append(Entity(cur_start, cur_end, cur_label))
            cur_label = None
            continue
        prefix, label = tag[:2], tag[2:]
        if prefix == "I-" and cur_label == label:
            cur_end = tok.end
            continue
        if prefix == "I-" and strict:
            raise PhraseError(f"malformed BIO: {tag} on token {i + 1} {tok.text!r} does not follow B-{label}")
        if cur_label:
            spans.append(Entity(cur_start, cur_end, cur_label))
        cur_label, cur_start, cur_end = label, tok.start, tok.end
    if cur_label:
        spans.append(Entity(cur_start, cur_end, cur_label))
    return spans


def trip_fields(text: str, entities: Iterable[Entity]) -> dict[str, Any]:
    """departure/arrival/via as consumers want them: first DEPART, first ARRIVEE, every VIA in order."""
    ordered = sorted(entities)
    dep = next((text[e.start : e.end] for e in ordered if e.label == "DEPART"), None)
    arr = next((text[e.start : e.end] for e in ordered if e.label == "ARRIVEE"), None)
    via = [text[e.start : e.end] for e in ordered if e.label == "VIA"]
    return {"departure": dep, "arrival": arr, "via": via}


# ---------------------------------------------------------------------------------------------- JSONL


def phrase_from_obj(obj: Any) -> Phrase:
    """Structural parse of one JSON object; alignment is checked too so a returned Phrase is always usable."""
    if not isinstance(obj, dict):
        raise PhraseError("a line must be a JSON object")
    if "text" not in obj:
        raise PhraseError("missing field 'text'")
    text = obj["text"]
    if not isinstance(text, str):
        raise PhraseError("'text' must be a string")
    raw_entities = obj.get("entities", [])
    if not isinstance(raw_entities, list):
        raise PhraseError("'entities' must be a list")
    entities: list[Entity] = []
    for k, ent in enumerate(raw_entities):
        if not isinstance(ent, dict) or not {"start", "end", "label"} <= ent.keys():
            raise PhraseError(f"entity {k + 1} must be an object with start, end and label")
        start, end, label = ent["start"], ent["end"], ent["label"]
        if type(start) is not int or type(end) is not int:
            raise PhraseError(f"entity {k + 1}: start and end must be integers")
        if not isinstance(label, str):
            raise PhraseError(f"entity {k + 1}: label must be a string")
        entities.append(Entity(start, end, label))
    entities.sort()
    spans_to_bio(text, entities)
    meta = {k: v for k, v in obj.items() if k not in ("text", "entities")}
    return Phrase(text, tuple(entities), meta)


def parse_jsonl_line(raw: str) -> Phrase:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PhraseError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    return phrase_from_obj(obj)


BOM = "\ufeff"  # a UTF-8 byte-order mark some editors write first: not part of the first row


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) for every non-blank line; refuses non-UTF-8 by name."""
    p = Path(path)
    try:
        content = p.read_text(encoding="utf-8").removeprefix(BOM)
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataFileError(p, line, f"not UTF-8 text (byte {exc.start})") from None
    for n, line in enumerate(split_lines(content), start=1):
        if line.strip():
            yield n, line


def read_jsonl(path: str | Path) -> list[Phrase]:
    out = []
    for n, raw in iter_lines(path):
        try:
            out.append(parse_jsonl_line(raw))
        except PhraseError as exc:
            raise DataFileError(path, n, str(exc)) from None
    return out


def phrase_to_json(phrase: Phrase) -> str:
    return json.dumps(phrase.to_dict(), ensure_ascii=False)


def write_jsonl(path: str | Path, phrases: Iterable[Phrase]) -> int:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8", newline="\n") as fh:
        for phrase in phrases:
            fh.write(phrase_to_json(phrase) + "\n")
            n += 1
    return n


# ---------------------------------------------------------------------------------------------- CoNLL


def detokenize(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Join CoNLL tokens into text; an elided article is glued to the next word as French writes it."""
    parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    pos = 0
    for i, tok in enumerate(tokens):
        if i > 0 and not is_elision(tokens[i - 1]):
            parts.append(" ")
            pos += 1
        offsets.append((pos, pos + len(tok)))
        parts.append(tok)
        pos += len(tok)
    return "".join(parts), offsets


def conll_to_phrase(tokens: Sequence[str], tags: Sequence[str]) -> Phrase:
    if len(tokens) != len(tags):
        raise PhraseError(f"token/tag count mismatch: {len(tokens)} tokens, {len(tags)} tags")
    text, offsets = detokenize(tokens)
    retok = tokenize(text)
    if [(t.start, t.end) for t in retok] != offsets:
        raise PhraseError("tokens do not re-tokenize as given (a token holds spaces or mixes word and punctuation)")
    entities = bio_to_spans(retok, tags, strict=True)
    return Phrase(text, tuple(entities))


def iter_conll_blocks(path: str | Path) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """(first line number, [(line number, raw line)]) per sentence; blank lines separate sentences."""
    p = Path(path)
    try:
        content = p.read_text(encoding="utf-8").removeprefix(BOM)
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataFileError(p, line, f"not UTF-8 text (byte {exc.start})") from None
    block: list[tuple[int, str]] = []
    for n, line in enumerate(split_lines(content), start=1):
        if line.strip():
            block.append((n, line))
        elif block:
            yield block[0][0], block
            block = []
    if block:
        yield block[0][0], block


def parse_conll_block(block: Sequence[tuple[int, str]]) -> Phrase:
    toks, tags = [], []
    for n, line in block:
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0] or not cols[1].strip():
            raise PhraseError(f"line {n}: expected 'token<TAB>tag'")
        toks.append(cols[0])
        tags.append(cols[1].strip())
    return conll_to_phrase(toks, tags)


def read_conll(path: str | Path) -> list[Phrase]:
    out = []
    for first, block in iter_conll_blocks(path):
        try:
            out.append(parse_conll_block(block))
        except PhraseError as exc:
            raise DataFileError(path, first, str(exc)) from None
    return out


def phrase_to_conll(phrase: Phrase) -> str:
    tokens, tags = phrase.tokens_and_tags()
    return "".join(f"{t.text}\t{tag}\n" for t, tag in zip(tokens, tags, strict=True))


def write_conll(path: str | Path, phrases: Iterable[Phrase]) -> int:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8", newline="\n") as fh:
        for phrase in phrases:
            fh.write(phrase_to_conll(phrase) + "\n")
            n += 1
    return n


def read_phrases(path: str | Path) -> list[Phrase]:
    """JSONL or CoNLL by extension (.conll, .conllu, .tsv, .bio are CoNLL)."""
    suffix = Path(path).suffix.lower()
    if suffix in {".conll", ".conllu", ".tsv", ".bio"}:
        return read_conll(path)
    return read_jsonl(path)


# --------------------------------------------------------------------------------------------- markup

_MARKUP_RE = re.compile(r"\[([^\[\]|]+)\|(D|A|V|DEPART|ARRIVEE|VIA)\]")
_MARKUP_LABELS = {"D": "DEPART", "A": "ARRIVEE", "V": "VIA"}


def parse_markup(marked: str, **meta: Any) -> Phrase:
    """`de [Paris|D] à [Lyon|A] via [Dijon|V]` -> Phrase; a compact way for people to write annotations."""
    text_parts: list[str] = []
    entities: list[Entity] = []
    pos = 0
    last = 0
    for m in _MARKUP_RE.finditer(marked):
        before = marked[last : m.start()]
        text_parts.append(before)
        pos += len(before)
        surface = m.group(1)
        label = _MARKUP_LABELS.get(m.group(2), m.group(2))
        entities.append(Entity(pos, pos + len(surface), label))
        text_parts.append(surface)
        pos += len(surface)
        last = m.end()
    text_parts.append(marked[last:])
    text = "".join(text_parts)
    if "[" in text or "]" in text:
        raise PhraseError(f"unbalanced or unknown markup in {marked!r}")
    spans_to_bio(text, entities)
    return Phrase(text, tuple(entities), dict(meta))


def to_markup(phrase: Phrase) -> str:
    short = {v: k for k, v in _MARKUP_LABELS.items()}
    out, last = [], 0
    for e in sorted(phrase.entities):
        out.append(phrase.text[last : e.start])
        out.append(f"[{phrase.text[e.start:e.end]}|{short[e.label]}]")
        last = e.end
    out.append(phrase.text[last:])
    return "".join(out)
