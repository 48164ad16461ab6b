"""What the registry needs from storage, and the one function that picks a store from a URI.

Why a protocol: the registry's guarantees (immutable versions, compare-and-swap on the champion, verified
pulls) are policy, written once in `trajet.registry.policy`; a store only has to offer conditional writes,
reads with an ETag, listing and verification with the same semantics. One file per store, chosen by URI
scheme in `trajet.registry.factory.open_store`, the way MLflow picks its artifact repositories.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from trajet.errors import TrajetError

CHUNK = 1 << 20


class RegistryError(TrajetError):
    """A registry operation that failed; the message names the object and the reason."""


class PreconditionFailed(Exception):
    """A conditional write lost: the object existed (If-None-Match) or changed (If-Match)."""


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str
    md5: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> FileDigest:
    """One read gives both hashes: sha256 is what the manifest trusts, md5 is what S3 reports as ETag."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return FileDigest(size, sha.hexdigest(), md5.hexdigest())


class Store(Protocol):
    """The few storage operations the registry needs; every store gives them the same semantics."""

    def key_uri(self, key: str) -> str: ...

    def read(self, key: str) -> tuple[bytes, str] | None:
        """(content, ETag), or None when the key does not exist."""
        ...

    def put(
        self,
        key: str,
        source: bytes | Path,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        digest: FileDigest | None = None,
    ) -> str:
        """Writes and returns the new ETag; raises PreconditionFailed when a condition does not hold."""
        ...

    def verify(self, key: str, digest: FileDigest) -> str | None:
        """None when the stored object has this size and sha256, else what differs."""
        ...

    def download(self, key: str, dest: Path) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

