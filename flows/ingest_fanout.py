"""The ingest flow's fan-out: one mapped task per file or S3 object, at most `max_parallel` running at once.

Why tasks per object: an inbox of thousands of objects shows one task run each (its own retries, its own state
in the UI), and they overlap their S3 reads and database writes. Threads by default, since they start in no
time and the demo's and tests' sources are a few files; `processes=True` gives each worker a process of its own
for a large inbox on a multi-core worker (the validation is CPU-bound Python, which threads share).

Every task of a fan-out (more than one object) also carries the `trajet-ingest` tag, so a Prefect tag
concurrency limit bounds ingestion across all flow runs too (`prefect concurrency-limit create trajet-ingest 4`). Concurrent tasks and runs writing the
same store are safe: trajet.ingest stores a phrase once and counts the loser of a race as a duplicate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run

from flows._common import io_task_options
from trajet.errors import TrajetError

INGEST_TAG = "trajet-ingest"
DEFAULT_PARALLEL = 2  # the CPU worker of infra/compose.yaml has 2 cores; raise it with the worker's


@contextmanager
def _engine(database_url: str | None) -> Iterator[Any]:
    """A checked engine for one task, disposed after it: tasks may run in other threads or processes."""
    from trajet import store

    engine = store.get_engine(database_url)
    try:
        store.ensure_schema(engine)
        yield engine
    finally:
        engine.dispose()


@task(name="list-inbox", cache_policy=NO_CACHE, **io_task_options())
def list_inbox_task(source: str) -> list[dict[str, str]]:
    """An S3 inbox's objects, by name, in order: a network call, so a task with retries."""
    return _entries(source)


@task(name="check-store", cache_policy=NO_CACHE, **io_task_options())
def check_store_task(database_url: str | None) -> None:
    """An unreachable or out-of-date database fails the run even when there is nothing to ingest."""
    with _engine(database_url):
        pass


def _entries(source: str) -> list[dict[str, str]]:
    """The source's files or objects, by name, in order (a name whose item cannot be read carries why)."""
    from trajet import ingest

    return [{"name": item.name, "skip": item.skip} for item in ingest.list_source(source)]


def _object_run_name() -> str:
    entry = task_run.parameters.get("entry") or {}
    return f"ingest-{str(entry.get('name', 'object')).rsplit('/', 1)[-1]}"


@task(name="ingest-object", task_run_name=_object_run_name, cache_policy=NO_CACHE,
      **io_task_options())
def ingest_object_task(entry: dict[str, str], database_url: str | None, max_bad_ratio: float | None) -> dict[str, Any]:
    """Safe to retry and to run beside other ingestions: bytes already stored are reported `already_ingested`,
    a phrase another task stored first is a duplicate."""
    from trajet import config, ingest

    if entry.get("skip"):
        return dataclasses.asdict(ingest.BatchReport(None, entry["name"], "", "skipped", message=entry["skip"]))
    ratio = config.max_bad_ratio() if max_bad_ratio is None else max_bad_ratio
    with _engine(database_url) as engine:
        return dataclasses.asdict(ingest.ingest_item(ingest.source_item(entry["name"]), engine, ratio))


def ingest_fanned_out(source: str, database_url: str | None, max_bad_ratio: float | None, max_parallel: int,
                      processes: bool = False) -> list[dict[str, Any]]:
    """One report per file or object of `source`, in the source's order."""
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    if max_parallel < 1:
        raise TrajetError(f"max_parallel must be at least 1, got {max_parallel}")
    # a local folder is listed in the flow itself: a task more would cost each one-file ingest a few tenths of
    # a second (`trajet demo` runs a dozen)
    entries = list_inbox_task(source) if source.startswith("s3://") else _entries(source)
    if not entries:
        check_store_task(database_url)
    if len(entries) <= 1 or max_parallel == 1:  # nothing to overlap: no pool to start
        return [ingest_object_task(entry, database_url, max_bad_ratio) for entry in entries]
    runner_type = ProcessPoolTaskRunner if processes else ThreadPoolTaskRunner
    with runner_type(max_workers=min(max_parallel, len(entries))) as runner:
        # the tag only here: Prefect checks a tag's concurrency limit at every task start (a few tenths of a
        # second on the ephemeral API), which a one-file ingest should not pay
        tagged = ingest_object_task.with_options(tags=[INGEST_TAG])
        futures = runner.map(tagged, {"entry": entries, "database_url": unmapped(database_url),
                                                  "max_bad_ratio": unmapped(max_bad_ratio)})
        futures.wait()
        failed = [f for f in futures if f.state.is_failed() or f.state.is_crashed()]
        if failed:  # every other object was ingested (or not) on its own; the run fails with the first reason
            failed[0].result()
        return [f.result() for f in futures]
