"""`deployments/prefect.yaml` deploys as written to a real (test) Prefect server: pools, schedule, limits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest_plugins = ["_prefect_harness"]

ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"


def test_prefect_yaml_structure():
    doc = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    by_name = {d["name"]: d for d in doc["deployments"]}
    assert set(by_name) == {"ingest", "nightly-retrain", "finetune"}
    for d in by_name.values():
        path, func = d["entrypoint"].split(":")
        assert (ROOT / path).is_file() and f"def {func}(" in (ROOT / path).read_text()


@pytest.fixture(scope="module")
def deployed(prefect_api, work_pools) -> dict:
    """Runs the real CLI, exactly as the README tells ops to, against the harness server."""
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "TRAJET_CODE_DIR": str(ROOT)}
    prefect_cli = Path(sys.executable).parent / "prefect"
    proc = subprocess.run(
        [str(prefect_cli), "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {
            name: client.read_deployment_by_name(name)
            for name in ("ingest/ingest", "nightly-retrain/nightly-retrain", "finetune/finetune")
        }


@pytest.mark.slow
def test_deployments_land_on_their_pools(deployed):
    assert deployed["ingest/ingest"].work_pool_name == "cpu"
    assert deployed["nightly-retrain/nightly-retrain"].work_pool_name == "cpu"
    finetune = deployed["finetune/finetune"]
    assert finetune.work_pool_name == "gpu"
    assert finetune.job_variables["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert finetune.job_variables["working_dir"] == str(ROOT)
    assert deployed["nightly-retrain/nightly-retrain"].parameters == {"train_deployment": "finetune/finetune", "nproc": 1}
    # the pull step was filled from TRAJET_CODE_DIR at deploy time: workers run the code at that path
    (step,) = finetune.pull_steps
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)


@pytest.mark.slow
def test_nightly_schedule_is_2am_paris(deployed):
    (schedule,) = deployed["nightly-retrain/nightly-retrain"].schedules
    assert schedule.active
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "Europe/Paris"
    assert schedule.slug == "nightly-0200-europe-paris"
    assert not deployed["ingest/ingest"].schedules and not deployed["finetune/finetune"].schedules


@pytest.mark.slow
def test_one_retrain_and_one_finetune_at_a_time(deployed):
    for name in ("nightly-retrain/nightly-retrain", "finetune/finetune"):
        limit = deployed[name].global_concurrency_limit
        assert limit is not None and limit.limit == 1, name
        assert deployed[name].concurrency_options.collision_strategy == "ENQUEUE"
    assert deployed["ingest/ingest"].global_concurrency_limit is None


@pytest.fixture()
def gpu_worker(deployed, prefect_api, tmp_path):
    """A real process worker on the `gpu` pool, as ops start it on the GPU host (stopped after the test)."""
    env = {
        **os.environ,  # TRAJET_HOME of this test: the worker's flow runs share its store and registry
        "PREFECT_API_URL": prefect_api,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", "gpu", "--type", "process", "--limit", "1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield log_path
    finally:
        os.killpg(worker.pid, signal.SIGTERM)  # the worker and the flow-run process it started, nothing else
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


@pytest.mark.slow
def test_retrain_trains_on_the_gpu_pool_through_the_finetune_deployment(gpu_worker, tmp_path, monkeypatch):
    from flow_data import BEHAVIOUR_N, LENIENT_GATE, TINY_TRAINING, phrase_rows, write_jsonl
    from prefect.client.orchestration import get_client

    from flows.ingest import ingest_flow
    from flows.retrain import nightly_retrain
    from trajet import registry, store

    store.upgrade()
    batch = write_jsonl(tmp_path / "batch.jsonl", phrase_rows(120, seed=5, split="train") + phrase_rows(30, seed=6, split="test"))
    assert ingest_flow(batch)[0]["status"] == "accepted"
    monkeypatch.setenv("TRAJET_TRAIN_DEPLOYMENT", "finetune/finetune")

    state = nightly_retrain(
        preset="tiny", config=TINY_TRAINING, gate=LENIENT_GATE, use_challenge=False, behaviour_n=BEHAVIOUR_N,
        return_state=True,
    )
    assert state.name == "Promoted", f"{state.message}\n{gpu_worker.read_text()[-3000:]}"
    result = state.result()
    training = result["training"]
    assert training["deployment"] == "finetune/finetune" and training["steps"] > 0
    # the GPU pool trained from the snapshot exported to the registry, not from the database
    registry_root = str(Path(os.environ["TRAJET_HOME"]) / "registry")
    assert training["snapshot_uri"] == f"{registry_root}/snapshots/{result['snapshot']['content_hash']}"

    with get_client(sync_client=True) as client:
        child = client.read_flow_run(training["flow_run"])
    assert child.state.is_completed() and child.work_pool_name == "gpu"
    assert child.name.startswith(f"finetune-{result['snapshot']['content_hash'][:8]}-")
    assert child.parent_task_run_id is not None  # shown as a subflow of the retrain run in the UI

    # the candidate went through staging and is byte for byte the promoted champion
    staging = registry.open_registry(str(Path(os.environ["TRAJET_HOME"]) / "registry" / "staging"))
    champion = registry.open_registry()
    assert champion.champion()["version"] == result["version"]
    staged_files = {f["path"]: f["sha256"] for f in staging.manifest(training["staging_version"])["files"]}
    promoted_files = {f["path"]: f["sha256"] for f in champion.manifest(result["version"])["files"]}
    assert staged_files == promoted_files and any(p.endswith(".safetensors") for p in promoted_files)
