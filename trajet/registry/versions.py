"""What a version is made of: its name, the files of the model directory it was pushed from, the code that
pushed it, and the time stamps the registry writes."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from trajet import config
from trajet.errors import TrajetError
from trajet.manifest import CHAMPION, MANIFEST_FILE, WEIGHTS_SUFFIX, check_relpath, refuse_pickle
from trajet.registry.store import FileDigest, digest_file

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def check_version_name(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.match(version) or version == CHAMPION:
        raise TrajetError(
            f"invalid model version {version!r}: use letters, digits, '.', '_' and '-' "
            f"(at most 128, not starting with a dot; {CHAMPION!r} is reserved)"
        )
    return version


def code_version() -> str:
    """Package version plus the git commit when running from a checkout, so a manifest names its code."""
    from trajet import __version__

    head = config.REPO_ROOT / ".git"
    commit = ""
    with contextlib.suppress(OSError, ValueError):
        if head.is_file():  # a worktree: "gitdir: <path>"
            head = Path(head.read_text().split(":", 1)[1].strip())
        ref = (head / "HEAD").read_text().strip()
        if ref.startswith("ref: "):
            ref_file = head / ref[5:]
            if not ref_file.exists():
                common = head / "commondir"
                base = (head / common.read_text().strip()).resolve() if common.exists() else head
                ref_file = base / ref[5:]
            ref = ref_file.read_text().strip()
        commit = ref[:12]
    return f"{__version__}+{commit}" if commit else __version__


@dataclass(frozen=True)
class ModelFile:
    path: str  # posix, relative to the model directory
    local: Path
    digest: FileDigest


def scan_model_dir(model_dir: Path) -> list[ModelFile]:
    """Every regular file of a model directory, refused when it holds pickles, links or no safetensors."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise TrajetError(f"{model_dir}: not a model directory")
    files: list[ModelFile] = []
    for local in sorted(model_dir.rglob("*")):
        rel = local.relative_to(model_dir).as_posix()
        if local.is_symlink():
            raise TrajetError(f"{model_dir}: {rel} is a symbolic link; push real files only")
        if local.is_dir() or rel == MANIFEST_FILE:  # a pulled model's registry manifest is metadata, not model
            continue
        check_relpath(rel, str(model_dir))
        refuse_pickle(rel, str(model_dir))
        files.append(ModelFile(rel, local, digest_file(local)))
    if not any(f.path.endswith(WEIGHTS_SUFFIX) for f in files):
        raise TrajetError(f"{model_dir}: no *.safetensors weights found; Trajet models are safetensors only")
    return files


