"""The `finetune` flow: the GPU part of nightly-retrain, alone, so it can run on the `gpu` work pool.

In: a snapshot (an exported snapshot's URI, read without the database, or a store snapshot id) and a
training config. Out: the candidate pushed to the registry's staging prefix
(checksummed like any version), where nightly-retrain pulls it, verifies it and evaluates it. It never
touches the champion.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows._common import DatabaseUrl, resolve_database, secret_free, utc_stamp
from flows.preflight import base_preflight_task
from flows.story import training_line
from flows.tasks import pull_task, push_task, staging_uri, train_task, work_dir
from trajet.errors import TrajetError


def _run_name() -> str:
    params = flow_run.parameters
    return f"finetune-{params.get('snapshot_hash', '')[:8] or params.get('snapshot_id')}-{utc_stamp()}"


@secret_free
@flow(name="finetune", flow_run_name=_run_name)
def finetune(
    snapshot_id: int | None,
    staging_version: str,
    snapshot_hash: str = "",
    preset: str | None = None,
    config: dict[str, Any] | None = None,
    registry_uri: str | None = None,
    database_url: DatabaseUrl = None,
    warm_start_version: str | None = None,
    database_secret: str | None = None,
    nproc: int = 1,
    snapshot_uri: str | None = None,
) -> dict[str, Any]:
    """Train a candidate on the snapshot and push it to `<registry>/staging/versions/<staging_version>`.

    `snapshot_uri`: the exported snapshot (`<root>/snapshots/<hash>`, S3 or a folder) to train on; its checksum
    is verified and the database is never opened, so the GPU host needs S3 credentials only. Without it, the
    store snapshot `snapshot_id` is read from the database.

    `warm_start_version`: start from that registry version's weights (pulled and verified here) instead of
    the preset's base, so a nightly update only has to learn what changed.
    `nproc`: GPUs (processes, under torchrun) the training takes on this worker; 1 trains in this process."""
    from trajet.distributed import Launch

    logger = get_run_logger()
    Launch(nproc=nproc).check()  # a count this worker cannot run fails now, before the base and the snapshot
    logger.info(base_preflight_task(preset, config, warm_start=bool(warm_start_version)))
    if snapshot_uri:
        from trajet.snapshot_format import split_uri

        snapshot_hash = snapshot_hash or split_uri(snapshot_uri)[1]
        database_url = None
        logger.info("snapshot: %s (exported; the database is not opened)", snapshot_uri)
    elif snapshot_id is None:
        raise TrajetError("finetune needs a snapshot: snapshot_uri (exported) or snapshot_id (in the database)")
    else:
        database_url = resolve_database(database_url, database_secret)
    if warm_start_version:
        base = pull_task.with_options(task_run_name="pull-warm-start-base")(
            registry_uri, warm_start_version, str(work_dir("finetune", staging_version, "base")))
        config = {**(config or {}), "base_model": base}
    out = work_dir("finetune", staging_version) / "model"
    result = train_task(snapshot_id, snapshot_hash, preset, config, str(out), database_url, nproc=nproc,
                        snapshot_uri=snapshot_uri)
    logger.info(training_line(result))
    staging = staging_uri(registry_uri)
    pushed = push_task(
        staging,
        staging_version,
        result["output_dir"],
        {"stage": "staging", "snapshot": {"id": snapshot_id, "content_hash": snapshot_hash, "uri": snapshot_uri},
         "training": result},
    )
    return {"staging_uri": staging, "version": staging_version, "uri": pushed["uri"], "training": result}
