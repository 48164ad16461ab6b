"""The production stack files parse, wire the right services together and keep secrets out of git.

No Docker engine runs here, so these check structure; the IAM policy is checked by evaluating it on
concrete requests (allow/deny), not by reading its text back.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parent.parent / "infra"
BUCKET, PREFIX = "trajet-models", "registry"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def policy() -> dict:
    return json.loads((INFRA / "iam-registry-policy.json").read_text(encoding="utf-8"))


def test_compose_has_the_production_services(compose):
    services = compose["services"]
    assert set(services) >= {"postgres", "prefect-server", "minio", "minio-init", "cpu-worker", "gpu-worker"}
    server = services["prefect-server"]
    assert server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/prefect" in server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "mc mb --ignore-existing local/trajet-models" in services["minio-init"]["command"][0]


def test_workers_poll_their_pools_and_reach_trajet_services(compose):
    services = compose["services"]
    for name, pool in (("cpu-worker", "cpu"), ("gpu-worker", "gpu")):
        svc = services[name]
        cmd = svc["command"]
        assert cmd[:3] == ["prefect", "worker", "start"]
        assert cmd[cmd.index("--pool") + 1] == pool and cmd[cmd.index("--type") + 1] == "process"
        env = svc["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["TRAJET_DATABASE_URL"].startswith("postgresql+psycopg://trajet:")
        assert env["TRAJET_REGISTRY_URI"] == f"s3://{BUCKET}/{PREFIX}"
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert svc["env_file"] == [".env"]
        assert svc["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"


def test_gpu_worker_gets_the_nvidia_runtime(compose):
    gpu = compose["services"]["gpu-worker"]
    assert gpu["runtime"] == "nvidia"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"] and device["count"] == 1
    assert "cu" in gpu["build"]["args"]["TORCH_INDEX"].rsplit("/", 1)[-1]
    assert "nvidia" not in json.dumps(compose["services"]["cpu-worker"])


def _leaf_strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaf_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaf_strings(value)
    elif isinstance(node, str):
        yield node


def test_no_secret_is_written_in_the_compose_file(compose):
    secret_words = re.compile(r"PASSWORD|SECRET|ACCESS_KEY", re.I)
    for service in compose["services"].values():
        env = service.get("environment") or {}
        for key, value in env.items():
            if secret_words.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), f"{key} must come from infra/.env"
    for text in _leaf_strings(compose):
        # credentials inside URLs are interpolated too
        for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", text):
            assert match.group(1).startswith("${"), text
    assert ".env" in (INFRA / ".gitignore").read_text().splitlines()
    example = (INFRA / "env.example").read_text()
    assert "change-me" in example  # placeholders, not real values


def _allowed(policy: dict, action: str, resource: str, prefix: str | None = None) -> bool:
    """A tiny IAM evaluator for Allow statements with StringLike on s3:prefix (enough for this policy)."""
    allowed = False
    for st in policy["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        cond = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if cond is not None and (prefix is None or not any(fnmatch.fnmatchcase(prefix, c) for c in cond)):
            continue
        if st["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def test_iam_policy_is_least_privilege_on_the_registry_prefix(policy):
    obj = f"arn:aws:s3:::{BUCKET}/{PREFIX}"
    bucket = f"arn:aws:s3:::{BUCKET}"
    assert policy["Version"] == "2012-10-17"
    # what the registry needs
    assert _allowed(policy, "s3:GetObject", f"{obj}/champion.json")
    assert _allowed(policy, "s3:PutObject", f"{obj}/versions/20261128-020000-ab12cd34/model.safetensors")
    assert _allowed(policy, "s3:PutObject", f"{obj}/staging/versions/cand-1/manifest.json")
    assert _allowed(policy, "s3:ListBucket", bucket, prefix=f"{PREFIX}/versions/")
    # and nothing else
    assert not _allowed(policy, "s3:ListBucket", bucket, prefix="other/")
    assert not _allowed(policy, "s3:ListBucket", bucket)  # listing the whole bucket
    assert not _allowed(policy, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/other/secret.txt")
    assert not _allowed(policy, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/registry-evil/x")
    assert not _allowed(policy, "s3:GetObject", f"arn:aws:s3:::another-bucket/{PREFIX}/champion.json")
    for action in ("s3:DeleteObject", "s3:DeleteBucket", "s3:PutBucketPolicy", "s3:DeleteObjectVersion"):
        assert not _allowed(policy, action, f"{obj}/versions/v1/manifest.json")
        assert not _allowed(policy, action, bucket)
    for st in policy["Statement"]:
        assert "*" not in json.dumps(st["Action"]), "no wildcard actions"


def test_dockerfile_installs_the_chosen_torch_build_then_trajet():
    text = (INFRA / "Dockerfile").read_text()
    assert text.index('pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"') < text.index("pip install -e .")
    assert "USER trajet" in text
