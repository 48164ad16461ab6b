"""Pieces shared by the flows: retry policy, artifact keys, run names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from trajet.errors import TrajetError
from trajet.phrases import Phrase

#: I/O tasks (database, S3) retry three times, waiting ~2 s, 4 s, 8 s (with jitter).
IO_RETRIES = 3
IO_RETRY_DELAYS = exponential_backoff(backoff_factor=2)
IO_RETRY_JITTER = 0.5


def is_transient(exc: BaseException) -> bool:
    """Network, disk and database hiccups; a `RegistryError` (an upload that did not verify) too."""
    if type(exc).__name__ == "RegistryError":
        return True
    if isinstance(exc, TrajetError):
        return False
    if isinstance(exc, OSError | TimeoutError):  # ConnectionError, a locked or full disk...
        return True
    module = type(exc).__module__.split(".")[0]
    return module in {"sqlalchemy", "botocore", "boto3", "urllib3", "psycopg", "sqlite3", "httpx"}


def retry_transient(task: Task[..., Any], task_run: Any, state: State) -> bool:
    """Retry what may pass on the next try; bad input, a refused promotion or a bug fail at once."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the state's exception is re-raised here to be classified
        return is_transient(exc)
    return True


def io_task_options() -> dict[str, Any]:
    """Keyword arguments for `@task` on tasks that talk to the database or the registry."""
    return {
        "retries": IO_RETRIES,
        "retry_delay_seconds": IO_RETRY_DELAYS,
        "retry_jitter_factor": IO_RETRY_JITTER,
        "retry_condition_fn": retry_transient,
    }


def utc_stamp(now: datetime | None = None) -> str:
    """A sortable UTC timestamp for run and version names (`20261128-020000`)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def slug(text: str, limit: int = 40) -> str:
    """Lowercase letters, digits and dashes only: what Prefect accepts in artifact keys."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].strip("-") or "x"


def texts_of(phrases: list[Phrase]) -> set[str]:
    return {p.text for p in phrases}


def fmt(value: Any) -> str:
    """Numbers for tables: 4 decimals, `-` when absent."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
