"""Training runs and model versions in the store: migration 0002 and what the publish step records."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.registry_helpers import evaluation, write_model
from trajet import store
from trajet.errors import TrajetError
from trajet.promotion import gate_and_publish
from trajet.registry import open_registry
from trajet.runs import ModelVersion, TrainingRun, model_versions, record_model_version, training_runs

pytest_plugins = ["dbfixtures"]  # `engine`: a migrated store, once on SQLite and once on PostgreSQL

GROUPS = {"terse": 0.9, "stations": 0.85}


def test_migration_matches_the_orm_and_downgrades(engine):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    assert store.current_revision(engine) == store.head_revision() == "0003_watch_and_review"
    store.ensure_schema(engine)
    mine = {TrainingRun.__tablename__, ModelVersion.__tablename__}
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), store.Base.metadata)
    assert [d for d in diffs if any(name in repr(d) for name in mine)] == []
    with engine.begin() as conn:
        command.downgrade(store._alembic_config(conn), "0001_initial")
    assert mine.isdisjoint(sa.inspect(engine).get_table_names())
    assert store.current_revision(engine) == "0001_initial"


def test_publish_records_every_decision(engine, tmp_path):
    reg = open_registry()
    models = [write_model(tmp_path / f"m{i}", seed=i) for i in range(3)]
    first = evaluation(0.96, 0.97, 0.96, 0.95, groups=GROUPS)
    gate_and_publish(
        models[0], first, None, champion_version=None, version="v1", engine=engine, snapshot_hash="h1"
    )
    worse = evaluation(0.95, 0.97, 0.96, 0.95, groups=GROUPS)
    out = gate_and_publish(models[1], worse, first, champion_version="v1", version="v2", engine=engine)
    assert not out.decision.passed
    reg.push("v9", models[2], {})
    reg.promote("v9")
    with pytest.raises(TrajetError, match="not v1"):
        gate_and_publish(
            models[2],
            evaluation(0.99, 0.99, 0.99, 0.99, groups=GROUPS),
            first,
            champion_version="v1",
            version="v3",
            engine=engine,
        )

    runs = training_runs(engine)
    assert [(r.status, r.version, r.gate_passed) for r in runs] == [
        ("failed", "v3", True),
        ("rejected", None, False),
        ("promoted", "v1", True),
    ]
    rejected = runs[1]
    assert rejected.candidate_macro_f1 == pytest.approx(0.95) and rejected.champion_version == "v1"
    assert rejected.gate["failed"] == ["macro_f1_vs_champion"] and "0.9500" in rejected.message
    assert rejected.champion_metrics == first
    assert "champion is v9" in runs[0].message

    versions = {v.version: v for v in model_versions(engine)}
    assert set(versions) == {"v1", "v3"}  # v3 was pushed before its promotion lost: recorded, never promoted
    v1 = versions["v1"]
    assert (
        v1.training_run_id == runs[2].id and v1.snapshot_hash == "h1" and v1.macro_f1 == pytest.approx(0.96)
    )
    assert v1.manifest_sha256 == reg.manifest_sha256("v1")
    assert v1.promoted_at is not None and versions["v3"].promoted_at is None


def test_record_model_version_is_idempotent_and_guards_the_manifest(engine):
    manifest = {"version": "v1", "metrics": {"test": {"macro": {"f1": 0.9}}}, "files": []}
    a = record_model_version(engine, manifest=manifest, registry_uri="x", manifest_sha256="a" * 64)
    assert record_model_version(engine, manifest=manifest, registry_uri="x", manifest_sha256="a" * 64) == a
    with pytest.raises(TrajetError, match="another manifest"):
        record_model_version(engine, manifest=manifest, registry_uri="x", manifest_sha256="b" * 64)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*), max(macro_f1) from model_versions")).one() == (1, 0.9)
