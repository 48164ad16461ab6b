"""A registry in S3 or any S3-compatible store (MinIO, moto), through the project's one client factory."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import tempfile
from pathlib import Path
from typing import Any

from trajet import s3
from trajet.errors import TrajetError
from trajet.registry.store import CHUNK, FileDigest, PreconditionFailed, RegistryError, digest_file

_S3_SINGLE_PUT_LIMIT = 5 * 1024**3


class S3Store:
    """S3 (or any S3-compatible store). Conditional puts (If-None-Match / If-Match) give immutability
    and compare-and-swap; uploads carry a SHA-256 checksum the server checks."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if len(bucket) < 3:
            raise TrajetError(f"s3://{bucket}: bucket names have at least 3 characters")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else s3.client()

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
                    chunk = body.read(CHUNK)
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
