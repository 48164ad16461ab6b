"""The `nightly-retrain` flow: snapshot -> skip if nothing changed -> train -> evaluate candidate and
champion on the same split -> gate -> push + promote, or record the rejection.

The champion is only ever touched by the last two tasks (push, then a compare-and-swap promote), and
only after the gate passed: a failed or crashed training, a failed evaluation or a rejected candidate
leave it exactly as it was. Training runs in-process, or on the `gpu` work pool through the `finetune`
deployment when `train_deployment` (or TRAJET_TRAIN_DEPLOYMENT) names one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed

from flows._common import DatabaseUrl, fmt, resolve_database, secret_free, utc_stamp
from flows.preflight import base_preflight_task
from flows.story import dig as get
from flows.story import drops_first, registry_address, run_stamp, tell_retrain, training_line
from flows.story import gate_markdown as _gate_markdown
from flows.tasks import (
    champion_task,
    evaluate_task,
    export_snapshot_task,
    gate_and_publish_task,
    pull_task,
    record_failed_run_task,
    snapshot_task,
    staging_uri,
    train_task,
    work_dir,
)
from trajet.model_dir import ModelDir

SUMMARY_KEY = "retrain-summary"
COMPARISON_KEY = "retrain-comparison"
GATE_KEY = "retrain-gate"
MODEL_KEY = "retrain-model"
ENTITIES = ("DEPART", "ARRIVEE", "VIA")


class TrainingFailed(RuntimeError):
    """The training run did not complete: nothing it produced is used, the champion stays."""


def _run_name() -> str:
    return f"retrain-{utc_stamp()}"


def _rename_run(version: str) -> None:
    """Name the run after the version it may publish (stamp + snapshot hash), known once the snapshot is."""
    from prefect.client.orchestration import get_client

    run_id = flow_run.id
    if not run_id:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, name=f"retrain-{version}")


def champion_snapshot_hash(champion: dict[str, Any] | None) -> str | None:
    """The snapshot hash the champion was trained on, as recorded in its manifest."""
    from trajet.manifest import Manifest

    if not champion or not champion.get("manifest"):
        return None
    return Manifest.from_dict(champion["manifest"]).dataset_hash()


def comparison_rows(candidate: dict[str, Any], champion: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Candidate vs champion, metric by metric: per entity on test and challenge, and per challenge group."""
    rows: list[dict[str, Any]] = []

    def add(split: str, metric: str, cand: float | None, champ: float | None) -> None:
        delta = None if cand is None or champ is None else cand - champ
        rows.append({"set": split, "metric": metric, "candidate": fmt(cand), "champion": fmt(champ), "delta": fmt(delta)})

    for split in ("test", "written", "challenge"):
        cand_report = candidate.get(split)
        champ_report = (champion or {}).get(split)
        if not cand_report:
            continue

        add(split, "micro F1", get(cand_report, "micro", "f1"), get(champ_report, "micro", "f1"))
        add(split, "macro F1", get(cand_report, "macro", "f1"), get(champ_report, "macro", "f1"))
        for entity in ENTITIES:
            add(split, f"{entity} F1", get(cand_report, "per_entity", entity, "f1"), get(champ_report, "per_entity", entity, "f1"))
        add(split, "exact match", get(cand_report, "exact_match"), get(champ_report, "exact_match"))
        for group in sorted(cand_report.get("groups") or {}):
            add(
                split,
                f"group {group} F1",
                get(cand_report, "groups", group, "micro_f1"),
                get(champ_report, "groups", group, "micro_f1"),
            )
    cand_b = candidate.get("behaviour")
    if cand_b:
        champ_b = (champion or {}).get("behaviour") or {}
        add("behaviour", "overall pass rate", cand_b["overall"]["pass_rate"],
            (champ_b.get("overall") or {}).get("pass_rate"))
        for name, stats in cand_b["tests"].items():
            before = (champ_b.get("tests") or {}).get(name) or {}
            add("behaviour", f"{stats['kind']} {name} pass rate", stats["pass_rate"], before.get("pass_rate"))
    return drops_first(rows)


def gate_markdown(decision: Any, champion_version: str | None) -> str:
    return _gate_markdown(decision, champion_version)


