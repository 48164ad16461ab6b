"""The registry's rules, on any store: immutable versions, the champion moved by compare-and-swap, rollback
along the champion chain, an append-only history, and pulls that only land once every checksum matched.

Why this shape: the manifest is written last and only if absent, so a version either exists completely or
not at all, and can never be rewritten. Each push writes its files into a folder of its own (never overwriting
anything), so two writers pushing one version name at once cannot mix their files: the one whose manifest lands
wins with exactly its files, the other fails. The pointer only moves by compare-and-swap on what was read, so
two promotions racing cannot both win, and it only ever names a version whose manifest exists. Pulls land
in a temporary folder and are renamed into place only after every checksum matched, so a consumer never
sees a half-downloaded or tampered model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from trajet.errors import TrajetError
from trajet.manifest import (
    CHAMPION,
    MANIFEST_FILE,
    PARTIAL_LOCK,
    POINTER_FILE,
    RESERVED_KEYS,
    ChampionPointer,
    Manifest,
    stage_of,
)
from trajet.registry.partials import clean_stale_partials, hold_partial
from trajet.registry.store import (
    FileDigest,
    PreconditionFailed,
    RegistryError,
    Store,
    digest_file,
    sha256_bytes,
)
from trajet.registry.versions import (
    ModelFile,
    check_version_name,
    code_version,
    scan_model_dir,
    utc_now,
)

VERSIONS = "versions"
PROMOTIONS = "promotions"
log = logging.getLogger("trajet.registry")
_READ_CURRENT: Any = object()


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


class Registry:
    """Versions, champion pointer and history on one store. All methods are safe to call from
    concurrent processes: every state change is a conditional write."""

    def __init__(self, backend: Store, uri: str) -> None:
        self.backend = backend  # the store (trajet.registry.store.Store)
        self.uri = uri

    # ---- reading
    def _manifest_key(self, version: str) -> str:
        return f"{VERSIONS}/{version}/{MANIFEST_FILE}"

    def _manifest_raw(self, version: str) -> bytes | None:
        got = self.backend.read(self._manifest_key(version))
        return got[0] if got else None

    def _parse(self, data: bytes, where: str) -> dict[str, Any]:
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(obj, dict):
            raise RegistryError(f"{where}: expected a JSON object")
        return obj

    def _checked_manifest(self, raw: bytes, version: str) -> Manifest:
        """The stored manifest as a pull trusts it: it names `version`, every path is safe and not a pickle,
        and it lists safetensors weights."""
        where = self.backend.key_uri(self._manifest_key(version))
        obj = self._parse(raw, where)
        if obj.get("version") != version:
            raise TrajetError(f"{where}: manifest names version {obj.get('version')!r}, not {version}")
        manifest = Manifest.from_dict(obj, where)
        if not manifest.has_weights:
            raise TrajetError(f"{where}: lists no *.safetensors weights")
        return manifest

    def version_uri(self, version: str) -> str:
        return self.backend.key_uri(f"{VERSIONS}/{check_version_name(version)}/")

    def manifest(self, version: str) -> dict[str, Any]:
        raw = self._manifest_raw(check_version_name(version))
        if raw is None:
            raise TrajetError(f"no model version {version} in {self.uri}")
        return self._parse(raw, self.backend.key_uri(self._manifest_key(version)))

    def manifest_sha256(self, version: str) -> str:
        """The sha256 of the stored manifest bytes (what champion.json records)."""
        return self._checked_manifest_sha(version, "read")

    def _read_pointer(self) -> tuple[dict[str, Any] | None, str | None]:
        got = self.backend.read(POINTER_FILE)
        if got is None:
            return None, None
        return self._parse(got[0], self.backend.key_uri(POINTER_FILE)), got[1]

    def champion(self) -> dict[str, Any] | None:
        """The champion pointer (version, manifest_sha256, promoted_at, previous, history) or None."""
        return self._read_pointer()[0]

    def list_versions(self) -> list[dict[str, Any]]:
        """Every complete version's manifest plus its stage (champion / previous / archived), oldest first.
        A version whose push never finished has no manifest and is not listed."""
        pointer = self.champion()
        out = []
        for key in self.backend.list(f"{VERSIONS}/"):
            parts = key.split("/")
            if len(parts) != 3 or parts[2] != MANIFEST_FILE:
                continue
            manifest = self.manifest(parts[1])
            out.append({**manifest, "stage": stage_of(parts[1], pointer)})
        return sorted(out, key=lambda m: (str(m.get("created_at", "")), m["version"]))

    def history(self) -> list[dict[str, Any]]:
        """Every pointer move, oldest first."""
        records = []
        for key in self.backend.list(f"{PROMOTIONS}/"):
            got = self.backend.read(key)
            if got:
                records.append(self._parse(got[0], self.backend.key_uri(key)))
        return records

    # ---- push
    def push(
        self, version: str, model_dir: Path, manifest_extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Uploads a model directory as an immutable version; returns its manifest.

        Files go first, into a folder only this push writes, each verified (size + sha256) after upload; the
        manifest goes last with If-None-Match, so it is the commit point and names that folder. A failed push
        leaves no manifest (the version does not exist, nothing can promote it) and can simply be retried; a
        concurrent push of the same name either wins with all its files or fails, never mixing the two.

        `manifest_extra` is the version's provenance (`trajet.manifest.provenance`) and any other record a
        caller keeps with it."""
        check_version_name(version)
        extra = dict(manifest_extra or {})
        clash = [k for k in RESERVED_KEYS if k in extra]
        if clash:
            raise TrajetError(f"manifest_extra may not set {', '.join(clash)}: the registry writes those")
        files = scan_model_dir(Path(model_dir))
        if self._manifest_raw(version) is not None:
            raise self._immutable(version)
        objects = f"objects-{uuid.uuid4().hex[:16]}"
        manifest_sent = False  # once true, the manifest may have landed even if its write raised
        try:
            for f in files:
                self._upload_verified(f"{VERSIONS}/{version}/{objects}/{f.path}", f)
            manifest = Manifest.from_dict({
                "version": version,
                "created_at": utc_now(),
                "code_version": code_version(),
                **extra,
                "objects": objects,
                "files": [{"path": f.path, "size": f.digest.size, "sha256": f.digest.sha256} for f in files],
            }).to_dict()
            manifest_sent = True
            try:
                self.backend.put(self._manifest_key(version), _dumps(manifest), if_none_match=True)
            except PreconditionFailed:
                manifest_sent = False  # another push's manifest won
                raise self._immutable(version) from None
        except BaseException:
            if not manifest_sent:  # nothing references this push's folder
                self._discard(f"{VERSIONS}/{version}/{objects}/")
            raise
        return manifest

    def _discard(self, prefix: str) -> None:
        """Best effort: a local registry drops an unreferenced push folder; S3 keeps it (the registry's IAM
        policy grants no delete; a lifecycle rule or an operator can remove objects no manifest names)."""
        remove = getattr(self.backend, "remove_prefix", None)
        if remove is not None:
            with contextlib.suppress(OSError, RegistryError):
                remove(prefix)

    def _immutable(self, version: str) -> TrajetError:
        return TrajetError(
            f"version {version} already exists in {self.uri}: versions are immutable, push under a new version"
        )

    def _upload_verified(self, key: str, f: ModelFile) -> None:
        try:
            self.backend.put(key, f.local, if_none_match=True, digest=f.digest)
        except PreconditionFailed:
            raise RegistryError(f"{self.backend.key_uri(key)} already exists: another push used this folder") from None
        problem = self.backend.verify(key, f.digest)
        if problem:
            raise RegistryError(
                f"upload of {self.backend.key_uri(key)} did not verify: {problem}; retry the push"
            )

    # ---- pointer moves
    def _checked_manifest_sha(self, version: str, action: str) -> str:
        raw = self._manifest_raw(check_version_name(version))
        if raw is None:
            raise TrajetError(
                f"cannot {action} {version}: {self.uri} has no manifest for it "
                "(never pushed, or its push did not finish)"
            )
        return sha256_bytes(raw)

    def _checked_pullable(self, version: str, action: str) -> str:
        """The manifest sha256 of a version a pull would accept: its manifest parses and names it, every path is
        safe and not a pickle, it has safetensors weights, and every stored object has the listed size and
        sha256 (the server's SHA-256 checksum, else a read-back). The pointer must never name anything less."""
        raw = self._manifest_raw(check_version_name(version))
        if raw is None:
            raise TrajetError(
                f"cannot {action} {version}: {self.uri} has no manifest for it "
                "(never pushed, or its push did not finish)"
            )
        try:
            manifest = self._checked_manifest(raw, version)
            for entry in manifest.files:
                key = self._object_key(manifest, entry.path)
                problem = self.backend.verify(key, FileDigest(entry.size, entry.sha256, ""))
                if problem:
                    raise TrajetError(f"{self.backend.key_uri(key)} does not match the manifest ({problem})")
        except TrajetError as exc:
            text = " ".join(str(exc).split())
            raise TrajetError(f"cannot {action} {version}: {text}; a pull would refuse it, nothing was changed") from None
        return sha256_bytes(raw)

    def promote(self, version: str, *, expected: str | None | Any = _READ_CURRENT) -> dict[str, Any]:
        """Makes `version` the champion by compare-and-swap on champion.json.

        `expected` is the champion the caller based its decision on (the one the gate compared against);
        by default, whatever is read now. If another promotion lands in between, this one fails and
        changes nothing.
        """
        manifest_sha = self._checked_pullable(version, "promote")
        current, etag = self._read_pointer()
        current_version = current.get("version") if current else None
        if expected is not _READ_CURRENT and expected != current_version:
            raise TrajetError(
                f"cannot promote {version}: the champion is {current_version or 'none'}, not "
                f"{expected or 'none'} as expected (another promotion happened; re-run the gate)"
            )
        if current_version == version:
            raise TrajetError(f"{version} is already the champion")
        if current_version:
            pointer = ChampionPointer.from_dict(current).promoted(version, manifest_sha, utc_now())
        else:
            pointer = ChampionPointer(version, manifest_sha, utc_now())
        return self._swap(pointer.to_dict(), etag)

    def rollback(self, *, expected: str | None | Any = _READ_CURRENT) -> dict[str, Any]:
        """Moves the pointer back to the previous champion, by the same compare-and-swap."""
        current, etag = self._read_pointer()
        if not current:
            raise TrajetError(f"no champion in {self.uri}: nothing to roll back")
        current_version = current.get("version")
        if expected is not _READ_CURRENT and expected != current_version:
            raise TrajetError(
                f"cannot roll back: the champion is {current_version}, not {expected} as expected"
            )
        pointer = ChampionPointer.from_dict(current)
        if not pointer.history:
            raise TrajetError(f"{current_version} has no previous champion to roll back to")
        manifest_sha = self._checked_pullable(pointer.history[0], "roll back to")
        return self._swap(pointer.rolled_back(manifest_sha, utc_now()).to_dict(), etag)

    def _swap(self, pointer: dict[str, Any], etag: str | None) -> dict[str, Any]:
        try:
            if etag is None:
                self.backend.put(POINTER_FILE, _dumps(pointer), if_none_match=True)
            else:
                self.backend.put(POINTER_FILE, _dumps(pointer), if_match=etag)
        except PreconditionFailed:
            raise TrajetError(
                f"{self.backend.key_uri(POINTER_FILE)} changed while moving it to {pointer['version']} "
                "(a concurrent promotion won); nothing was changed by this one"
            ) from None
        stamp = pointer["promoted_at"].replace("-", "").replace(":", "").replace(".", "")
        record_key = f"{PROMOTIONS}/{stamp}-{pointer['version']}.json"
        # The pointer has moved: that is the promotion. The history record is an audit copy, so failing to
        # write it must not make the caller believe the promotion failed (the pointer's own history list
        # still chains every champion).
        try:
            self.backend.put(record_key, _dumps(pointer), if_none_match=True)
        except PreconditionFailed:
            pass  # same microsecond, same version: already recorded
        except RegistryError as exc:
            log.warning(
                "champion moved to %s but its history record was not written: %s", pointer["version"], exc
            )
        return pointer

    # ---- pull
    def _object_key(self, manifest: Manifest, path: str) -> str:
        """Where a manifest's file is stored: in the push's own folder, or beside the manifest (older pushes)."""
        return f"{VERSIONS}/{manifest.version}/{manifest.object_path(path)}"

    def resolve(self, ref: str) -> tuple[str, bytes]:
        """(version, manifest bytes) for 'champion' or a version; the champion's manifest must still
        hash to what the pointer recorded."""
        if ref == CHAMPION:
            pointer = self.champion()
            if not pointer:
                raise TrajetError(f"no champion in {self.uri} yet: push and promote a model first")
            version = check_version_name(pointer.get("version", ""))
            raw = self._manifest_raw(version)
            if raw is None:
                raise TrajetError(f"champion {version} has no manifest in {self.uri}")
            if sha256_bytes(raw) != pointer.get("manifest_sha256"):
                raise TrajetError(
                    f"manifest of champion {version} does not match the sha256 recorded in {POINTER_FILE}; refusing it"
                )
            return version, raw
        version = check_version_name(ref)
        raw = self._manifest_raw(version)
        if raw is None:
            raise TrajetError(f"no model version {version} in {self.uri}")
        return version, raw

    def pull(self, ref: str, dest: Path) -> Path:
        """Downloads 'champion' or a version into `dest` (absent or empty), verifying every sha256 first.

        Files land in a temporary sibling folder that is renamed into place only when all match, so a
        mismatch or a dropped connection leaves `dest` as it was.
        """
        version, raw = self.resolve(ref)
        manifest = self._checked_manifest(raw, version)
        dest = Path(dest).expanduser().absolute()
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise TrajetError(f"{dest} already exists and is not empty: pull into a new folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_partials(dest.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        try:
            owner = hold_partial(tmp)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RegistryError(f"cannot write {tmp}: {exc.strerror or exc}") from exc
        try:
            for entry in manifest.files:
                target = tmp.joinpath(*entry.path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                self.backend.download(self._object_key(manifest, entry.path), target)
                got = digest_file(target)
                if got.size != entry.size or got.sha256 != entry.sha256:
                    raise TrajetError(
                        f"checksum mismatch pulling {version}: {entry.path} is {got.size} bytes with sha256 "
                        f"{got.sha256[:16]}..., the manifest says {entry.size} bytes with sha256 "
                        f"{entry.sha256[:16]}...; refused, nothing was written to {dest}"
                    )
            (tmp / MANIFEST_FILE).write_bytes(raw)
            (tmp / PARTIAL_LOCK).unlink()  # still locked through `owner` until the folder has its name
            if dest.exists():
                dest.rmdir()
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            owner.close()
        return dest
