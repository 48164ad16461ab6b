"""Local copies of registry versions: interrupted pulls cleaned up, and the cache `trajet predict --model`
reads a version from."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from trajet import config
from trajet.errors import TrajetError
from trajet.model_dir import MANIFEST_FILE, PARTIAL_LOCK
from trajet.registry.store import sha256_bytes

log = logging.getLogger("trajet.registry")
# A partial folder without its lock file is either being born (a few microseconds) or was left by a process
# killed at that moment: only this old is it removed.
PARTIAL_UNLOCKED_GRACE_S = 3600.0


def hold_partial(folder: Path) -> Any:
    """Marks `folder` as a pull in progress: an exclusive flock on a file inside it, released by the kernel
    when this process ends however it ends. The file is locked before it takes its name, so a cleaner never
    finds it unlocked while the pull runs."""
    import fcntl

    staging = folder / f"{PARTIAL_LOCK}.{uuid.uuid4().hex[:8]}"
    fh = open(staging, "w")  # noqa: SIM115 - held open (locked) until the pull ends
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    os.rename(staging, folder / PARTIAL_LOCK)
    return fh


def clean_stale_partials(parent: Path) -> list[Path]:
    """Removes the `.<name>.partial-*` folders that killed pulls left in `parent`; a pull still running holds
    the lock on its folder and is left alone. Returns what was removed."""
    import fcntl
    import time

    removed: list[Path] = []
    try:
        folders = [p for p in Path(parent).glob(".*.partial-*") if p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    for folder in folders:
        try:
            fh = open(folder / PARTIAL_LOCK, "rb")  # noqa: SIM115
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime > PARTIAL_UNLOCKED_GRACE_S:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            continue
        except OSError:
            continue
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live pull
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            log.info("removed %s, left by an interrupted pull", folder)
    return removed



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
    from trajet.manifest import CHAMPION
    from trajet.registry import open_registry
    from trajet.registry.versions import VERSION_RE

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