def _train_on_deployment(
    deployment: str,
    snapshot: dict[str, Any],
    preset: str | None,
    config: dict[str, Any] | None,
    registry_uri: str | None,
    database: tuple[str | None, str | None],
    run_id: str,
    timeout_s: float | None,
    warm_start_version: str | None,
    nproc: int = 1,
    snapshot_uri: str | None = None,
) -> dict[str, Any]:
    """Run `finetune` on its work pool, then pull its candidate from staging with checksum verification.

    With `snapshot_uri` the child reads the exported snapshot and is given no database at all."""
    from prefect.deployments import run_deployment

    staging_version = f"cand-{run_id}"
    parameters: dict[str, Any] = {
        "snapshot_id": snapshot["id"],
        "snapshot_hash": snapshot["content_hash"],
        "staging_version": staging_version,
        "preset": preset,
        "config": config,
        "registry_uri": registry_uri,
        # the flow's own password-free parameters: a child run's parameters are stored in clear too
        "database_url": None if snapshot_uri else database[0],
        "database_secret": None if snapshot_uri else database[1],
        "warm_start_version": warm_start_version,
        # only when asked: a finetune deployment made before the parameter existed still takes the default
        **({"nproc": nproc} if nproc != 1 else {}),
    }
    if snapshot_uri:  # only when set: a finetune deployment of an older version still takes the call
        parameters["snapshot_uri"] = snapshot_uri
    child = run_deployment(
        name=deployment,
        parameters=parameters,
        timeout=timeout_s,
        poll_interval=2,
    )
    state = child.state
    if state is None or not state.is_completed():
        raise TrainingFailed(
            f"finetune run {child.name} ended {state.name if state else 'without a state'}"
            f"{child_failure(state)}; its output is not used and the champion is untouched"
        )
    dest = work_dir(run_id, "candidate")
    model_dir = Path(pull_task.with_options(task_run_name="pull-candidate-from-staging")(
        staging_uri(registry_uri), staging_version, str(dest)))
    # The staging manifest did its job (every sha256 checked); the promoted version gets its own.
    staged = ModelDir(model_dir, check=False).drop_manifest()
    return {
        **((staged.extra.get("training") if staged else None) or {}),
        "output_dir": str(model_dir),
        "deployment": deployment,
        "flow_run": str(child.id),
        "staging_version": staging_version,
        "staging_uri": staging_uri(registry_uri),
    }


def export_root(snapshot_root: str | None, registry_uri: str | None, *, on_gpu_pool: bool) -> str | None:
    """Where the night exports its snapshot, or None to train from the database (in-process default)."""
    from trajet import config

    root = snapshot_root or os.environ.get("TRAJET_SNAPSHOT_ROOT") or None
    if root is None and on_gpu_pool:  # GPU hosts get S3 credentials, never the database's
        root = registry_uri or config.registry_uri()
    return root


def child_failure(state: Any) -> str:
    """The child run's own reason (its state message: the exception that ended it), so the parent's failure
    says why, not only that the child failed."""
    message = " ".join(str(getattr(state, "message", "") or "").split())
    message = message.removeprefix("Flow run encountered an exception: ")
    return f": {message}" if message else ""


