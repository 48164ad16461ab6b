"""What Prefect stores and shows must hold no database password; a night whose base cannot be loaded fails in
seconds with the instruction; a parent run's failure carries the finetune child's own reason."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from trajet import store
from trajet.errors import TrajetError

pytest_plugins = ["_prefect_harness"]
PASSWORD = "pw-Zq81-never-stored"
SECRET_URL = f"postgresql+psycopg://trajet:{PASSWORD}@127.0.0.1:5432/trajet"


def _stored_parameters() -> str:
    """Every flow run's parameters as the API holds them, as one string."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
    return json.dumps([r.parameters for r in runs], default=str)


def _logs(state) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # logs travel in batches: send this run's before reading them back
    for _ in range(20):
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
        if logs:
            break
        time.sleep(0.5)
    return "\n".join(log.message for log in logs)


def test_logged_database_urls_are_masked(prefect_api, tmp_path, monkeypatch):
    from flows.ingest import ingest_flow

    monkeypatch.setenv("TRAJET_DATABASE_URL", SECRET_URL)  # unreachable on purpose: only the log line matters
    state = ingest_flow(str(tmp_path), return_state=True)
    logs = _logs(state)
    assert "database: TRAJET_DATABASE_URL of this worker, postgresql+psycopg://trajet:***@127.0.0.1:5432/trajet" in logs
    assert PASSWORD not in logs + str(state.message)


def _batch(tmp_path: Path) -> Path:
    from trajet.phrases import parse_markup, phrase_to_json

    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(phrase_to_json(parse_markup(f"de [Paris|D] à [Lyon|A] n°{i}")) for i in range(3)) + "\n",
                    encoding="utf-8")
    return path


def test_password_parameters_are_refused_before_prefect_stores_them(prefect_api, tmp_path):
    from flows.ingest import ingest_flow
    from flows.retrain import nightly_retrain

    with pytest.raises(TrajetError) as info:
        ingest_flow(str(tmp_path), database_url=SECRET_URL)
    assert PASSWORD not in str(info.value) and "trajet:***@127.0.0.1" in str(info.value)
    assert "TRAJET_DATABASE_URL" in str(info.value) and "database_secret" in str(info.value)
    with pytest.raises(TrajetError):
        nightly_retrain(database_url=SECRET_URL, return_state=True)
    assert PASSWORD not in _stored_parameters()


def test_a_deployment_refuses_a_password_parameter_server_side(prefect_api, work_pools):
    """A run started from the UI, the CLI or run_deployment is checked against the parameter schema by the
    server, before anything is stored."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.utilities.callables import parameter_schema

    from flows.ingest import ingest_flow

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("ingest")
        deployment_id = client.create_deployment(
            flow_id=flow_id, name="secret-check", work_pool_name="cpu",
            parameter_openapi_schema=parameter_schema(ingest_flow.fn).model_dump_for_openapi(),
            enforce_parameter_schema=True,
        )
        with pytest.raises(PrefectHTTPStatusError) as info:
            client.create_flow_run_from_deployment(deployment_id, parameters={"source": "x", "database_url": SECRET_URL})
        assert info.value.response.status_code == 409
        ok = client.create_flow_run_from_deployment(
            deployment_id, parameters={"source": "x", "database_url": "postgresql+psycopg://trajet@db:5432/trajet"})
        assert ok.parameters["database_url"] == "postgresql+psycopg://trajet@db:5432/trajet"
        client.delete_flow_run(ok.id)
    assert PASSWORD not in _stored_parameters()


def test_database_secret_block_is_used_and_never_stored(prefect_api, tmp_path):
    from prefect.blocks.system import Secret

    from flows.ingest import ingest_flow

    url = f"sqlite:///{tmp_path / 'secret-store.db'}"  # stands for a URL with a password: only its block name travels
    store.upgrade(url)
    Secret(value=url).save("trajet-db-test", overwrite=True)
    state = ingest_flow(str(_batch(tmp_path)), database_secret="trajet-db-test", return_state=True)
    assert state.is_completed(), state.message
    assert [r["stored"] for r in state.result()] == [3]
    engine = store.get_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(store.PhraseRow)) == 3
    assert str(tmp_path / "secret-store.db") not in _stored_parameters()
    assert f"database: {url} (Prefect Secret block 'trajet-db-test')" in _logs(state)
    state = ingest_flow(str(_batch(tmp_path)), database_secret="no-such-block", return_state=True)
    assert state.is_failed() and "cannot load the Prefect Secret block 'no-such-block'" in state.message


@pytest.fixture
def hub_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TRAJET_TRAIN_BASE_MODEL", raising=False)


def test_preflight_fails_the_night_before_the_snapshot(prefect_api, hub_offline, tmp_path, monkeypatch):
    from flows.retrain import nightly_retrain

    url = f"sqlite:///{tmp_path / 'night.db'}"
    store.upgrade(url)
    monkeypatch.setenv("TRAJET_DATABASE_URL", url)
    state = nightly_retrain(preset="camembert", return_state=True)
    assert state.is_failed()
    assert "base model 'camembert-base' cannot be loaded" in state.message
    assert "trajet base mirror camembert-base s3://<bucket>/bases/camembert-base" in state.message
    with store.get_engine(url).connect() as conn:  # nothing was snapshotted
        assert conn.scalar(sa.select(sa.func.count()).select_from(store.Snapshot)) == 0
    # the gpu pool's `auto` is camembert-base even when this (CPU) host would pick the CPU default
    from flows.preflight import base_preflight_task

    with pytest.raises(TrajetError, match="camembert-base"):
        base_preflight_task.fn(None, None, gpu_pool=True)
    assert "trajet:mini" in base_preflight_task.fn("mini", None, gpu_pool=True)
    assert "warm start" in base_preflight_task.fn(None, None, gpu_pool=True, warm_start=True)


def test_parent_failure_carries_the_finetune_child_reason(prefect_api, hub_offline, monkeypatch):
    """The child really runs and fails (its preflight); the parent reads that run back from the API."""
    import prefect.deployments

    from flows.finetune import finetune
    from flows.retrain import TrainingFailed, _train_on_deployment

    child_state = finetune(snapshot_id=1, staging_version="cand-x", preset="camembert", return_state=True)
    assert child_state.is_failed()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        child = client.read_flow_run(child_state.state_details.flow_run_id)
    monkeypatch.setattr(prefect.deployments, "run_deployment", lambda **_: child)
    with pytest.raises(TrainingFailed) as info:
        _train_on_deployment("finetune/finetune", {"id": 1, "content_hash": "abc"}, "camembert", None, None,
                             (None, None), "run-1", 60, None)
    message = str(info.value)
    assert message.startswith(f"finetune run {child.name} ended Failed: ")
    assert "base model 'camembert-base' cannot be loaded" in message and "trajet base mirror" in message
