"""Model registry: immutable versions, an atomic champion pointer, verified pulls.

Layout under the registry root (a local folder or ``s3://bucket/prefix``)::

    versions/<version>/<objects>/...  the HF model directory, file for file, in the folder of the push that
                                      committed it (the manifest's "objects"; older manifests: versions/<version>/...)
    versions/<version>/manifest.json  size + sha256 of every file, metrics, gate decision, provenance
    champion.json                     pointer: version, manifest sha256, promoted_at, previous champion
    promotions/<timestamp>-<version>.json   append-only history of every pointer move

Modules: `store` (the Store protocol), `local_store` and `s3_store` (one per kind of storage), `factory`
(the store for a URI scheme, and `open_registry`), `policy` (the rules: immutability, compare-and-swap,
rollback, verified pulls), `versions` (version names, what a push uploads), `partials` (pull folders),
`model_cache` (the local copies `trajet predict --model` reads). The records themselves (Manifest,
ChampionPointer) are `trajet.manifest`.
"""

from __future__ import annotations

from trajet.manifest import CHAMPION
from trajet.registry.factory import open_registry, open_store
from trajet.registry.local_store import LocalStore
from trajet.registry.model_cache import resolve_model_ref
from trajet.registry.partials import clean_stale_partials
from trajet.registry.policy import Registry
from trajet.registry.s3_store import S3Store
from trajet.registry.store import (
    FileDigest,
    PreconditionFailed,
    RegistryError,
    Store,
    digest_file,
    sha256_bytes,
)
from trajet.registry.versions import VERSION_RE, check_version_name, code_version, scan_model_dir, utc_now

__all__ = [
    "CHAMPION",
    "VERSION_RE",
    "FileDigest",
    "LocalStore",
    "PreconditionFailed",
    "Registry",
    "RegistryError",
    "S3Store",
    "Store",
    "check_version_name",
    "clean_stale_partials",
    "code_version",
    "digest_file",
    "open_registry",
    "open_store",
    "resolve_model_ref",
    "scan_model_dir",
    "sha256_bytes",
    "utc_now",
]

