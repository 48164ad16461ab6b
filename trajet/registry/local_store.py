"""A registry in a local folder (or a shared filesystem mounted as one)."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from trajet.registry.store import FileDigest, PreconditionFailed, RegistryError, digest_file, sha256_bytes


class LocalStore:
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
