"""Export a store snapshot once, as Parquet, under its content hash (a local folder or s3://bucket/prefix).

Why: a training host should need S3 credentials and nothing else. The database is read here, on the CPU side,
and never by the trainer; the file is immutable and checksummed like a registry version (written with
If-None-Match, manifest last), so an export that already exists is verified and reused, never overwritten.

Memory stays flat in the number of phrases: rows are streamed from the database in content order, one Parquet
row group per chunk, and the content hash is recomputed on the way, so a snapshot whose phrases changed
after it was taken (an annotation revised since) is refused instead of exported under a hash that lies.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trajet import config, store
from trajet.errors import TrajetError
from trajet.registry.factory import open_store
from trajet.registry.store import FileDigest, PreconditionFailed, Store, digest_file
from trajet.snapshot_format import (
    DATA,
    MANIFEST,
    PREFIX,
    SPLITS,
    SnapshotManifest,
    arrow_schema,
    cache_file,
    snapshot_uri,
)

CHUNK_ROWS = 50_000  # rows per database fetch and per Parquet row group: ~50 MB of Python objects at most


def default_root() -> str:
    """TRAJET_SNAPSHOT_ROOT, else the registry: the bucket the GPU hosts already read their bases and models from."""
    return os.environ.get("TRAJET_SNAPSHOT_ROOT") or config.registry_uri()


@dataclass
class ExportResult:
    uri: str  # the snapshot's folder: what `trajet train --snapshot-uri` and the finetune flow take
    snapshot_id: int
    manifest: SnapshotManifest
    reused: bool  # an earlier export of this content was verified and kept
    seconds: float


def export_snapshot(engine: Engine, root: str, snapshot_id: int | None = None, *,
                    chunk_rows: int = CHUNK_ROWS) -> ExportResult:
    """Export snapshot `snapshot_id` (default: a new snapshot of the store) to `<root>/snapshots/<hash>/`."""
    started = time.perf_counter()
    snap = store.create_snapshot(engine) if snapshot_id is None else store.get_snapshot(engine, snapshot_id)
    backend = open_store(root)
    folder = f"{PREFIX}/{snap.content_hash}"
    uri = snapshot_uri(root, snap.content_hash)
    existing = _existing(backend, folder, uri)
    if existing is not None:
        return ExportResult(uri, snap.id, existing, True, time.perf_counter() - started)

    tmp = cache_file(snap.content_hash).with_name(f".export-{uuid.uuid4().hex}.parquet")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        counts, rows, groups = write_parquet(engine, snap, tmp, chunk_rows)
        digest = digest_file(tmp)
        manifest = SnapshotManifest(
            content_hash=snap.content_hash, size=digest.size, sha256=digest.sha256, md5=digest.md5, rows=rows,
            counts=counts, row_groups=groups, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            source={"database": store.masked_url(engine), "snapshot_id": snap.id},
        )
        kept = _upload(backend, folder, uri, tmp, digest, manifest)
        if kept is not manifest:  # another export of the same content won the race: theirs is the one
            return ExportResult(uri, snap.id, kept, True, time.perf_counter() - started)
        if not cache_file(snap.content_hash).exists():  # this host reads it next: no download needed
            tmp.replace(cache_file(snap.content_hash))
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(uri, snap.id, manifest, False, time.perf_counter() - started)


def _existing(backend: Store, folder: str, uri: str) -> SnapshotManifest | None:
    """The manifest of an earlier export, once its data file is verified against it; None when there is none."""
    found = backend.read(f"{folder}/{MANIFEST}")
    if found is None:
        return None
    manifest = SnapshotManifest.from_json(found[0], f"{uri}/{MANIFEST}")
    problem = backend.verify(f"{folder}/{DATA}", FileDigest(manifest.size, manifest.sha256, manifest.md5))
    if problem:
        raise TrajetError(f"{uri}/{DATA} does not match its manifest ({problem}): the exported snapshot is "
                          "damaged; it is never overwritten, so remove that folder before exporting again")
    return manifest


def _upload(backend: Store, folder: str, uri: str, tmp: Path, digest: FileDigest,
            manifest: SnapshotManifest) -> SnapshotManifest:
    """Data first, verified, then the manifest; both If-None-Match. Returns the manifest that holds."""
    data_key, manifest_key = f"{folder}/{DATA}", f"{folder}/{MANIFEST}"
    try:
        backend.put(data_key, tmp, if_none_match=True, digest=digest)
    except PreconditionFailed:
        pass  # written by a concurrent export or a crashed one: kept only if it is byte for byte ours
    problem = backend.verify(data_key, digest)
    if problem:
        other = _existing(backend, folder, uri)
        if other is not None:
            return other
        raise TrajetError(f"{uri}/{DATA} exists without a manifest and differs from this export ({problem}): "
                          "left by an interrupted export of another version? remove that folder and export again")
    try:
        backend.put(manifest_key, manifest.to_json(), if_none_match=True)
    except PreconditionFailed:
        other = _existing(backend, folder, uri)
        return other if other is not None else manifest
    return manifest


# ------------------------------------------------------------------------------------------ the Parquet file


def _rows(engine: Engine, snapshot_id: int) -> sa.Select[Any]:
    P, SP = store.PhraseRow, store.SnapshotPhrase
    return (
        sa.select(P.norm_hash, P.text, sa.cast(P.entities, sa.Text), P.split, P.is_validation, P.group,
                  sa.cast(P.meta, sa.Text))
        .join(SP, SP.phrase_id == P.id)
        .where(SP.snapshot_id == snapshot_id)
        .order_by(store.hash_order(engine))
    )


def write_parquet(engine: Engine, snap: store.SnapshotInfo, path: Path,
                  chunk_rows: int = CHUNK_ROWS) -> tuple[dict[str, int], int, int]:
    """Stream the snapshot's rows into `path` (zstd, one row group per chunk); returns (counts per split,
    rows, row groups). Raises when the rows no longer hash to the snapshot's content hash."""
    import hashlib

    import pyarrow.parquet as pq

    digest = hashlib.sha256()
    counts = dict.fromkeys(SPLITS, 0)
    rows = groups = 0
    previous = ""
    schema = arrow_schema()
    with pq.ParquetWriter(path, schema, compression="zstd") as writer, engine.connect() as conn:
        result = conn.execution_options(yield_per=chunk_rows).execute(_rows(engine, snap.id))
        for part in result.partitions():
            if part[0][0] <= previous or any(a[0] >= b[0] for a, b in zip(part, part[1:], strict=False)):
                raise TrajetError("the database did not return the snapshot's rows in hash order: cannot export")
            previous = part[-1][0]
            writer.write_table(_chunk_table(part, schema, digest, counts), row_group_size=len(part))
            rows += len(part)
            groups += 1
    if digest.hexdigest() != snap.content_hash:
        raise TrajetError(f"snapshot {snap.id}'s phrases changed since it was taken (they now hash to "
                          f"{digest.hexdigest()[:12]}..., not {snap.content_hash[:12]}...): take a new snapshot "
                          "(`trajet data export-snapshot` without --snapshot)")
    return counts, rows, groups


