"""Training runs and model versions in the SQL store (tables added by migration 0002_runs_and_versions).

The registry is the source of truth for model files and the champion pointer; the database keeps the
queryable history beside the data it came from: every gate decision (passing or not, with metrics and
reasons), which snapshot a run trained on, and which version a run produced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from trajet.errors import TrajetError
from trajet.gate import GateDecision
from trajet.store import Base, session

RUN_STATUSES = ("promoted", "rejected", "failed")


def _now() -> datetime:
    return datetime.now(UTC)


class TrainingRun(Base):
    """One train + evaluate + gate cycle; `status` is promoted, rejected (by the gate) or failed."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    status: Mapped[str] = mapped_column(String(20))
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_snapshots.id"), nullable=True)
    snapshot_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    base_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    training_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    candidate_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    champion_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    champion_metrics: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    gate_passed: Mapped[bool | None] = mapped_column(nullable=True)
    gate: Mapped[dict[str, Any]] = mapped_column(default=dict)
    candidate_macro_f1: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")


class ModelVersion(Base):
    """A version pushed to the registry (only gate-passing candidates are pushed)."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(128), unique=True)
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id"), nullable=True)
    registry_uri: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    snapshot_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    macro_f1: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    gate: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    promoted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)


def _macro_f1(evaluation: dict[str, Any] | None) -> float | None:
    try:
        return float(evaluation["test"]["macro"]["f1"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None


def record_training_run(
    engine: Engine,
    *,
    status: str,
    candidate_metrics: dict[str, Any] | None = None,
    decision: GateDecision | dict[str, Any] | None = None,
    champion_version: str | None = None,
    champion_metrics: dict[str, Any] | None = None,
    snapshot_id: int | None = None,
    snapshot_hash: str | None = None,
    base_model: str | None = None,
    training_config: dict[str, Any] | None = None,
    version: str | None = None,
    message: str = "",
    started_at: datetime | None = None,
) -> int:
    """Stores one run and its gate decision (passing or not); returns the run id."""
    if status not in RUN_STATUSES:
        raise TrajetError(f"training run status {status!r}: expected one of {', '.join(RUN_STATUSES)}")
    gate = decision.to_dict() if isinstance(decision, GateDecision) else dict(decision or {})
    row = TrainingRun(
        started_at=started_at or _now(),
        finished_at=_now(),
        status=status,
        snapshot_id=snapshot_id,
        snapshot_hash=snapshot_hash,
        base_model=base_model,
        training_config=training_config or {},
        candidate_metrics=candidate_metrics or {},
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        gate_passed=gate.get("passed") if gate else None,
        gate=gate,
        candidate_macro_f1=_macro_f1(candidate_metrics),
        version=version,
        message=message or (gate.get("summary", "") if gate else ""),
    )
    with session(engine) as s:
        s.add(row)
        s.flush()
        return row.id


def record_model_version(
    engine: Engine,
    *,
    manifest: dict[str, Any],
    registry_uri: str,
    manifest_sha256: str,
    training_run_id: int | None = None,
    promoted_at: datetime | None = None,
) -> int:
    """Stores a pushed version from its manifest; recording the same version twice updates promoted_at
    only (a version is immutable, its row is too)."""
    version = manifest["version"]
    with session(engine) as s:
        row = s.scalar(select(ModelVersion).where(ModelVersion.version == version))
        if row is not None:
            if row.manifest_sha256 != manifest_sha256:
                raise TrajetError(f"model version {version} is already recorded with another manifest")
            if promoted_at is not None:
                row.promoted_at = promoted_at
            return row.id
        row = ModelVersion(
            version=version,
            training_run_id=training_run_id,
            registry_uri=registry_uri,
            manifest_sha256=manifest_sha256,
            snapshot_hash=manifest.get("snapshot_hash"),
            macro_f1=_macro_f1(manifest.get("metrics")),
            metrics=manifest.get("metrics") or {},
            gate=manifest.get("gate") or {},
            promoted_at=promoted_at,
        )
        s.add(row)
        s.flush()
        return row.id


def training_runs(engine: Engine, limit: int = 50) -> list[TrainingRun]:
    """Most recent first."""
    with session(engine) as s:
        return list(s.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)))


def model_versions(engine: Engine) -> list[ModelVersion]:
    with session(engine) as s:
        return list(s.scalars(select(ModelVersion).order_by(ModelVersion.id)))
