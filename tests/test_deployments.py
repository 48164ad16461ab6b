"""`deployments/prefect.yaml` deploys as written to a real (test) Prefect server: pools, schedule, limits."""

from __future__ import annotations

import os
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
    assert deployed["nightly-retrain/nightly-retrain"].parameters == {"train_deployment": "finetune/finetune"}
    # the pull step was filled from TRAJET_CODE_DIR at deploy time: workers run the code at that path
    (step,) = finetune.pull_steps
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)


@pytest.mark.slow
def test_nightly_schedule_is_2am_paris(deployed):
    (schedule,) = deployed["nightly-retrain/nightly-retrain"].schedules
    assert schedule.active
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "Europe/Paris"
    assert not deployed["ingest/ingest"].schedules and not deployed["finetune/finetune"].schedules


@pytest.mark.slow
def test_one_retrain_and_one_finetune_at_a_time(deployed):
    for name in ("nightly-retrain/nightly-retrain", "finetune/finetune"):
        limit = deployed[name].global_concurrency_limit
        assert limit is not None and limit.limit == 1, name
        assert deployed[name].concurrency_options.collision_strategy == "ENQUEUE"
    assert deployed["ingest/ingest"].global_concurrency_limit is None
