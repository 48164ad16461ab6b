"""Model registry: immutable versions, an atomic champion pointer, verified pulls.

Layout under the registry root (a local folder or ``s3://bucket/prefix``)::

    versions/<version>/<objects>/...  the HF model directory, file for file, in the folder of the push that
                                      committed it (the manifest's "objects"; older manifests: versions/<version>/...)
    versions/<version>/manifest.json  size + sha256 of every file, metrics, gate decision, provenance
    champion.json                     pointer: version, manifest sha256, promoted_at, previous champion
    promotions/<timestamp>-<version>.json   append-only history of every pointer move

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
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from trajet import config
from trajet.errors import TrajetError

MANIFEST = "manifest.json"
POINTER = "champion.json"
VERSIONS = "versions"
PROMOTIONS = "promotions"
MANIFEST_FORMAT = 1
CHAMPION = "champion"
# Every one of these is a pickle (or may be): loading it can run arbitrary code. Trajet loads safetensors only.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESERVED_MANIFEST_KEYS = ("format", "version", "created_at", "files", "objects")
OBJECTS_RE = re.compile(r"^objects-[0-9a-f]{12,64}$")
_CHUNK = 1 << 20
log = logging.getLogger(__name__)
_S3_SINGLE_PUT_LIMIT = 5 * 1024**3


class RegistryError(TrajetError):
    """A registry operation that failed; the message names the object and the reason."""


class PreconditionFailed(Exception):
    """A conditional write lost: the object existed (If-None-Match) or changed (If-Match)."""


# --------------------------------------------------------------------------------------------- helpers


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str
    md5: str


def digest_file(path: Path) -> FileDigest:
    """One read gives both hashes: sha256 is what the manifest trusts, md5 is what S3 reports as ETag."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return FileDigest(size, sha.hexdigest(), md5.hexdigest())


