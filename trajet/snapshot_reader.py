"""Read an exported snapshot (trajet.snapshot_export) for training: local folder or S3, checksum verified.

A GPU host calls this with S3 credentials only; it never opens the database. An S3 snapshot is downloaded
once into TRAJET_HOME/cache/snapshots/<hash>/ and every open checks the copy's sha256 against the manifest,
so a damaged cache or a tampered object is an error naming both checksums, never silent training on other
data. The file is memory-mapped and read in record batches: `batches` holds one batch of phrases (10,000 by
default) besides the row group being decoded, whatever the snapshot's size. `training_splits` gives the trainer
each split as a re-iterable stream over the file (`SnapshotSplit`): training keeps only its tokenized cache, never
a list of phrases; `training_data` gives lists (they grow with N), for code that wants them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trajet.errors import TrajetError
from trajet.phrases import Phrase
from trajet.registry.factory import open_store
from trajet.registry.local_store import LocalStore
from trajet.registry.store import RegistryError, digest_file
from trajet.snapshot_format import DATA, MANIFEST, SPLITS, SnapshotManifest, cache_file, split_uri
from trajet.tags import Entity

READ_ROWS = 10_000  # phrases built at a time by `batches`: what the reader holds besides what it is given


class SnapshotReader:
    """One exported snapshot, verified on open. `uri`: `<root>/snapshots/<hash>` (or its manifest/data file)."""

    def __init__(self, uri: str, *, expected_hash: str | None = None) -> None:
        self.uri, self.content_hash = split_uri(uri)
        if expected_hash and expected_hash != self.content_hash:
            raise TrajetError(f"{uri} is snapshot {self.content_hash[:12]}..., not the expected "
                              f"{expected_hash[:12]}...")
        backend = open_store(self.uri)
        found = backend.read(MANIFEST)
        if found is None:
            raise TrajetError(f"no exported snapshot at {self.uri} ({MANIFEST} missing): export it with "
                              "`trajet data export-snapshot`")
        self.manifest = SnapshotManifest.from_json(found[0], f"{self.uri}/{MANIFEST}")
        if self.manifest.content_hash != self.content_hash:
            raise TrajetError(f"{self.uri}/{MANIFEST} describes snapshot {self.manifest.content_hash[:12]}..., "
                              "not the one its folder is named after")
        self.path = _local_copy(backend, self.uri, self.manifest)

    def batches(self, split: str | None = None, batch_rows: int = READ_ROWS) -> Iterator[list[Phrase]]:
        """The phrases of `split` (all when None), at most `batch_rows` at a time, in content order."""
        for phrases, _ in self._groups(split, batch_rows):
            yield phrases

    def _groups(self, split: str | None = None,
                batch_rows: int = READ_ROWS) -> Iterator[tuple[list[Phrase], list[str]]]:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if split is not None and split not in SPLITS:
            raise TrajetError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        parquet = pq.ParquetFile(self.path, memory_map=True)
        shared = _Shared()
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=["text", "entities", "split", "meta"]):
            table = pa.Table.from_batches([batch])
            if split is not None:
                table = table.filter(pc.equal(table["split"], split))
            if table.num_rows:
                yield table_phrases(table, shared), table.column("split").to_pylist()

    def phrases(self, split: str) -> list[Phrase]:
        return [p for batch in self.batches(split) for p in batch]

    def training_data(self) -> tuple[list[Phrase], list[Phrase], str]:
        """(train, validation, content hash): what trajet.train_data.load_training_data gives from the store."""
        train: list[Phrase] = []
        validation: list[Phrase] = []
        for phrases, splits in self._groups():
            for phrase, split in zip(phrases, splits, strict=True):
                if split == "train":
                    train.append(phrase)
                elif split == "validation":
                    validation.append(phrase)
        return train, validation, self.content_hash

    def training_splits(self) -> tuple[SnapshotSplit, SnapshotSplit, str]:
        """(train, validation, content hash), each split streamed from the memory-mapped file on every pass."""
        return SnapshotSplit(self, "train"), SnapshotSplit(self, "validation"), self.content_hash

    def verify_content(self) -> None:
        """Recompute the content hash from the rows themselves (text, spans, split), as store.create_snapshot
        does: proof that the file holds exactly the snapshot it is named after, beyond its checksum. Streams:
        an export is in content order, and a file that is not cannot be the snapshot."""
        import hashlib

        from trajet.store import norm_hash
        from trajet.words import normalise_text

        normalise = normalise_text.__wrapped__  # uncached: a million distinct texts would only churn the cache
        digest = hashlib.sha256()
        previous = ""
        for phrases, splits in self._groups():
            for phrase, split in zip(phrases, splits, strict=True):
                nhash = norm_hash(normalise(phrase.text))
                if nhash <= previous:
                    raise TrajetError(f"{self.uri}: rows are not in content order (or repeat a phrase)")
                previous = nhash
                spans = json.dumps([[e.start, e.end, e.label] for e in phrase.entities])
                digest.update(f"{nhash}\t{split}\t{phrase.text}\t{spans}\n".encode())
        if digest.hexdigest() != self.content_hash:
            raise TrajetError(f"{self.uri}: its rows hash to {digest.hexdigest()[:12]}..., not to the snapshot's "
                              f"{self.content_hash[:12]}...")


class SnapshotSplit:
    """One split of an exported snapshot as a re-iterable of phrases: each pass reads the memory-mapped file in
    record batches, so a pass holds one batch, whatever the snapshot's size. `len` is the manifest's count."""

    def __init__(self, reader: SnapshotReader, split: str) -> None:
        self.reader = reader
        self.split = split

    def __iter__(self) -> Iterator[Phrase]:
        for batch in self.reader.batches(self.split):
            yield from batch

    def __len__(self) -> int:
        return int(self.reader.manifest.counts.get(self.split, 0))

    @property
    def uri(self) -> str:
        return f"{self.reader.uri}"


class _Shared:
    """Values many phrases repeat, built once: an Entity (immutable) is shared outright; a meta dict is decoded
    once per distinct JSON text and each phrase gets its own dict over the shared values. Measured on 79k
    phrases: 1.4 KB a phrase without this, ~0.6 KB with it; a million phrases in training's lists is then
    ~0.5 GB, not 1.4 GB. Bounded, so a snapshot with no repeats does not grow a second copy of itself."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self.entities: dict[tuple[int, int, str], Entity] = {}
        self.metas: dict[str, dict[str, Any]] = {}

    def entity(self, start: int, end: int, label: str) -> Entity:
        key = (start, end, label)
        found = self.entities.get(key)
        if found is None:
            if len(self.entities) >= self.LIMIT:
                self.entities.clear()
            found = self.entities[key] = Entity(start, end, label)
        return found

    def meta(self, raw: str | None) -> dict[str, Any]:
        if not raw:
            return {}
        found = self.metas.get(raw)
        if found is None:
            if len(self.metas) >= self.LIMIT:
                self.metas.clear()
            # the json module, as the database drivers read the column: orjson would turn an integer over 64
            # bits into a float, and the two paths must give the trainer the same phrases
            found = self.metas[raw] = json.loads(raw)
        return dict(found)


