"""Words to sub-tokens and back, the one way training and inference both use.

A word's tag sits on its first sub-token: training puts the label there (-100 on the other sub-tokens and on
the specials), and the predictor reads the word's tag there (`first_subtokens`). Both take their words from
`trajet.phrases.tokenize`, so a model never learns a boundary the predictor cannot reproduce. With gazetteer
features, every sub-token of a word carries its word's feature as token type (`trajet.lexicon.token_types`).

Pure Python at import (the tokenizer is passed in): bench/gpu_train.py runs it on a machine without seqeval,
datasets or prefect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trajet.labels import LABEL2ID
from trajet.lexicon import token_types
from trajet.phrases import Phrase

IGNORED = -100  # the label id the loss and the metrics skip


def first_subtokens(word_ids: Sequence[int | None], n_words: int) -> list[int]:
    """The sub-token position that carries each word's tag (its first), in word order; -1 for a word that has
    no sub-token (folded to nothing by the tokenizer, or cut off by truncation)."""
    positions = [-1] * n_words
    for pos, wid in enumerate(word_ids):
        if wid is not None and positions[wid] < 0:
            positions[wid] = pos
    return positions


def align_labels(word_ids: Sequence[int | None], tags: Sequence[str]) -> list[int]:
    """Per sub-token: the label id of the word it starts, `IGNORED` elsewhere (later pieces, specials)."""
    labels = [IGNORED] * len(word_ids)
    for word, pos in enumerate(first_subtokens(word_ids, len(tags))):
        if pos >= 0:
            labels[pos] = LABEL2ID[tags[word]]
    return labels


def encode_words(
    words: Sequence[str], tags: Sequence[str], tokenizer: Any, max_length: int, features: Sequence[int] | None = None
) -> dict[str, list[int]]:
    """Sub-token ids, attention mask and aligned labels of one sentence; with word `features` (gazetteer
    matches), the token types too."""
    enc = tokenizer(list(words), is_split_into_words=True, truncation=True, max_length=max_length)
    word_ids = enc.word_ids()
    out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
           "labels": align_labels(word_ids, tags)}
    if features is not None:
        out["token_type_ids"] = token_types(features, word_ids)
    return out


def phrase_words(phrase: Phrase, lexicon: Any = None) -> tuple[list[str], list[str], list[int] | None]:
    """(words as the model reads them, tags, gazetteer features or None) of an annotated phrase."""
    tokens, tags = phrase.tokens_and_tags()
    words = [t.text for t in tokens]
    features = None
    if lexicon is not None:
        words, features = lexicon.read(words)
    return words, tags, features


def encode_phrases(
    phrases: Sequence[Phrase], tokenizer: Any, max_length: int, lexicon: Any = None
) -> list[dict[str, list[int]]]:
    """`encode_words` for every phrase, on the project's word tokens (with gazetteer features if given)."""
    out = []
    for phrase in phrases:
        words, tags, features = phrase_words(phrase, lexicon)
        out.append(encode_words(words, tags, tokenizer, max_length, features))
    return out
