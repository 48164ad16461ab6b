"""The one place a registry URI becomes a store: `s3://bucket/prefix`, `file:///path` or a plain local path."""

from __future__ import annotations

from pathlib import Path

from trajet import config
from trajet.errors import TrajetError
from trajet.registry.local_store import LocalStore
from trajet.registry.policy import Registry
from trajet.registry.s3_store import S3Store
from trajet.registry.store import Store


def open_store(uri: str) -> Store:
    """The store for a URI, chosen by its scheme."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[5:].partition("/")
        if not bucket:
            raise TrajetError(f"registry URI {uri}: no bucket name")
        return S3Store(bucket, prefix)
    if uri.startswith("file://"):
        uri = uri[7:]
    elif "://" in uri:
        raise TrajetError(f"registry URI {uri}: only s3://bucket/prefix or a local folder are supported")
    return LocalStore(Path(uri))


def open_registry(uri: str | None = None) -> Registry:
    """The registry at `uri` (default TRAJET_REGISTRY_URI, else $TRAJET_HOME/registry)."""
    uri = uri or config.registry_uri()
    return Registry(open_store(uri), uri)