_LABEL_JSON: dict[str, str] = {}


def _chunk_table(part: list[Any], schema: Any, digest: Any, counts: dict[str, int]) -> Any:
    """One row group's Arrow table; feeds each row's content line (store._content_line's bytes) to `digest`."""
    import pyarrow as pa

    texts, splits, is_val, groups, metas = [], [], [], [], []
    offsets, starts, ends, labels = [0], [], [], []
    for nhash, text, entities_json, split, validation, group, meta_json in part:
        spans = sorted((int(e["start"]), int(e["end"]), str(e["label"])) for e in orjson.loads(entities_json))
        effective = store.effective_split(split, bool(validation))
        counts[effective] += 1
        cells = []
        for start, end, label in spans:
            starts.append(start)
            ends.append(end)
            labels.append(label)
            quoted = _LABEL_JSON.get(label) or _LABEL_JSON.setdefault(label, json.dumps(label))
            cells.append(f"[{start}, {end}, {quoted}]")
        offsets.append(len(starts))
        digest.update(f"{nhash}\t{effective}\t{text}\t[{', '.join(cells)}]\n".encode())
        texts.append(text)
        splits.append(effective)
        is_val.append(bool(validation))
        groups.append(group)
        metas.append(meta_json or "{}")
    entity_type = schema.field("entities").type
    structs = pa.StructArray.from_arrays(
        [pa.array(starts, pa.int32()), pa.array(ends, pa.int32()), pa.array(labels, pa.string())],
        fields=list(entity_type.value_type),
    )
    entities = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), structs, type=entity_type)
    return pa.Table.from_arrays(
        [pa.array(texts, pa.string()), entities, pa.array(splits, pa.string()), pa.array(is_val, pa.bool_()),
         pa.array(groups, pa.string()), pa.array(metas, pa.string())],
        schema=schema,
    )

