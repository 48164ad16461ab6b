"""The exported snapshot: where it lives, its Parquet schema and its manifest (no database, no S3 here).

A snapshot is exported once, under its content hash, as one Parquet file and a manifest written last:

    <root>/snapshots/<content_hash>/data.parquet    text, entities, split, is_validation, group, meta
    <root>/snapshots/<content_hash>/manifest.json   size, sha256 and md5 of data.parquet, rows per split

Why its own module: the exporter (trajet.snapshot_export) needs the store, the reader (trajet.snapshot_reader)
must not (a GPU host has S3 credentials and nothing else); both agree on the layout through this file.

Rows are in content order (by normalised-text hash, as `store.create_snapshot` hashes them), so the same
snapshot gives the same rows in the same order on every host, whatever the database's phrase ids were.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trajet.errors import TrajetError

SCHEMA_VERSION = 1
KIND = "trajet-snapshot"
DATA = "data.parquet"
MANIFEST = "manifest.json"
PREFIX = "snapshots"
SPLITS = ("train", "validation", "test")
_HASH = re.compile(r"^[0-9a-f]{64}$")


def arrow_schema() -> Any:
    """The file's columns. `split` is the effective split (validation apart from train), `meta` the stored JSON
    verbatim: provenance (pattern, noise) that training reads, e.g. to weight hand-written phrases."""
    import pyarrow as pa

    entity = pa.struct([("start", pa.int32()), ("end", pa.int32()), ("label", pa.string())])
    return pa.schema([
        ("text", pa.string()),
        ("entities", pa.list_(entity)),
        ("split", pa.string()),
        ("is_validation", pa.bool_()),
        ("group", pa.string()),
        ("meta", pa.string()),
    ])


def snapshot_uri(root: str, content_hash: str) -> str:
    """The folder URI of a snapshot under an export root (a local folder or s3://bucket/prefix)."""
    return f"{root.rstrip('/')}/{PREFIX}/{content_hash}"


def split_uri(uri: str) -> tuple[str, str]:
    """(folder URI, content hash) of a snapshot URI; the folder, its manifest or its data file are accepted,
    since people copy whichever the export printed."""
    folder = uri.rstrip("/")
    for name in (MANIFEST, DATA):
        if folder.endswith("/" + name):
            folder = folder[: -len(name) - 1]
    content_hash = folder.rsplit("/", 1)[-1]
    if not _HASH.match(content_hash):
        raise TrajetError(f"{uri}: not a snapshot URI (expected <root>/{PREFIX}/<64-hex content hash>, "
                          "as `trajet data export-snapshot` prints it)")
    return folder, content_hash


@dataclass(frozen=True)
class SnapshotManifest:
    """What the reader checks before trusting data.parquet: the hash it is named by, its size and checksums."""

    content_hash: str
    size: int
    sha256: str
    md5: str
    rows: int
    counts: dict[str, int]
    row_groups: int
    created_at: str
    source: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    kind: str = KIND
    file: str = DATA

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> SnapshotManifest:
        try:
            data = json.loads(raw)
            if data.get("kind") != KIND:
                raise ValueError(f"kind is {data.get('kind')!r}, not {KIND!r}")
            if data.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"schema version {data.get('schema_version')!r}; this code reads {SCHEMA_VERSION} "
                                 "(export the snapshot again with this version)")
            known = set(cls.__dataclass_fields__)
            return cls(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError, AttributeError) as exc:
            raise TrajetError(f"{where}: not a readable snapshot manifest ({exc})") from None


def cache_file(content_hash: str) -> Path:
    """Where this host keeps a verified copy of a snapshot's data file: TRAJET_HOME/cache/snapshots/<hash>/."""
    from trajet import config

    return config.home() / "cache" / PREFIX / content_hash / DATA
