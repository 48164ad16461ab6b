"""Pieces shared by the flows: retry policy, artifact keys, run names."""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import Flow
from prefect.states import State
from prefect.tasks import Task, exponential_backoff
from pydantic import StringConstraints

from trajet import config
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


# ------------------------------------------------------------------------------------------ database secrets
#
# Prefect stores every flow run's parameters in clear in its database (the UI shows them). A database URL
# parameter may therefore name a database but never carry its password: the password comes from the worker's
# environment (TRAJET_DATABASE_URL, or PGPASSWORD with a password-free URL) or from a Prefect Secret block
# named by `database_secret`. The pattern below goes into the deployments' parameter schema, so the server
# refuses a run with a password before storing it; `secret_free` refuses it on a direct call, before the run
# is created.

#: No "@" at all (SQLite, a host without user), or "scheme://user@..." with no ":password" before the "@".
PASSWORD_FREE_URL = r"^[^@]*$|^[A-Za-z][A-Za-z0-9+.-]*://[^:@/]*@[^@]*$"
DatabaseUrl = Annotated[str, StringConstraints(pattern=PASSWORD_FREE_URL)] | None
_PASSWORD_IN_URL = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):.*@")


def has_password(url: str) -> bool:
    return not re.fullmatch(PASSWORD_FREE_URL, url)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for logs and messages."""
    return _PASSWORD_IN_URL.sub(r"\g<head>:***@", url)


def refuse_password(database_url: str | None) -> None:
    if database_url and has_password(database_url):
        raise TrajetError(
            f"database_url {mask_url(database_url)} holds a password, and Prefect stores flow parameters in clear: "
            "set TRAJET_DATABASE_URL in the worker's environment, or store the URL in a Prefect Secret block and "
            "pass its name as database_secret"
        )


def resolve_database(database_url: str | None, database_secret: str | None) -> str | None:
    """The URL the tasks use: the Secret block's value, else the password-free parameter, else None (the
    worker's TRAJET_DATABASE_URL)."""
    from prefect import get_run_logger

    refuse_password(database_url)
    logger = get_run_logger()
    if not database_secret:
        if database_url:
            logger.info("database: %s (database_url parameter)", mask_url(database_url))
        else:
            logger.info("database: TRAJET_DATABASE_URL of this worker, %s", mask_url(config.database_url()))
        return database_url
    if database_url:
        raise TrajetError("give database_url or database_secret, not both")
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(database_secret).get()
    except ValueError as exc:
        raise TrajetError(f"cannot load the Prefect Secret block {database_secret!r}: {exc}") from None
    if not isinstance(value, str) or not value:
        raise TrajetError(f"the Prefect Secret block {database_secret!r} does not hold a database URL")
    logger.info("database: %s (Prefect Secret block %r)", mask_url(value), database_secret)
    return value


class _SecretFreeFlow(Flow):  # type: ignore[type-arg]
    """A flow whose direct calls refuse a password in `database_url` before Prefect creates (and stores) the run."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call_kwargs = {k: v for k, v in kwargs.items() if k not in ("return_state", "wait_for")}
        try:
            bound = inspect.signature(self.fn).bind_partial(*args, **call_kwargs)
        except TypeError:
            bound = None  # Prefect reports the binding error itself
        if bound is not None:
            refuse_password(bound.arguments.get("database_url"))
        return super().__call__(*args, **kwargs)


def secret_free(flow_obj: Flow) -> Flow:  # type: ignore[type-arg]
    """Give a flow the direct-call check of `_SecretFreeFlow` (the deployments' schema covers the rest)."""
    flow_obj.__class__ = _SecretFreeFlow
    return flow_obj