def check_version_name(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.match(version) or version == CHAMPION:
        raise TrajetError(
            f"invalid model version {version!r}: use letters, digits, '.', '_' and '-' "
            f"(at most 128, not starting with a dot; {CHAMPION!r} is reserved)"
        )
    return version


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
    if path in (MANIFEST, PARTIAL_LOCK):
        raise TrajetError(f"{where}: {path} is reserved for the registry's own use")
    return path


def refuse_pickle(path: str, where: str) -> None:
    if path.lower().endswith(PICKLE_SUFFIXES):
        raise TrajetError(
            f"{where}: {path} is a pickle-format file; Trajet loads safetensors only "
            f"(save the model with safe_serialization and remove {', '.join(PICKLE_SUFFIXES)} files)"
        )


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
        if local.is_dir() or rel == MANIFEST:  # a pulled model's registry manifest is metadata, not model
            continue
        check_relpath(rel, str(model_dir))
        refuse_pickle(rel, str(model_dir))
        files.append(ModelFile(rel, local, digest_file(local)))
    if not any(f.path.endswith(".safetensors") for f in files):
        raise TrajetError(f"{model_dir}: no *.safetensors weights found; Trajet models are safetensors only")
    return files


def manifest_files(manifest: dict[str, Any], where: str) -> list[dict[str, Any]]:
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


# --------------------------------------------------------------------------------------------- backends


class Backend(Protocol):
    """The few storage operations the registry needs; both backends give them the same semantics."""

    def key_uri(self, key: str) -> str: ...

    def read(self, key: str) -> tuple[bytes, str] | None: ...

    def put(
        self,
        key: str,
        source: bytes | Path,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        digest: FileDigest | None = None,
    ) -> str: ...

    def verify(self, key: str, digest: FileDigest) -> str | None: ...

    def download(self, key: str, dest: Path) -> None: ...

    def list(self, prefix: str) -> list[str]: ...


class LocalBackend:
    """A folder. Conditional writes hold an exclusive lock file and land with an atomic os.replace;
    the ETag is the content's sha256, so compare-and-swap compares what was read under the lock."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def key_uri(self, key: str) -> str:
        return str(self.root / key) + ("/" if key.endswith("/") else "")

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        # flock conflicts between separate open() calls, so threads of one process exclude each other too.
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _replace(self, tmp: Path, dest: Path) -> None:
        os.replace(tmp, dest)

    def _etag(self, path: Path) -> str | None:
        return digest_file(path).sha256 if path.is_file() else None

    def read(self, key: str) -> tuple[bytes, str] | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return data, sha256_bytes(data)

    def put(
        self,
        key: str,
        source: bytes | Path,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        digest: FileDigest | None = None,
    ) -> str:
        dest = self._path(key)
        tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                tmp.write_bytes(source)
                etag = sha256_bytes(source)
            else:
                shutil.copyfile(source, tmp)
                etag = digest.sha256 if digest else digest_file(tmp).sha256
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            with self._locked():
                if if_none_match and dest.exists():
                    raise PreconditionFailed(key)
                if if_match is not None and self._etag(dest) != if_match:
                    raise PreconditionFailed(key)
                self._replace(tmp, dest)
            return etag
        except OSError as exc:
            raise RegistryError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def verify(self, key: str, digest: FileDigest) -> str | None:
        path = self._path(key)
        if not path.is_file():
            return "object is missing"
        got = digest_file(path)
        if got.size != digest.size:
            return f"size {got.size} instead of {digest.size}"
        if got.sha256 != digest.sha256:
            return f"sha256 {got.sha256[:12]}... instead of {digest.sha256[:12]}..."
        return None

    def download(self, key: str, dest: Path) -> None:
        try:
            shutil.copyfile(self._path(key), dest)
        except FileNotFoundError as exc:
            raise RegistryError(f"{self.key_uri(key)} is missing") from exc
        except OSError as exc:
            raise RegistryError(f"cannot copy {self.key_uri(key)}: {exc.strerror or exc}") from exc

    def remove_prefix(self, prefix: str) -> None:
        """Deletes the folder of an unreferenced push (local registries only)."""
        shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            rel = path.relative_to(self.root).as_posix()
            if path.is_file() and not any(part.startswith(".") for part in rel.split("/")):
                keys.append(rel)
        return sorted(keys)


# A hung endpoint (accepts, never answers) must fail in seconds, not hold a pull or a champion poll for minutes.
# The read timeout bounds one wait for bytes, not a whole transfer: a large object streaming slowly is not cut.
S3_TIMEOUTS = {"TRAJET_S3_CONNECT_TIMEOUT": 5.0, "TRAJET_S3_READ_TIMEOUT": 10.0}
S3_MAX_ATTEMPTS = 3  # TRAJET_S3_MAX_ATTEMPTS: tries per call, the first included


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise TrajetError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise TrajetError(f"{name}={raw!r}: must be at least {minimum:g}")
    return value


def s3_client() -> Any:
    """boto3 client from the standard credential chain; AWS_ENDPOINT_URL(_S3) points it at MinIO & co.

    Building a client costs ~0.5 s (botocore loads its service models), and clients are thread-safe, so
    one is kept per endpoint/addressing/profile/key-id/timeouts combination."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    style = os.environ.get("TRAJET_S3_ADDRESSING_STYLE") or ("path" if endpoint else "auto")
    connect, read = (_env_number(name, default, 0.1) for name, default in S3_TIMEOUTS.items())
    attempts = int(_env_number("TRAJET_S3_MAX_ATTEMPTS", S3_MAX_ATTEMPTS, 1))
    return _cached_s3_client(
        endpoint, style, os.environ.get("AWS_PROFILE"), os.environ.get("AWS_ACCESS_KEY_ID"), connect, read, attempts
    )


@functools.lru_cache(maxsize=8)
def _cached_s3_client(
    endpoint: str | None,
    style: str,
    _profile: str | None,
    _key_id: str | None,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
) -> Any:
    import boto3
    from botocore.config import Config

    cfg = Config(
        s3={"addressing_style": style},
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=cfg)


class S3Backend:
    """S3 (or any S3-compatible store). Conditional puts (If-None-Match / If-Match) give immutability
    and compare-and-swap; uploads carry a SHA-256 checksum the server checks."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if len(bucket) < 3:
            raise TrajetError(f"s3://{bucket}: bucket names have at least 3 characters")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else s3_client()

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def key_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    @property
    def endpoint(self) -> str:
        return str(getattr(self.client.meta, "endpoint_url", None) or "the default S3 endpoint")

    def _call(self, what: str, key: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                raise PreconditionFailed(key) from exc
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(key) from exc
            if code == "NoSuchBucket":
                raise RegistryError(f"S3 bucket {self.bucket} does not exist") from exc
            raise RegistryError(
                f"S3 {what} {self.key_uri(key)} failed: {code} {err.get('Message', '')}".rstrip()
            ) from exc
        except BotoCoreError as exc:
            raise RegistryError(f"S3 {what} {self.key_uri(key)} at {self.endpoint} failed: {exc}") from exc

    def read(self, key: str) -> tuple[bytes, str] | None:
        try:
            resp = self._call("get", key, self.client.get_object, Key=self._key(key))
        except FileNotFoundError:
            return None
        return resp["Body"].read(), resp["ETag"]

    def put(
        self,
        key: str,
        source: bytes | Path,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
        digest: FileDigest | None = None,
    ) -> str:
        import base64

        kwargs: dict[str, Any] = {"Key": self._key(key)}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if isinstance(source, bytes):
            raw_sha = hashlib.sha256(source).digest()
        else:
            digest = digest or digest_file(source)
            if digest.size > _S3_SINGLE_PUT_LIMIT:
                raise RegistryError(f"{source}: {digest.size} bytes is over the 5 GiB single-upload limit")
            raw_sha = bytes.fromhex(digest.sha256)
        kwargs["ChecksumSHA256"] = base64.b64encode(raw_sha).decode()
        kwargs["Metadata"] = {"sha256": raw_sha.hex()}
        try:
            if isinstance(source, bytes):
                resp = self._call("put", key, self.client.put_object, Body=source, **kwargs)
            else:
                with open(source, "rb") as body:
                    resp = self._call("put", key, self.client.put_object, Body=body, **kwargs)
        except FileNotFoundError as exc:  # If-Match on a key that is gone
            raise PreconditionFailed(key) from exc
        return resp["ETag"]

    def verify(self, key: str, digest: FileDigest) -> str | None:
        """Checks what the server stored, from the cheapest trustworthy evidence it offers: its own
        SHA-256 checksum, else an MD5 ETag (single-part, non-KMS), else a full read-back."""
        import base64

        try:
            head = self._call(
                "head", key, self.client.head_object, Key=self._key(key), ChecksumMode="ENABLED"
            )
        except FileNotFoundError:
            return "object is missing"
        if head["ContentLength"] != digest.size:
            return f"size {head['ContentLength']} instead of {digest.size}"
        server_sha = head.get("ChecksumSHA256")
        if server_sha and "-" not in server_sha:
            got = base64.b64decode(server_sha).hex()
            return (
                None if got == digest.sha256 else f"sha256 {got[:12]}... instead of {digest.sha256[:12]}..."
            )
        if head.get("ETag", "").strip('"') == digest.md5:
            return None
        with tempfile.TemporaryDirectory(prefix="trajet-verify-") as tmp:
            local = Path(tmp) / "object"
            self.download(key, local)
            got_digest = digest_file(local)
        if got_digest.sha256 != digest.sha256:
            return f"sha256 {got_digest.sha256[:12]}... instead of {digest.sha256[:12]}..."
        return None

    def download(self, key: str, dest: Path) -> None:
        try:
            resp = self._call("get", key, self.client.get_object, Key=self._key(key))
        except FileNotFoundError as exc:
            raise RegistryError(f"{self.key_uri(key)} is missing") from exc
        body = resp["Body"]
        try:
            out = open(dest, "wb")  # noqa: SIM115 - closed below; reading and writing fail apart
        except OSError as exc:
            raise RegistryError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        with out, contextlib.closing(body):
            while True:
                # botocore's timeouts subclass OSError too: a hung body must not read as a local write error.
                try:
                    chunk = body.read(_CHUNK)
                except Exception as exc:
                    raise RegistryError(
                        f"S3 download of {self.key_uri(key)} from {self.endpoint} failed: {exc}"
                    ) from exc
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise RegistryError(f"cannot write {dest}: {exc.strerror or exc}") from exc

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        keys: list[str] = []
        pages = self._call("list", prefix, lambda **kw: list(paginator.paginate(**kw)), Prefix=full)
        for page in pages:
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)


# --------------------------------------------------------------------------------------------- registry

_READ_CURRENT: Any = object()


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


class Registry:
    """Versions, champion pointer and history on one backend. All methods are safe to call from
    concurrent processes: every state change is a conditional write."""

    def __init__(self, backend: Backend, uri: str) -> None:
        self.backend = backend
        self.uri = uri

    # ---- reading
    def _manifest_key(self, version: str) -> str:
        return f"{VERSIONS}/{version}/{MANIFEST}"

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
        got = self.backend.read(POINTER)
        if got is None:
            return None, None
        return self._parse(got[0], self.backend.key_uri(POINTER)), got[1]

    def champion(self) -> dict[str, Any] | None:
        """The champion pointer (version, manifest_sha256, promoted_at, previous, history) or None."""
        return self._read_pointer()[0]

    def list_versions(self) -> list[dict[str, Any]]:
        """Every complete version's manifest plus its stage (champion / previous / archived), oldest first.
        A version whose push never finished has no manifest and is not listed."""
        pointer = self.champion()
        champion = pointer.get("version") if pointer else None
        previous = pointer.get("previous") if pointer else None
        out = []
        for key in self.backend.list(f"{VERSIONS}/"):
            parts = key.split("/")
            if len(parts) != 3 or parts[2] != MANIFEST:
                continue
            manifest = self.manifest(parts[1])
            stage = "champion" if parts[1] == champion else "previous" if parts[1] == previous else "archived"
            out.append({**manifest, "stage": stage})
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
        """
        check_version_name(version)
        extra = dict(manifest_extra or {})
        clash = [k for k in RESERVED_MANIFEST_KEYS if k in extra]
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
            manifest = {
                "format": MANIFEST_FORMAT,
                "version": version,
                "created_at": utc_now(),
                "code_version": code_version(),
                **extra,
                "objects": objects,
                "files": [{"path": f.path, "size": f.digest.size, "sha256": f.digest.sha256} for f in files],
            }
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
        where = self.backend.key_uri(self._manifest_key(version))
        try:
            manifest = self._parse(raw, where)
            if manifest.get("version") != version:
                raise TrajetError(f"{where}: manifest names version {manifest.get('version')!r}")
            files = manifest_files(manifest, where)
            if not any(str(f["path"]).endswith(".safetensors") for f in files):
                raise TrajetError(f"{where}: lists no *.safetensors weights")
            for entry in files:
                key = self._object_key(version, manifest, entry["path"], where)
                problem = self.backend.verify(key, FileDigest(entry["size"], entry["sha256"], ""))
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
        history = [current_version, *current.get("history", [])] if current_version else []
        pointer = {
            "version": version,
            "manifest_sha256": manifest_sha,
            "promoted_at": utc_now(),
            "previous": current_version,
            "history": history,
            "action": "promote",
        }
        return self._swap(pointer, etag)

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
        history = list(current.get("history") or [])
        if not history:
            raise TrajetError(f"{current_version} has no previous champion to roll back to")
        target = history[0]
        pointer = {
            "version": target,
            "manifest_sha256": self._checked_pullable(target, "roll back to"),
            "promoted_at": utc_now(),
            "previous": history[1] if len(history) > 1 else None,
            "history": history[1:],
            "action": "rollback",
            "rolled_back_from": current_version,
        }
        return self._swap(pointer, etag)

    def _swap(self, pointer: dict[str, Any], etag: str | None) -> dict[str, Any]:
        try:
            if etag is None:
                self.backend.put(POINTER, _dumps(pointer), if_none_match=True)
            else:
                self.backend.put(POINTER, _dumps(pointer), if_match=etag)
        except PreconditionFailed:
            raise TrajetError(
                f"{self.backend.key_uri(POINTER)} changed while moving it to {pointer['version']} "
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
    def _object_key(self, version: str, manifest: dict[str, Any], path: str, where: str) -> str:
        """Where a manifest's file is stored: in the push's own folder, or beside the manifest (older pushes)."""
        objects = manifest.get("objects")
        if objects is None:
            return f"{VERSIONS}/{version}/{path}"
        if not isinstance(objects, str) or not OBJECTS_RE.match(objects):
            raise TrajetError(f"{where}: unsafe objects folder {objects!r}")
        return f"{VERSIONS}/{version}/{objects}/{path}"

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
                    f"manifest of champion {version} does not match the sha256 recorded in {POINTER}; refusing it"
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
        where = self.backend.key_uri(self._manifest_key(version))
        manifest = self._parse(raw, where)
        if manifest.get("version") != version:
            raise TrajetError(f"{where}: manifest names version {manifest.get('version')!r}, not {version}")
        files = manifest_files(manifest, where)
        if not any(str(f["path"]).endswith(".safetensors") for f in files):
            raise TrajetError(f"{where}: lists no *.safetensors weights")
        dest = Path(dest).expanduser().absolute()
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise TrajetError(f"{dest} already exists and is not empty: pull into a new folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_partials(dest.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        try:
            owner = _hold_partial(tmp)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RegistryError(f"cannot write {tmp}: {exc.strerror or exc}") from exc
        try:
            for entry in files:
                target = tmp.joinpath(*entry["path"].split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                self.backend.download(self._object_key(version, manifest, entry["path"], where), target)
                got = digest_file(target)
                if got.size != entry["size"] or got.sha256 != entry["sha256"]:
                    raise TrajetError(
                        f"checksum mismatch pulling {version}: {entry['path']} is {got.size} bytes with sha256 "
                        f"{got.sha256[:16]}..., the manifest says {entry['size']} bytes with sha256 "
                        f"{entry['sha256'][:16]}...; refused, nothing was written to {dest}"
                    )
            (tmp / MANIFEST).write_bytes(raw)
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


PARTIAL_LOCK = ".trajet-pull.lock"
# A partial folder without its lock file is either being born (a few microseconds) or was left by a process
# killed at that moment: only this old is it removed.
PARTIAL_UNLOCKED_GRACE_S = 3600.0


def _hold_partial(folder: Path) -> Any:
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


def open_registry(uri: str | None = None) -> Registry:
    """The registry at `uri` (default TRAJET_REGISTRY_URI, else $TRAJET_HOME/registry)."""
    uri = uri or config.registry_uri()
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[5:].partition("/")
        if not bucket:
            raise TrajetError(f"registry URI {uri}: no bucket name")
        return Registry(S3Backend(bucket, prefix), uri)
    if uri.startswith("file://"):
        uri = uri[7:]
    elif "://" in uri:
        raise TrajetError(f"registry URI {uri}: only s3://bucket/prefix or a local folder are supported")
    return Registry(LocalBackend(Path(uri)), uri)


def _cached_copy_matches(target: Path, raw: bytes) -> bool:
    """A cached pull is reused when its manifest is the registry's and every file has the listed size."""
    try:
        if sha256_bytes((target / MANIFEST).read_bytes()) != sha256_bytes(raw):
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
