"""Pull folders: a pull writes into a hidden sibling folder it holds a lock on, so that one killed midway
leaves a folder the next pull can recognise as abandoned and remove."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from trajet.manifest import PARTIAL_LOCK

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
