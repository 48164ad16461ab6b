"""The registry's two records, as types: a version's `Manifest` and the `ChampionPointer`.

Why types: the same JSON used to be read in five places with five ideas of its keys (some read keys no writer
ever wrote). Writers build these records and readers parse them here, so a key exists once. Reading is
tolerant of every manifest and pointer Trajet has written (no `objects`, no `code_version`, no `action`):
models and registries written before stay readable. The checks on a manifest's file list are strict
(relative safe paths, no pickles, safetensors present) because a pull writes those paths to disk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from trajet.errors import TrajetError

MANIFEST_FILE = "manifest.json"  # the registry manifest, in a version folder and in a pulled copy
POINTER_FILE = "champion.json"
PARTIAL_LOCK = ".trajet-pull.lock"  # held inside a pull's temporary folder while it downloads
WEIGHTS_SUFFIX = ".safetensors"
# Every one of these is a pickle (or may be): loading it can run arbitrary code. Trajet loads safetensors only.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
SCHEMA_VERSION = 1  # the "format" of manifests and the pointer; readers accept every record without one too
CHAMPION = "champion"
STAGES = ("champion", "previous", "archived")
OBJECTS_RE = re.compile(r"^objects-[0-9a-f]{12,64}$")
# Keys the registry itself writes; provenance may not set them.
RESERVED_KEYS = ("format", "version", "created_at", "files", "objects")
# Provenance that a gated promotion always records, None included (None: there was no champion, no snapshot).
_GATE_RECORD = ("metrics", "champion_version", "champion_metrics", "gate", "snapshot_hash", "base_model",
                "training_config")
_PROVENANCE = ("snapshot_hash", "base_model", "training_config", "training_metrics", "metrics",
               "champion_version", "champion_metrics", "gate")


def check_relpath(path: Any, where: str) -> str:
    """A manifest path must stay inside the version folder: relative, no '..', no tricks."""
    if not isinstance(path, str) or not path:
        raise TrajetError(f"{where}: file path {path!r} is not a non-empty string")
    pure = PurePosixPath(path)
    parts = path.split("/")
    if (
        pure.is_absolute()
        or "\\" in path
        or re.match(r"^[A-Za-z]:", path)
        or any(part in ("", ".", "..") for part in parts)
        or "\x00" in path
    ):
        raise TrajetError(f"{where}: unsafe file path {path!r} (absolute paths and '..' are refused)")
    if path in (MANIFEST_FILE, PARTIAL_LOCK):
        raise TrajetError(f"{where}: {path} is reserved for the registry's own use")
    return path


def refuse_pickle(path: str, where: str) -> None:
    if path.lower().endswith(PICKLE_SUFFIXES):
        raise TrajetError(
            f"{where}: {path} is a pickle-format file; Trajet loads safetensors only "
            f"(save the model with safe_serialization and remove {', '.join(PICKLE_SUFFIXES)} files)"
        )


def manifest_files(manifest: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """The manifest's file list, each path checked before anything touches the disk."""
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise TrajetError(f"{where}: manifest has no file list")
    seen: set[str] = set()
    for entry in files:
        if not isinstance(entry, dict):
            raise TrajetError(f"{where}: manifest file entry {entry!r} is not an object")
        path = check_relpath(entry.get("path"), where)
        refuse_pickle(path, where)
        size, digest = entry.get("size"), entry.get("sha256")
        if not isinstance(size, int) or size < 0 or not isinstance(digest, str) or len(digest) != 64:
            raise TrajetError(f"{where}: manifest entry for {path} lacks a valid size and sha256")
        if path in seen:
            raise TrajetError(f"{where}: {path} is listed twice in the manifest")
        seen.add(path)
    return files


