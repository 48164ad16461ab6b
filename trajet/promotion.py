"""Gate, then publish: the one place where a candidate becomes the champion.

Order matters: the gate decides on evaluations of candidate and champion made in the same run; a failing
candidate is only recorded; a passing one is pushed (its manifest carries both evaluations and the
decision) and promoted by compare-and-swap against the champion that was evaluated, so a decision made
against a champion that changed meanwhile is refused rather than silently applied.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trajet.errors import TrajetError
from trajet.gate import GateConfig, GateDecision, decide
from trajet.manifest import provenance
from trajet.registry import Registry, open_registry


@dataclass
class PublishOutcome:
    decision: GateDecision
    version: str | None  # the version pushed and promoted; None when the gate refused the candidate
    pointer: dict[str, Any] | None
    run_id: int | None  # training_runs row, when a database engine was given


def gate_and_publish(
    model_dir: Path,
    candidate_eval: dict[str, Any],
    champion_eval: dict[str, Any] | None,
    *,
    champion_version: str | None,
    version: str,
    registry: Registry | None = None,
    engine: Any = None,
    gate_config: GateConfig | None = None,
    manifest_extra: dict[str, Any] | None = None,
    snapshot_id: int | None = None,
    snapshot_hash: str | None = None,
    base_model: str | None = None,
    training_config: dict[str, Any] | None = None,
    started_at: dt.datetime | None = None,
) -> PublishOutcome:
    """Decides, records the decision (when `engine` is given), and pushes + promotes a passing candidate.

    `champion_version` / `champion_eval` are the champion read from the registry at the start of the run
    and its fresh evaluation (both None for the first model)."""
    if (champion_version is None) != (champion_eval is None):
        raise TrajetError("gate_and_publish: give both the champion's version and its evaluation, or neither")
    registry = registry or open_registry()
    decision = decide(candidate_eval, champion_eval, gate_config or GateConfig.from_env())
    run_fields: dict[str, Any] = {
        "candidate_metrics": candidate_eval,
        "decision": decision,
        "champion_version": champion_version,
        "champion_metrics": champion_eval,
        "snapshot_id": snapshot_id,
        "snapshot_hash": snapshot_hash,
        "base_model": base_model,
        "training_config": training_config,
        "started_at": started_at,
    }
    if not decision.passed:
        run_id = _record_run(engine, status="rejected", **run_fields)
        return PublishOutcome(decision, None, None, run_id)
    extra = {
        **(manifest_extra or {}),
        **provenance(
            metrics=candidate_eval,
            gate=decision.to_dict(),
            champion_version=champion_version,
            champion_metrics=champion_eval,
            snapshot_hash=snapshot_hash,
            base_model=base_model,
            training_config=training_config,
        ),
    }
    manifest: dict[str, Any] | None = None
    try:
        manifest = registry.push(version, model_dir, extra)
        pointer = registry.promote(version, expected=champion_version)
    except TrajetError as exc:
        run_id = _record_run(
            engine,
            status="failed",
            message=f"publish failed: {exc}",
            version=manifest and version,
            **run_fields,
        )
        if manifest is not None:  # pushed but not promoted (lost a race): the version exists, record it
            _record_version(engine, registry, manifest, run_id, None)
        raise
    run_id = _record_run(engine, status="promoted", version=version, **run_fields)
    _record_version(engine, registry, manifest, run_id, pointer)
    return PublishOutcome(decision, version, pointer, run_id)


def _record_run(engine: Any, **fields: Any) -> int | None:
    if engine is None:
        return None
    from trajet.runs import record_training_run

    return record_training_run(engine, **fields)


def _record_version(
    engine: Any,
    registry: Registry,
    manifest: dict[str, Any],
    run_id: int | None,
    pointer: dict[str, Any] | None,
) -> None:
    if engine is None:
        return
    from trajet.runs import record_model_version

    version = manifest["version"]
    record_model_version(
        engine,
        manifest=manifest,
        registry_uri=registry.version_uri(version),
        manifest_sha256=registry.manifest_sha256(version),
        training_run_id=run_id,
        promoted_at=dt.datetime.fromisoformat(pointer["promoted_at"].replace("Z", "+00:00"))
        if pointer
        else None,
    )
