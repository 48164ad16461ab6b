"""Prefect tasks over the Trajet stages, shared by `finetune` and `nightly-retrain`.

I/O tasks (database, registry) retry with exponential backoff; training and evaluation do not (a failed
training is a real failure, retrying it would only burn GPU time). Every task is NO_CACHE: each one
either has a side effect or reads state that changes between runs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._common import io_task_options


def _engine(database_url: str | None):
    from trajet import store

    engine = store.get_engine(database_url)
    store.ensure_schema(engine)
    return engine


@task(name="snapshot-dataset", cache_policy=NO_CACHE, **io_task_options())
def snapshot_task(database_url: str | None) -> dict[str, Any]:
    """Freeze the stored phrases; the same content gives the same snapshot (and hash) back."""
    from trajet import store

    info = store.create_snapshot(_engine(database_url))
    return dataclasses.asdict(info)


def training_config(preset: str | None, overrides: dict[str, Any] | None):
    """Defaults < preset < TRAJET_TRAIN_* env < the flow's overrides. No preset: the CPU default on a
    machine without CUDA, camembert-base on a GPU host."""
    from trajet.train_config import config_for

    return config_for(preset or "auto", overrides or None)


@task(name="export-snapshot", cache_policy=NO_CACHE, **io_task_options())
def export_snapshot_task(snapshot_id: int, root: str, database_url: str | None) -> str:
    """Parquet under the snapshot's content hash (an existing export is verified and reused); returns its URI."""
    from trajet.snapshot_export import export_snapshot

    result = export_snapshot(_engine(database_url), root, snapshot_id)
    m = result.manifest
    get_run_logger().info("snapshot %s %s: %s (%s phrases, %.1f MB, sha256 %s...)", snapshot_id,
                          "verified and reused" if result.reused else "exported", result.uri, m.rows,
                          m.size / 1e6, m.sha256[:12])
    return result.uri


@task(name="train-candidate", cache_policy=NO_CACHE)
def train_task(
    snapshot_id: int | None,
    snapshot_hash: str,
    preset: str | None,
    overrides: dict[str, Any] | None,
    output_dir: str,
    database_url: str | None,
    progress: bool = False,
    nproc: int = 1,
    snapshot_uri: str | None = None,
) -> dict[str, Any]:
    """Fine-tune on the snapshot's train split; early stopping uses its validation split, never test.
    `nproc` > 1: in that many processes (GPUs) on this worker, under torchrun; the task waits for them.

    `snapshot_uri`: read the exported snapshot (Parquet, checksum-verified) instead of the database, so a GPU
    host needs S3 credentials only."""
    from trajet.distributed import Launch, run_training
    from trajet.errors import TrajetError

    if snapshot_uri:
        from trajet.snapshot_reader import SnapshotReader

        train_split, validation, _ = SnapshotReader(snapshot_uri,
                                                    expected_hash=snapshot_hash or None).training_splits()
    else:
        from trajet import store

        engine = _engine(database_url)
        train_split = store.load_split(engine, snapshot_id, "train")
        validation = store.load_split(engine, snapshot_id, "validation")
    if not train_split:
        raise TrajetError(f"snapshot {snapshot_uri or snapshot_id} has no training phrases: ingest a dataset first")
    config = training_config(preset, overrides)
    result = run_training(
        train_split, validation, config, Path(output_dir), Launch(nproc=nproc), snapshot_hash=snapshot_hash,
        progress=progress, log_line=get_run_logger().info,
    )
    return {
        "output_dir": str(result.output_dir),
        "best_metrics": result.best_metrics,
        "steps": result.steps,
        "seconds": result.seconds,
        "config": config.to_dict(),
        "n_train": len(train_split),
        "n_validation": len(validation),
        "processes": nproc,
        **({"snapshot_uri": snapshot_uri} if snapshot_uri else {}),
    }


@task(name="evaluate-model", cache_policy=NO_CACHE)
def evaluate_task(
    model_dir: str, snapshot_id: int, database_url: str | None, use_challenge: bool = True,
    behaviour_n: int | None = None,
) -> dict:
    """Candidate and champion go through this same task on the same test split, challenge set and
    behavioural suite (`behaviour_n` sentences per test; the same seed, so the same sentences)."""
    from trajet import evaluate, store

    test = store.load_split(_engine(database_url), snapshot_id, "test")
    challenge = evaluate.load_challenge() if use_challenge and challenge_available() else None
    return evaluate.full_evaluation(Path(model_dir), test, challenge, behaviour_n=behaviour_n)


