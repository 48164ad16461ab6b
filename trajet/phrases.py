"""Phrase model: text + character spans, the French word tokenizer, JSONL and CoNLL I/O.

Character spans are the source of truth (they survive any re-tokenisation); word tokens + BIO tags are a
view of them (trajet.tags converts between the two). The same tokenizer feeds training, validation and inference, so a span that does not fall
on token boundaries is a data error, never something the model is asked to learn.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trajet.errors import PhraseError, TrajetError
from trajet.tags import Entity, bio_to_spans, spans_to_tags
from trajet.words import Token, WordSplitter, is_elision, scan_spans, split_words
from trajet.words import (
    normalise_text as normalise_text,  # the phrase key, imported from here by many modules
)


class DataFileError(TrajetError, ValueError):
    """A bad line in a data file: names the file, the line and the reason."""

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


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


def tokenize(text: str, splitter: WordSplitter | None = None) -> list[Token]:
    """Words and punctuation; `splitter` None means the gazetteer's (`default_splitter`)."""
    return split_words(text, default_splitter() if splitter is None else splitter)


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
    for span in scan_spans(text, a, b, default_splitter() if splitter is None else splitter):
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


def spans_to_bio(text: str, entities: Iterable[Entity]) -> tuple[list[Token], list[str]]:
    """The words of `text` and their IOB2 tags (`tags.spans_to_tags`); raises PhraseError for a span that
    does not fall on this tokenizer's word boundaries."""
    tokens = tokenize(text)
    return tokens, spans_to_tags(text, tokens, entities)


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
    """(line number, line without its newline) for every non-blank line; refuses non-UTF-8 by name.

    Read a line at a time, so a file of a million phrases costs one line of memory, not the file."""
    p = Path(path)
    offset = 0
    with p.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFileError(p, n, f"not UTF-8 text (byte {offset + exc.start})") from None
            offset += len(raw)
            if n == 1:
                line = line.removeprefix(BOM)
            line = line.removesuffix("\n").removesuffix("\r")
            if line.strip():
                yield n, line


def iter_jsonl(path: str | Path) -> Iterator[Phrase]:
    for n, raw in iter_lines(path):
        try:
            yield parse_jsonl_line(raw)
        except PhraseError as exc:
            raise DataFileError(path, n, str(exc)) from None


def read_jsonl(path: str | Path) -> list[Phrase]:
    return list(iter_jsonl(path))


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
