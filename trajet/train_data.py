"""Which phrases a training run sees: files or a store snapshot, the validation split, and the weight of the
phrases people wrote.

The validation split is chosen by a hash of the normalised text, the same bits as the store's, so re-runs,
re-orderings and bench/gpu_train.py agree on it. Pure Python at import (the store loads only when used).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from trajet.errors import TrajetError
from trajet.phrases import Phrase, normalise_text, read_phrases


class PhraseSource(Protocol):
    """What training reads: phrases it can pass over more than once, and count. A list is one; so is a split of
    an exported snapshot (`snapshot_reader.SnapshotSplit`), streamed from its file on each pass."""

    def __iter__(self) -> Iterator[Phrase]: ...

    def __len__(self) -> int: ...


def is_validation(text: str) -> bool:
    """1/8 of phrases, chosen by a hash of the normalised text so re-runs and re-orderings agree; the same
    bits as the store's validation split (`store.hash_is_validation`)."""
    digest = hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()
    return int(digest[8:16], 16) % 8 == 0


def split_validation(phrases: Sequence[Phrase]) -> tuple[list[Phrase], list[Phrase]]:
    train = [p for p in phrases if not is_validation(p.text)]
    val = [p for p in phrases if is_validation(p.text)]
    if not val or not train:  # tiny inputs: still keep something on each side
        cut = max(1, len(phrases) // 8)
        return list(phrases[cut:]), list(phrases[:cut])
    return train, val


def load_training_data(
    train_path: Path | None = None,
    validation_path: Path | None = None,
    *,
    snapshot_id: int | None = None,
    engine: Any = None,
    snapshot_uri: str | None = None,
) -> tuple[PhraseSource, PhraseSource, str]:
    """(train, validation, content hash) from files, an exported snapshot (`snapshot_uri`: a folder or S3, no
    database needed; its splits stream from the file) or a store snapshot."""
    if snapshot_uri is not None:
        from trajet.snapshot_reader import SnapshotReader

        train, val, content_hash = SnapshotReader(snapshot_uri).training_splits()  # streamed, never listed
        if not train:
            raise TrajetError(f"snapshot {snapshot_uri} has no training phrases")
        return train, val, content_hash
    if train_path is not None:
        train = read_phrases(train_path)
        if validation_path is not None:
            val = read_phrases(validation_path)
        else:
            train, val = split_validation(train)
    else:
        try:
            from trajet import store
        except ImportError:
            raise TrajetError("no --train file given and the store is not available in this build") from None
        eng = engine or store.get_engine()
        store.ensure_schema(eng)
        snap = store.create_snapshot(eng) if snapshot_id is None else store.get_snapshot(eng, snapshot_id)
        train = store.load_split(eng, snap.id, "train")
        val = store.load_split(eng, snap.id, "validation")
        if not train:
            raise TrajetError(f"snapshot {snap.id} has no training phrases: ingest data first (`trajet ingest`)")
        return train, val, snap.content_hash
    if not train:
        raise TrajetError("no training phrases")
    if not val:
        raise TrajetError("no validation phrases")
    return train, val, phrases_hash(train + val)


def phrases_hash(phrases: Iterable[Phrase]) -> str:
    h = hashlib.sha256()
    for p in phrases:
        h.update(json.dumps([p.text, [e.to_dict() for e in p.entities]], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def weighted(train: PhraseSource, human_weight: int) -> PhraseSource:
    """The training phrases with every phrase people wrote repeated `human_weight` times: a list for a list, a
    re-iterable (`Weighted`) for a stream, in the same order either way."""
    if human_weight == 1:
        return train
    if isinstance(train, list):
        human = [p for p in train if is_human(p)]
        return train + human * (human_weight - 1)
    return Weighted(train, human_weight)


def is_human(phrase: Phrase) -> bool:
    return "pattern" not in phrase.meta


class Weighted:
    """`weighted` over a stream: each pass reads the source once, then once per extra weight for its human
    phrases, so nothing is held but the phrase being served."""

    def __init__(self, source: PhraseSource, human_weight: int) -> None:
        self.source = source
        self.human_weight = human_weight
        self.n = 0
        self.human = 0
        for p in source:  # counted once: len() is asked before training
            self.n += 1
            self.human += is_human(p)

    def __iter__(self) -> Iterator[Phrase]:
        yield from self.source
        for _ in range(self.human_weight - 1):
            yield from (p for p in self.source if is_human(p))

    def __len__(self) -> int:
        return self.n + self.human * (self.human_weight - 1)


class Texts:
    """The texts of some phrase sources, re-iterable: the corpus a built-in base's tokenizer may need, read only
    if it is needed (a pretrained base never reads it)."""

    def __init__(self, *sources: Iterable[Phrase]) -> None:
        self.sources = sources

    def __iter__(self) -> Iterator[str]:
        for source in self.sources:
            yield from (p.text for p in source)


# Test-only: a folder where each rank writes the batches of training rows its loader fetched (tests/test_distributed.py
# checks that the ranks' shards are disjoint and cover the data). Unset in any real run.
ROW_LOG_VAR = "TRAJET_TEST_RANK_LOG"


class RecordedRows:
    """The training dataset, unchanged, writing the row indices of every batch fetched to `rows-rank<R>.jsonl`.

    It records in `__getitems__`, which a DataLoader calls once per batch (in the process that builds the batch),
    so a length-grouping sampler that reads every row to learn its length records nothing."""

    def __init__(self, dataset: Any, path: Path) -> None:
        self.dataset = dataset
        self.path = path

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list[Any]:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps([int(i) for i in indices]) + "\n")
        return [self.dataset[i] for i in indices]


def row_recorder(dataset: Any) -> Any:
    """`dataset` itself, or a `RecordedRows` over it when the test-only TRAJET_TEST_RANK_LOG folder is set."""
    import os

    folder = os.environ.get(ROW_LOG_VAR)
    if not folder:
        return dataset
    Path(folder).mkdir(parents=True, exist_ok=True)
    return RecordedRows(dataset, Path(folder) / f"rows-rank{os.environ.get('RANK', '0')}.jsonl")
