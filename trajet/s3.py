"""The one S3 client factory: the registry, the ingest inbox and the base mirror all talk to S3 through it.

Why one: three clients built three ways meant three behaviours against the same bucket (one ignored
`AWS_ENDPOINT_URL_S3`, one had no retries, none agreed on timeouts). Here the endpoint, addressing style,
region, timeouts and retries are read from the environment once, the same way for every caller, and
credentials come from boto3's own chain (environment, profile, shared files, instance role).

boto3 is imported only when a client is built, so the CLI starts without it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from trajet.errors import TrajetError

# A hung endpoint (accepts, never answers) must fail in seconds, not hold a pull or a champion poll for minutes.
# The read timeout bounds one wait for bytes, not a whole transfer: a large object streaming slowly is not cut.
TIMEOUT_VARS = {"TRAJET_S3_CONNECT_TIMEOUT": 5.0, "TRAJET_S3_READ_TIMEOUT": 10.0}
# TRAJET_S3_MAX_ATTEMPTS, given to botocore as `max_attempts`, which counts retries: a call is tried at most
# this many times plus one (botocore reports it as `total_max_attempts`).
MAX_ATTEMPTS = 3
# The S3-specific variable wins over the general one, as in the AWS SDKs: a MinIO for S3 and real AWS for the rest.
ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")


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


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class S3Settings:
    """What a client is built from; equal settings share one client."""

    endpoint: str | None
    addressing_style: str
    region: str | None
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    # Not passed to boto3 (its chain reads them itself) but part of the key: a changed identity gets a new client.
    profile: str | None = None
    access_key_id: str | None = None

    @classmethod
    def from_env(cls) -> S3Settings:
        endpoint = endpoint_url()
        connect, read = (_env_number(name, default, 0.1) for name, default in TIMEOUT_VARS.items())
        return cls(
            endpoint=endpoint,
            addressing_style=os.environ.get("TRAJET_S3_ADDRESSING_STYLE") or ("path" if endpoint else "auto"),
            region=_first_env(REGION_VARS),
            connect_timeout=connect,
            read_timeout=read,
            max_attempts=int(_env_number("TRAJET_S3_MAX_ATTEMPTS", MAX_ATTEMPTS, 1)),
            profile=os.environ.get("AWS_PROFILE"),
            access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        )


def endpoint_url() -> str | None:
    """The S3 endpoint to call: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS's own (None)."""
    return _first_env(ENDPOINT_VARS)


def client() -> Any:
    """A boto3 S3 client for the current environment.

    Building one costs ~0.5 s (botocore loads its service models) and clients are thread-safe, so one is
    kept per distinct setting."""
    return _cached_client(S3Settings.from_env())


@functools.lru_cache(maxsize=8)
def _cached_client(settings: S3Settings) -> Any:
    import boto3
    from botocore.config import Config

    cfg = Config(
        s3={"addressing_style": settings.addressing_style},
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.endpoint, region_name=settings.region, config=cfg
    )