def table_phrases(table: Any, shared: _Shared | None = None) -> list[Phrase]:
    """Phrases of an Arrow table with the snapshot's columns, built as store.row_to_phrase builds them."""
    shared = shared or _Shared()
    texts = table.column("text").to_pylist()
    metas = table.column("meta").to_pylist()
    entities = table.column("entities").combine_chunks()
    offsets = entities.offsets.to_pylist()  # a sliced array's offsets need not start at 0: flatten() agrees
    base = offsets[0] if offsets else 0
    offsets = [o - base for o in offsets]
    values = entities.flatten()
    starts = values.field("start").to_pylist()
    ends = values.field("end").to_pylist()
    labels = values.field("label").to_pylist()
    entity, meta = shared.entity, shared.meta
    return [
        Phrase(text, tuple(entity(starts[k], ends[k], labels[k]) for k in range(offsets[i], offsets[i + 1])),
               meta(metas[i]))
        for i, text in enumerate(texts)
    ]


def _local_copy(backend: Any, uri: str, manifest: SnapshotManifest) -> Path:
    """A local path to the verified data file: in place for a folder, else the cache (downloaded if absent
    or damaged)."""
    if isinstance(backend, LocalStore):
        path = backend.root / DATA
        _check(path, manifest, f"{uri}/{DATA}")
        return path
    dest = cache_file(manifest.content_hash)
    if dest.is_file():
        got = digest_file(dest)
        if (got.size, got.sha256) == (manifest.size, manifest.sha256):
            return dest
        dest.unlink()  # a damaged or partial copy: fetched again below
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".download-{uuid.uuid4().hex}")
    try:
        try:
            backend.download(DATA, tmp)
        except RegistryError as exc:
            raise TrajetError(f"cannot download {uri}/{DATA}: {exc}") from None
        _check(tmp, manifest, f"{uri}/{DATA}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _check(path: Path, manifest: SnapshotManifest, where: str) -> None:
    if not path.is_file():
        raise TrajetError(f"{where} is missing (the manifest is there): the export is incomplete")
    got = digest_file(path)
    if got.size != manifest.size or got.sha256 != manifest.sha256:
        raise TrajetError(f"{where}: checksum mismatch (sha256 {got.sha256[:12]}..., {got.size} bytes; the "
                          f"manifest says {manifest.sha256[:12]}..., {manifest.size} bytes): not using it")