def challenge_available() -> bool:
    from trajet import config

    return (config.data_dir() / "challenge.jsonl").is_file()


@task(name="read-champion", cache_policy=NO_CACHE, **io_task_options())
def champion_task(registry_uri: str | None) -> dict[str, Any] | None:
    """The champion pointer and its manifest, or None before the first promotion."""
    from trajet import registry

    reg = registry.open_registry(registry_uri)
    pointer = reg.champion()
    if not pointer:
        return None
    return {"pointer": pointer, "manifest": reg.manifest(pointer["version"])}


@task(name="pull-model", cache_policy=NO_CACHE, **io_task_options())
def pull_task(registry_uri: str | None, ref: str, dest: str) -> str:
    """Download and verify every sha256 against the manifest before the model is used."""
    from trajet import registry

    return str(registry.open_registry(registry_uri).pull(ref, Path(dest)))


@task(name="push-model", cache_policy=NO_CACHE, **io_task_options())
def push_task(registry_uri: str | None, version: str, model_dir: str, extra: dict[str, Any]) -> dict[str, Any]:
    from trajet import registry

    reg = registry.open_registry(registry_uri)
    manifest = reg.push(version, Path(model_dir), extra)
    return {"manifest": manifest, "uri": reg.version_uri(version)}


def staging_uri(registry_uri: str | None) -> str:
    """Candidates waiting for the gate live under `<registry>/staging`, apart from promoted versions."""
    from trajet import config

    base = (registry_uri or config.registry_uri()).rstrip("/")
    return f"{base}/staging"


def work_dir(*parts: str) -> Path:
    """Scratch space for a run's candidate and pulled models (under TRAJET_HOME/runs)."""
    from trajet import config

    root = Path(os.environ.get("TRAJET_RUNS_DIR", config.home() / "runs"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@task(name="gate-and-publish", cache_policy=NO_CACHE, **io_task_options())
def gate_and_publish_task(
    candidate_dir: str,
    candidate_eval: dict[str, Any],
    champion_eval: dict[str, Any] | None,
    champion_version: str | None,
    version: str,
    gate: dict[str, float] | None,
    snapshot: dict[str, Any],
    training: dict[str, Any],
    manifest_extra: dict[str, Any],
    registry_uri: str | None,
    database_url: str | None,
) -> dict[str, Any]:
    """Gate, then (only if it passes) push and promote by compare-and-swap against the champion that was
    evaluated; the decision, passing or not, is recorded in the training runs table."""
    from trajet import gate as gate_mod
    from trajet import promotion, registry

    reg = registry.open_registry(registry_uri)
    outcome = promotion.gate_and_publish(
        Path(candidate_dir),
        candidate_eval,
        champion_eval,
        champion_version=champion_version,
        version=version,
        registry=reg,
        engine=_engine(database_url),
        gate_config=gate_mod.GateConfig.from_env(**(gate or {})),
        manifest_extra=manifest_extra,
        snapshot_id=snapshot["id"],
        snapshot_hash=snapshot["content_hash"],
        base_model=(training.get("config") or {}).get("base_model"),
        training_config=training.get("config"),
    )
    return {
        "decision": outcome.decision.to_dict(),
        "version": outcome.version,
        "pointer": outcome.pointer,
        "db_run_id": outcome.run_id,
        "uri": reg.version_uri(outcome.version) if outcome.version else None,
    }


@task(name="record-failed-run", cache_policy=NO_CACHE, **io_task_options())
def record_failed_run_task(snapshot: dict[str, Any], champion_version: str | None, message: str, database_url: str | None) -> int:
    """A failed training is history too: recorded with its reason, the champion untouched."""
    from trajet import runs

    return runs.record_training_run(
        _engine(database_url),
        status="failed",
        champion_version=champion_version,
        snapshot_id=snapshot["id"],
        snapshot_hash=snapshot["content_hash"],
        message=message[:2000],
    )
