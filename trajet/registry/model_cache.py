"""The local cache `trajet predict --model REF` reads registry versions from: each version pulled (verified)
once into $TRAJET_HOME/models/<version>, reused while its manifest is the registry's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from trajet import config
from trajet.errors import TrajetError
from trajet.manifest import CHAMPION, MANIFEST_FILE
from trajet.registry.factory import open_registry
from trajet.registry.store import sha256_bytes
from trajet.registry.versions import VERSION_RE


def _cached_copy_matches(target: Path, raw: bytes) -> bool:
    """A cached pull is reused when its manifest is the registry's and every file has the listed size."""
    try:
        if sha256_bytes((target / MANIFEST_FILE).read_bytes()) != sha256_bytes(raw):
            return False
        manifest = json.loads(raw)
        return all(
            target.joinpath(*f["path"].split("/")).stat().st_size == f["size"] for f in manifest["files"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def resolve_model_ref(ref: str, cache_dir: Path | None = None) -> Path:
    """A model directory for `trajet predict --model REF`: an existing folder as is, else the registry's
    `champion` or a version, pulled (verified) once into the cache, $TRAJET_HOME/models/<version>."""
    as_path = Path(ref).expanduser()
    if as_path.is_dir():
        return as_path
    if ref != CHAMPION and not VERSION_RE.match(ref):
        raise TrajetError(f"{ref}: no such model directory, and not a registry version name")
    registry = open_registry()
    version, raw = registry.resolve(ref)
    cache = Path(cache_dir) if cache_dir is not None else config.home() / "models"
    target = cache / version
    if _cached_copy_matches(target, raw):
        return target
    if target.exists():  # stale or damaged copy (e.g. a registry reset): replace it
        shutil.rmtree(target)
    try:
        return registry.pull(version, target)
    except TrajetError:
        if _cached_copy_matches(target, raw):  # another process pulled it meanwhile
            return target
        raise