@secret_free
@flow(name="nightly-retrain", flow_run_name=_run_name)
def nightly_retrain(
    force: bool = False,
    preset: str | None = None,
    config: dict[str, Any] | None = None,
    train_deployment: str | None = None,
    gate: dict[str, float] | None = None,
    use_challenge: bool = True,
    warm_start: bool = False,
    progress: bool = False,
    registry_uri: str | None = None,
    database_url: DatabaseUrl = None,
    train_timeout_s: float | None = 4 * 3600,
    behaviour_n: int = 200,
    database_secret: str | None = None,
    nproc: int = 1,
    snapshot_root: str | None = None,
):
    """Keep the champion fresh. `config` overrides fields of the training preset; `gate` those of GateConfig.

    `behaviour_n`: sentences per test of the behavioural suite run on candidate and champion (the default is
    trajet.evaluate.GATE_BEHAVIOUR_N; 0: not run, and the gate skips its behaviour rules, saying so).

    `warm_start`: fine-tune the champion's weights on the new snapshot instead of starting from the
    preset's base (a cheaper nightly update; the gate still compares it with the champion as is).
    `progress`: a training progress bar on the console (for people watching, e.g. `trajet demo`).
    `nproc`: processes (GPUs) the training takes, under torchrun, on the finetune worker or here; evaluation
    and the gate stay in this one process.

    `snapshot_root`: export the snapshot there as Parquet (a folder or s3://; default TRAJET_SNAPSHOT_ROOT, and
    the registry when training runs on the `gpu` pool) and train from that file, so the training host never
    reads the database. Unset with in-process training: the snapshot is read from the database, as before."""
    from trajet import gate as gate_mod
    from trajet.distributed import Launch

    logger = get_run_logger()
    deployment = train_deployment or os.environ.get("TRAJET_TRAIN_DEPLOYMENT") or None
    if not deployment:  # training here: a process count this host cannot run fails now (finetune checks its own)
        Launch(nproc=nproc).check()
    # before the snapshot: a base that cannot be loaded fails the night in seconds, with what to do
    logger.info(base_preflight_task(preset, config, gpu_pool=bool(deployment), warm_start=warm_start))
    database = (database_url, database_secret)
    database_url = resolve_database(database_url, database_secret)
    snapshot = snapshot_task(database_url)
    run_id = f"{run_stamp()}-{snapshot['content_hash'][:8]}"
    _rename_run(run_id)
    champion = champion_task(registry_uri)
    champion_version = champion["pointer"]["version"] if champion else None
    story = {"run_id": run_id, "snapshot": snapshot, "registry_uri": registry_address(registry_uri),
             "champion_before": champion_version, "serving": champion["pointer"] if champion else None}

    if champion and not force and champion_snapshot_hash(champion) == snapshot["content_hash"]:
        message = (
            f"skipped: nothing changed since champion {champion_version} "
            f"(same snapshot {snapshot['content_hash'][:12]}); pass force=True to retrain anyway"
        )
        logger.info(message)
        tell_retrain(status="skipped", reason=message, **story)
        return Completed(
            name="Skipped",
            message=message,
            data={"status": "skipped", "snapshot": snapshot, "champion": champion_version, "reason": message},
        )

    snapshot_uri = None
    root = export_root(snapshot_root, registry_uri, on_gpu_pool=bool(deployment))
    if root:
        snapshot_uri = export_snapshot_task(snapshot["id"], root, database_url)
        story["snapshot"] = {**snapshot, "uri": snapshot_uri}

    champion_dir = None
    if champion_version:  # pulled (and verified) once: the warm-start base and the gate's reference
        champion_dir = pull_task.with_options(task_run_name="pull-champion")(
            registry_uri, champion_version, str(work_dir(run_id, "champion")))
    try:
        if deployment:
            training = _train_on_deployment(
                deployment, snapshot, preset, config, registry_uri, database, run_id, train_timeout_s,
                champion_version if warm_start else None, nproc, snapshot_uri,
            )
        else:
            out = work_dir(run_id, "candidate")
            overrides = {**(config or {}), "base_model": champion_dir} if warm_start and champion_dir else config
            training = train_task(
                snapshot["id"], snapshot["content_hash"], preset, overrides, str(out), database_url, progress, nproc,
                snapshot_uri=snapshot_uri,
            )
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        tell_retrain(status="failed", reason=f"training failed: {reason}", **story)
        record_failed_run_task(snapshot, champion_version, f"training failed: {reason}", database_url)
        raise

    logger.info(training_line(training))
    candidate_dir = training["output_dir"]
    candidate_eval = evaluate_task.with_options(task_run_name="evaluate-candidate")(
        candidate_dir, snapshot["id"], database_url, use_challenge, behaviour_n or None)
    champion_eval = None
    if champion_dir:
        champion_eval = evaluate_task.with_options(task_run_name=f"evaluate-champion-{champion_version}")(
            champion_dir, snapshot["id"], database_url, use_challenge, behaviour_n or None)

    version = run_id
    training_summary = {k: v for k, v in training.items() if k != "output_dir"}
    published = gate_and_publish_task(
        candidate_dir, candidate_eval, champion_eval, champion_version, version, gate, snapshot,
        training_summary, {"snapshot": snapshot, "training": training_summary, "run_id": run_id},
        registry_uri, database_url,
    )
    decision = gate_mod.GateDecision.from_dict(published["decision"])
    create_table_artifact(
        comparison_rows(candidate_eval, champion_eval),
        key=COMPARISON_KEY,
        description=f"candidate {run_id} vs champion {champion_version or '(none)'}",
    )
    create_markdown_artifact(gate_markdown(decision, champion_version), key=GATE_KEY, description="gate decision")

    record = {
        "run_id": run_id,
        "db_run_id": published["db_run_id"],
        "snapshot": snapshot,
        "training": training_summary,
        "evaluation": {"candidate": candidate_eval, "champion": champion_eval},
        "champion_before": champion_version,
        "gate": published["decision"],
    }
    (work_dir(run_id) / "decision.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")

    if not decision.passed:
        failed = [rule.name for rule in decision.rules if not rule.passed]
        message = f"candidate {run_id} rejected by the gate ({', '.join(failed)}); champion stays {champion_version}"
        logger.info(message)
        tell_retrain(status="rejected", reason=message, training=training_summary,
                     evaluation=record["evaluation"], decision=decision, **story)
        return Completed(name="Rejected", message=message, data={**record, "status": "rejected", "version": None})

    pointer = published["pointer"]
    message = f"candidate {version} promoted (previous champion: {champion_version or 'none'})"
    logger.info(message)
    tell_retrain(status="promoted", reason=f"{message}; gate {decision.summary()}", training=training_summary,
                 evaluation=record["evaluation"], decision=decision, **{**story, "serving": pointer})
    return Completed(
        name="Promoted",
        message=message,
        data={**record, "status": "promoted", "version": version, "uri": published["uri"], "pointer": pointer},
    )
