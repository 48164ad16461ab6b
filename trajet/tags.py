"""The tag scheme in one place: character spans <-> IOB2 tags over words, repair, validation.

Spans are the truth a phrase stores; tags are how the model, seqeval and CoNLL files see the same spans over
words. Every conversion goes through here (as spaCy keeps its own in `training/iob_utils.py`), so data,
training, evaluation and prediction cannot drift apart on what an `I-` after `O` means.

Two readings of a tag sequence, on purpose:
- strict (annotated data): an `I-X` that does not continue an `X` is an error a person must fix;
- lenient (model output, hand-made CoNLL in quarantine-tolerant ingestion): it opens an `X`, as `repair_bio`
  rewrites it. Lenient reading is exactly strict reading of the repaired sequence.

The label list itself stays in `trajet.labels`: the model head and its config are built from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from trajet.errors import PhraseError
from trajet.labels import ENTITY_TYPES, LABEL2ID

BEGIN = "B-"
INSIDE = "I-"
OUTSIDE = "O"


class Located(Protocol):
    """A word with its character offsets in the text (phrases.Token, or anything shaped like it)."""

    @property
    def text(self) -> str: ...

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


@dataclass(frozen=True, order=True)
class Entity:
    """A labelled character span [start, end) of a text; ordering by offsets is the order of the text."""

    start: int
    end: int
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "label": self.label}


def spans_to_tags(text: str, tokens: Sequence[Located], entities: Iterable[Entity]) -> list[str]:
    """IOB2 tags of `tokens` (the words of `text`) for `entities`.

    Raises PhraseError for an unknown label, a span out of the text, one that does not start and end on word
    boundaries, or two that overlap: such a span is a data error, never something the model is asked to learn.
    """
    tags = [OUTSIDE] * len(tokens)
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
            if tags[i] != OUTSIDE:
                raise PhraseError(f"span {ent.start}-{ent.end} overlaps another entity")
            tags[i] = (BEGIN if i == first else INSIDE) + ent.label
    return tags


def bio_to_spans(tokens: Sequence[Located], tags: Sequence[str], strict: bool = True) -> list[Entity]:
    """Character spans of an IOB2 sequence over `tokens`.

    Strict mode refuses an I- without a B- of the same type (data); lenient mode reads the repaired sequence
    (`repair_bio`), so such an I- opens an entity (predictions). An unknown tag is an error in both."""
    if len(tokens) != len(tags):
        raise PhraseError(f"{len(tokens)} tokens but {len(tags)} tags")
    if not strict:
        tags = repair_bio(tags)
    spans: list[Entity] = []
    cur_label: str | None = None
    cur_start = cur_end = 0
    for i, (tok, tag) in enumerate(zip(tokens, tags, strict=True)):
        if tag not in LABEL2ID:
            raise PhraseError(f"unknown tag {tag!r} on token {i + 1} {tok.text!r}")
        if tag == OUTSIDE:
            if cur_label:
                spans.append(Entity(cur_start, cur_end, cur_label))
            cur_label = None
            continue
        prefix, label = tag[:2], tag[2:]
        if prefix == INSIDE and cur_label == label:
            cur_end = tok.end
            continue
        if prefix == INSIDE:
            raise PhraseError(f"malformed BIO: {tag} on token {i + 1} {tok.text!r} does not follow B-{label}")
        if cur_label:
            spans.append(Entity(cur_start, cur_end, cur_label))
        cur_label, cur_start, cur_end = label, tok.start, tok.end
    if cur_label:
        spans.append(Entity(cur_start, cur_end, cur_label))
    return spans


def repair_bio(tags: Sequence[str]) -> list[str]:
    """Lenient IOB2 as the predictor reads it: an I-X that does not continue an X becomes B-X.

    Tags outside the label set are left as they are: whether they are an error (data) or impossible (a model
    head built from `trajet.labels`) is the caller's business, and `check_bio` counts them."""
    out: list[str] = []
    prev = OUTSIDE
    for tag in tags:
        if tag.startswith(INSIDE) and prev[2:] != tag[2:] and tag in LABEL2ID:
            tag = BEGIN + tag[2:]
        out.append(tag)
        prev = tag
    return out


@dataclass(frozen=True)
class BioCheck:
    """What is wrong with a tag sequence, and the sequence as it is read leniently."""

    tags: tuple[str, ...]  # unknown tags read as O, then repaired (`repair_bio`)
    unknown: int = 0  # tags outside the label set
    malformed: int = 0  # I- tags that continue no entity of their type

    @property
    def ok(self) -> bool:
        return not (self.unknown or self.malformed)


def check_bio(tags: Sequence[str]) -> BioCheck:
    """Validation of a tag sequence: counts of unknown and malformed tags (an unknown tag counts as O for the
    tags after it), with the lenient reading a tolerant reader stores."""
    known = [tag if tag in LABEL2ID else OUTSIDE for tag in tags]
    repaired = repair_bio(known)
    return BioCheck(
        tuple(repaired),
        unknown=sum(1 for tag in tags if tag not in LABEL2ID),
        malformed=sum(1 for a, b in zip(known, repaired, strict=True) if a != b),
    )


def is_valid_bio(tags: Sequence[str]) -> bool:
    """Every tag is known and every I-X continues an X: strict reading would accept it."""
    return check_bio(tags).ok
