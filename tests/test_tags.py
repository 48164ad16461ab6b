"""The tag scheme (trajet.tags): spans <-> IOB2 round-trips, repair is the lenient reading, validation counts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trajet.errors import PhraseError
from trajet.labels import ENTITY_TYPES, LABELS
from trajet.phrases import spans_to_bio, tokenize
from trajet.tags import BioCheck, Entity, bio_to_spans, check_bio, is_valid_bio, repair_bio, spans_to_tags


@dataclass(frozen=True)
class Word:
    text: str
    start: int
    end: int


def _words(texts: list[str]) -> tuple[str, list[Word]]:
    out, pos = [], 0
    for t in texts:
        out.append(Word(t, pos, pos + len(t)))
        pos += len(t) + 1
    return " ".join(texts), out


@st.composite
def tagged_text(draw: st.DrawFn) -> tuple[str, list[Word], list[Entity]]:
    """Words, and non-overlapping entities each covering a run of whole words."""
    texts = draw(st.lists(st.text("abcdéxyz", min_size=1, max_size=6), min_size=1, max_size=12))
    text, words = _words(texts)
    entities, i = [], 0
    while i < len(words):
        if draw(st.booleans()):
            length = draw(st.integers(1, min(3, len(words) - i)))
            label = draw(st.sampled_from(ENTITY_TYPES))
            entities.append(Entity(words[i].start, words[i + length - 1].end, label))
            i += length
        else:
            i += 1
    return text, words, entities


tag_lists = st.lists(st.sampled_from(LABELS), max_size=15)
relaxed = settings(deadline=None)  # a busy machine: timing is not what is tested


@relaxed
@given(tagged_text())
def test_spans_to_tags_to_spans_round_trips(case):
    text, words, entities = case
    tags = spans_to_tags(text, words, entities)
    assert is_valid_bio(tags)
    assert sum(t.startswith("B-") for t in tags) == len(entities)
    assert bio_to_spans(words, tags) == sorted(entities)
    assert bio_to_spans(words, tags, strict=False) == sorted(entities)


@relaxed
@given(tag_lists)
def test_valid_tags_to_spans_to_tags_round_trips(tags):
    tags = repair_bio(tags)
    text, words = _words(["w"] * len(tags))
    assert spans_to_tags(text, words, bio_to_spans(words, tags)) == tags


@relaxed
@given(tag_lists)
def test_repair_is_the_lenient_reading_and_is_idempotent(tags):
    _, words = _words(["w"] * len(tags))
    repaired = repair_bio(tags)
    assert repair_bio(repaired) == repaired
    assert is_valid_bio(repaired)
    assert bio_to_spans(words, tags, strict=False) == bio_to_spans(words, repaired)
    # strict reading accepts exactly the sequences repair leaves alone
    if repaired == tags:
        bio_to_spans(words, tags)
    else:
        with pytest.raises(PhraseError, match="malformed BIO"):
            bio_to_spans(words, tags)


@settings(max_examples=50, deadline=None)  # the first call builds the gazetteer splitter (~1 s)
@given(st.lists(st.sampled_from(["le", "train", "de", "Paris", "à", "Saint-Étienne", "d'Orléans", ",", "."]),
                min_size=1, max_size=10),
       st.data())
def test_round_trip_on_the_project_tokenizer(words, data):
    text = " ".join(words)
    tokens = tokenize(text)
    picks = sorted(data.draw(st.sets(st.integers(0, len(tokens) - 1), max_size=3)))
    entities = [Entity(tokens[i].start, tokens[i].end, data.draw(st.sampled_from(ENTITY_TYPES))) for i in picks]
    got_tokens, tags = spans_to_bio(text, entities)
    assert got_tokens == tokens
    assert bio_to_spans(tokens, tags) == entities


def test_repair_opens_entities_like_the_predictor():
    assert repair_bio(["O", "I-DEPART", "I-DEPART", "I-ARRIVEE"]) == ["O", "B-DEPART", "I-DEPART", "B-ARRIVEE"]


def test_repair_leaves_unknown_tags_for_validation():
    assert repair_bio(["O", "I-FOO", "I-VIA"]) == ["O", "I-FOO", "B-VIA"]


def test_check_counts_unknown_and_malformed_tags():
    assert check_bio(["B-DEPART", "I-DEPART", "O"]) == BioCheck(("B-DEPART", "I-DEPART", "O"))
    check = check_bio(["B-DEPART", "I-ARRIVEE", "I-ARRIVEE", "X-VIA", "I-VIA"])
    assert (check.unknown, check.malformed, check.ok) == (1, 2, False)
    assert check.tags == ("B-DEPART", "B-ARRIVEE", "I-ARRIVEE", "O", "B-VIA")


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ([Entity(0, 2, "PLACE")], "unknown label"),
        ([Entity(0, 99, "VIA")], "out of bounds"),
        ([Entity(1, 5, "VIA")], "word boundaries"),
        ([Entity(0, 7, "VIA"), Entity(3, 7, "DEPART")], "overlaps"),
    ],
)
def test_spans_that_break_the_scheme_are_refused(entities, message):
    text, words = _words(["de", "Lyon"])
    with pytest.raises(PhraseError, match=message):
        spans_to_tags(text, words, entities)


def test_bio_errors_name_the_token():
    _, words = _words(["de", "Lyon"])
    with pytest.raises(PhraseError, match="unknown tag 'B-LOC' on token 2 'Lyon'"):
        bio_to_spans(words, ["O", "B-LOC"], strict=False)
    with pytest.raises(PhraseError, match="I-VIA on token 2 'Lyon' does not follow B-VIA"):
        bio_to_spans(words, ["O", "I-VIA"])
    with pytest.raises(PhraseError, match="2 tokens but 1 tags"):
        bio_to_spans(words, ["O"])
