"""Pretrained French word vectors as the starting point of a from-scratch encoder's embedding table.

A small encoder trained on a few thousand sentences knows only the words those sentences use; a word a
person types that the data never had gets an embedding nobody trained. spaCy's `fr_core_news_md` ships
fastText-style vectors for 500,000 French forms (OSCAR + Wikipedia, LGPL-LR), which place such a word near the
words it behaves like. They are read once, when a built-in base is built, and written into the base's
embedding table: the model directory holds them in its safetensors, so predict and serve never need spaCy.

The mini tokenizer folds case and accents, so every form of the spaCy table is folded the same way and the
vectors of the forms that fold together are averaged; each tokenizer piece that is such a folded form (a
word-initial piece is the word itself) starts from its vector, projected onto the encoder's width by PCA and
scaled to the initialiser's spread. Pieces without a vector keep their random start.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from trajet.errors import TrajetError

METASPACE = "▁"
SOURCES = ("fr_core_news_md", "fr_core_news_lg", "fr_core_news_sm")


def fold(word: str) -> str:
    """The mini tokenizer's normalisation (NFD, accents stripped, lowercase)."""
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


@dataclass(frozen=True)
class InitReport:
    source: str
    pieces: int
    initialised: int
    explained_variance: float


def _load_table(source: str) -> tuple[list[str], np.ndarray, Mapping[int, int], Any]:
    if source not in SOURCES:
        raise TrajetError(f"unknown word-vector source {source!r} (known: {', '.join(SOURCES)})")
    try:
        import spacy
    except ImportError:
        raise TrajetError(f"word vectors {source!r} need spaCy: pip install spacy {source}") from None
    try:
        nlp = spacy.load(source, exclude=["tok2vec", "morphologizer", "parser", "senter", "ner",
                                          "attribute_ruler", "lemmatizer", "tagger"])
    except OSError:
        raise TrajetError(f"word vectors {source!r} are not installed: pip install {source}") from None
    vectors = nlp.vocab.vectors
    if vectors.shape[0] == 0:
        raise TrajetError(f"{source!r} has no word vectors")
    return list(nlp.vocab.strings), np.asarray(vectors.data), vectors.key2row, nlp.vocab.strings


def folded_vectors(source: str, wanted: set[str]) -> dict[str, np.ndarray]:
    """Mean vector of every form of the table that folds to a wanted key."""
    strings, data, key2row, store = _load_table(source)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for s in strings:
        f = fold(s)
        if f not in wanted:
            continue
        row = key2row.get(store[s])
        if row is None or row < 0:
            continue
        vec = data[row]
        if f in sums:
            sums[f] = sums[f] + vec
            counts[f] += 1
        else:
            sums[f] = vec.astype(np.float64)
            counts[f] = 1
    return {f: (sums[f] / counts[f]).astype(np.float32) for f in sums}


def piece_key(piece: str) -> str | None:
    """The folded word a word-initial tokenizer piece stands for; None for special and inner pieces."""
    if not piece.startswith(METASPACE) or len(piece) < 2:
        return None
    return fold(piece[len(METASPACE):])


def init_embeddings(embeddings: Any, vocab: Mapping[str, int], source: str, *, std: float, seed: int) -> InitReport:
    """Overwrite the rows of `embeddings` (a torch weight, vocab x width) whose piece has a pretrained vector."""
    import torch

    keys = {piece: k for piece, k in ((p, piece_key(p)) for p in vocab) if k}
    table = folded_vectors(source, set(keys.values()))
    found = sorted((vocab[p], table[k]) for p, k in keys.items() if k in table)
    width = embeddings.shape[1]
    if len(found) <= width:
        raise TrajetError(f"only {len(found)} tokenizer pieces have a vector in {source!r}: too few to project")
    ids = [i for i, _ in found]
    matrix = np.stack([v for _, v in found]).astype(np.float64)
    matrix -= matrix.mean(axis=0)
    _, s, vt = np.linalg.svd(matrix, full_matrices=False)
    projected = matrix @ vt[:width].T
    explained = float((s[:width] ** 2).sum() / (s**2).sum())
    projected *= std / projected.std()
    # A sign per component so that the projection does not depend on the SVD's arbitrary orientation.
    signs = np.sign(np.random.default_rng(seed).standard_normal(width))
    projected *= signs
    with torch.no_grad():
        embeddings[torch.tensor(ids)] = torch.tensor(projected, dtype=embeddings.dtype)
    return InitReport(source, len(vocab), len(ids), explained)