@dataclass(frozen=True)
class FileEntry:
    path: str  # posix, relative to the model directory
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """One immutable registry version: its files with size and sha256, and where the model came from.

    `objects` is the folder of the push that committed the version (None in manifests older than
    per-push folders: the files lie beside the manifest). `extra` keeps every other key a writer added
    (the flows record `snapshot`, `training`, `run_id`, `stage`), so parsing and writing back loses nothing."""

    version: str
    files: tuple[FileEntry, ...]
    created_at: str = ""
    code_version: str | None = None
    objects: str | None = None
    format: int = SCHEMA_VERSION
    snapshot_hash: str | None = None
    base_model: str | None = None
    training_config: Mapping[str, Any] | None = None
    training_metrics: Mapping[str, Any] | None = None
    metrics: Mapping[str, Any] | None = None  # the evaluation stored at push time (test / challenge reports)
    champion_version: str | None = None
    champion_metrics: Mapping[str, Any] | None = None
    gate: Mapping[str, Any] | None = None  # GateDecision.to_dict() of a gated promotion
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], where: str = "manifest") -> Manifest:
        """Parses any manifest Trajet wrote; the file list is checked (see `manifest_files`)."""
        if not isinstance(obj, Mapping):
            raise TrajetError(f"{where}: expected a JSON object")
        files = tuple(FileEntry(f["path"], f["size"], f["sha256"]) for f in manifest_files(obj, where))
        objects = obj.get("objects")
        if objects is not None and (not isinstance(objects, str) or not OBJECTS_RE.match(objects)):
            raise TrajetError(f"{where}: unsafe objects folder {objects!r}")
        known = {*RESERVED_KEYS, "code_version", *_PROVENANCE}
        return cls(
            version=str(obj.get("version", "")),
            files=files,
            created_at=str(obj.get("created_at", "")),
            code_version=obj.get("code_version"),
            objects=objects,
            format=int(obj.get("format", SCHEMA_VERSION)),
            **{key: obj.get(key) for key in _PROVENANCE},
            extra={k: v for k, v in obj.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.format, "version": self.version, "created_at": self.created_at}
        if self.code_version is not None:
            out["code_version"] = self.code_version
        out.update(self.extra)
        gated = self.gate is not None
        for key in _PROVENANCE:
            value = getattr(self, key)
            if value is not None or (gated and key in _GATE_RECORD):
                out[key] = value
        if self.objects is not None:
            out["objects"] = self.objects
        out["files"] = [f.to_dict() for f in self.files]
        return out

    @property
    def has_weights(self) -> bool:
        return any(f.path.endswith(WEIGHTS_SUFFIX) for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def object_path(self, path: str) -> str:
        """Where a file is stored, relative to the version folder."""
        return f"{self.objects}/{path}" if self.objects else path

    def dataset_hash(self) -> str | None:
        """The snapshot the model was trained on: `snapshot_hash`, else the flows' `snapshot.content_hash`."""
        if self.snapshot_hash:
            return str(self.snapshot_hash)
        snap = self.extra.get("snapshot")
        if isinstance(snap, Mapping) and snap.get("content_hash"):
            return str(snap["content_hash"])
        return None

    def evaluation(self) -> Mapping[str, Any] | None:
        """The metrics stored at push time, else those training reported."""
        return self.metrics if self.metrics is not None else self.training_metrics


def provenance(
    training_info: Mapping[str, Any] | None = None,
    *,
    metrics: Mapping[str, Any] | None = None,
    gate: Mapping[str, Any] | None = None,
    champion_version: str | None = None,
    champion_metrics: Mapping[str, Any] | None = None,
    snapshot_hash: str | None = None,
    base_model: str | None = None,
    training_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance keys of a manifest, the same for a manual push and a gated promotion.

    `training_info` is what training wrote beside the weights (`trajet_training.json`); explicit arguments
    win over it. A gated promotion (`gate` given) records the champion it was compared with, None for the
    first model."""
    info = training_info or {}
    out: dict[str, Any] = {}
    if training_info is not None:
        cfg = info.get("config") or {}
        out["training_config"] = cfg
        out["base_model"] = cfg.get("base_model") or info.get("base_model_resolved")
        out["snapshot_hash"] = info.get("snapshot_hash")
        out["training_metrics"] = info.get("metrics")
    if gate is not None:
        out.update(champion_version=champion_version, champion_metrics=champion_metrics, gate=dict(gate),
                   snapshot_hash=snapshot_hash, base_model=base_model, training_config=dict(training_config or {}))
    else:
        for key, value in (("snapshot_hash", snapshot_hash), ("base_model", base_model),
                           ("training_config", training_config), ("champion_version", champion_version),
                           ("champion_metrics", champion_metrics)):
            if value is not None:
                out[key] = value
    if metrics is not None or gate is not None:
        out["metrics"] = metrics
    return out


@dataclass(frozen=True)
class ChampionPointer:
    """champion.json: which version serves, the sha256 of its manifest bytes, and the chain of champions
    before it (`history`, newest first) that rollback walks back along."""

    version: str
    manifest_sha256: str
    promoted_at: str
    previous: str | None = None
    history: tuple[str, ...] = ()
    action: str = "promote"  # or "rollback"
    rolled_back_from: str | None = None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ChampionPointer:
        version = obj.get("version") if isinstance(obj, Mapping) else None
        if not isinstance(version, str) or not version:
            raise TrajetError(f"champion pointer has no version: {json.dumps(obj, default=str)[:200]}")
        return cls(
            version=version,
            manifest_sha256=str(obj.get("manifest_sha256") or ""),
            promoted_at=str(obj.get("promoted_at") or ""),
            previous=obj.get("previous"),
            history=tuple(obj.get("history") or ()),
            action=str(obj.get("action") or "promote"),
            rolled_back_from=obj.get("rolled_back_from"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "manifest_sha256": self.manifest_sha256,
            "promoted_at": self.promoted_at,
            "previous": self.previous,
            "history": list(self.history),
            "action": self.action,
        }
        if self.rolled_back_from is not None:
            out["rolled_back_from"] = self.rolled_back_from
        return out

    def promoted(self, version: str, manifest_sha256: str, at: str) -> ChampionPointer:
        """The pointer after promoting `version` over this champion."""
        return ChampionPointer(version, manifest_sha256, at, previous=self.version,
                               history=(self.version, *self.history))

    def rolled_back(self, manifest_sha256: str, at: str) -> ChampionPointer:
        """The pointer after going back to the previous champion (the caller checks there is one)."""
        target, *rest = self.history
        return ChampionPointer(target, manifest_sha256, at, previous=rest[0] if rest else None,
                               history=tuple(rest), action="rollback", rolled_back_from=self.version)


def stage_of(version: str, pointer: Mapping[str, Any] | None) -> str:
    """champion / previous / archived: where a version stands relative to the champion pointer."""
    if pointer and pointer.get("version") == version:
        return "champion"
    if pointer and pointer.get("previous") == version:
        return "previous"
    return "archived"
