"""Kubernetes work pools and manifests (infra/k8s/), checked without a cluster.

The pool templates are merged into prefect-kubernetes' own default template, checked as the Prefect server
checks them, and rendered into Jobs by the worker's own code path (`infra/k8s/render.py`); the Jobs, the serve
Deployment and Service and the worker manifests validate strictly against the Kubernetes OpenAPI schema of the
pinned version (kubernetes-validate, offline). Broken templates and manifests are shown to fail.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S_DIR = ROOT / "infra" / "k8s"

_spec = importlib.util.spec_from_file_location("trajet_k8s_render", K8S_DIR / "render.py")
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)

PINNED = render.K8S_VERSION
# the pinned version is the oldest supported; the newest schema `kubernetes-validate>=1.37` is sure to have
VERSIONS = (PINNED, "1.37")
NAMESPACE = "trajet"
JOBS_SECRET = "trajet-jobs"
POOL_OF = {name: d["work_pool"]["name"] for name, d in render.deployments().items()}


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S_DIR / name).read_text(encoding="utf-8")) if d]


def _by_kind(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _validate_everywhere(manifest: dict) -> None:
    for version in VERSIONS:
        render.validate_manifest(manifest, version)


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list) and node and all(isinstance(i, dict) and "name" in i for i in node):
        for item in node:
            yield from _leaves(item, (*path, f"[name={item['name']}]"))
    else:
        yield path, node


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    return {pool: render.load_template(pool) for pool in render.POOLS}


@pytest.fixture(scope="module")
def default() -> dict:
    return render.default_template()


@pytest.fixture(scope="module")
def jobs(templates) -> dict[str, dict]:
    """The Job the worker would create for a run of each deployment, on its pool, with prefect.yaml's job variables."""
    return {
        name: render.render(templates[pool], render.deployment_job_variables(name), pool=pool, deployment=name,
                            flow=name).job_manifest
        for name, pool in POOL_OF.items()
    }


def _container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_the_pinned_kubernetes_version_is_known_to_the_validator():
    assert PINNED == "1.31"
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert kubernetes_validate.validate(configmap, PINNED, strict=True) == PINNED
    assert f"Kubernetes {PINNED}" in (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    for name in ("serve.yaml", "workers.yaml"):
        assert f"Kubernetes {PINNED}" in (K8S_DIR / name).read_text(encoding="utf-8"), name


@pytest.mark.parametrize("pool", render.POOLS)
def test_template_is_prefect_kubernetes_default_plus_trajet(pool, templates, default):
    template = templates[pool]
    # merging into the default adds nothing: every field and variable of the default is already there
    assert render.merged_template(template) == template
    ours = dict(_leaves(template["job_configuration"]))
    changed = {path: value for path, value in _leaves(default["job_configuration"]) if ours.get(path, object()) != value}
    assert not changed, f"the default's job configuration changed or lost: {changed}"
    for name, schema in default["variables"]["properties"].items():
        mine = template["variables"]["properties"][name]
        for key in ("type", "anyOf", "enum", "items", "additionalProperties", "$ref", "minimum"):
            assert mine.get(key) == schema.get(key), f"{name}.{key}"
    assert template["variables"]["definitions"] == default["variables"]["definitions"]


@pytest.mark.parametrize("pool", render.POOLS)
def test_template_passes_the_checks_of_prefect_and_its_kubernetes_worker(pool, templates):
    from prefect.utilities.templating import apply_values
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = templates[pool]
    render.check_template(template)  # placeholders <-> variables, defaults fit the schema
    # the worker's job configuration class accepts the template filled with its defaults
    defaults = {k: p["default"] for k, p in template["variables"]["properties"].items() if p.get("default") is not None}
    config = KubernetesWorkerJobConfiguration(**apply_values(copy.deepcopy(template["job_configuration"]), defaults))
    assert config.namespace == NAMESPACE
    # the deployments of this pool carry job variables the template accepts
    for name, deployment_pool in POOL_OF.items():
        if deployment_pool == pool:
            render.check_job_variables(template, render.deployment_job_variables(name))


def test_the_gpu_job_asks_for_a_gpu_where_kubernetes_looks(jobs):
    job = jobs["finetune"]
    pod = job["spec"]["template"]["spec"]
    container = _container(job)
    assert job["metadata"]["namespace"] == NAMESPACE
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (shm,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert volumes[shm["name"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    # shared memory counts against the memory limit: leave room for the process itself
    assert int(container["resources"]["limits"]["memory"].removesuffix("Gi")) >= 2 * 8
    # prefect.yaml's job variables for finetune land as on a process pool
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["HF_HUB_OFFLINE"] == "1"
    assert container["workingDir"] == render.IMAGE_CODE_DIR
    assert container["image"].endswith(":gpu")


@pytest.mark.parametrize("name", sorted(POOL_OF))
def test_every_deployment_renders_a_valid_job(name, jobs):
    job = jobs[name]
    pod = job["spec"]["template"]["spec"]
    container = _container(job)
    _validate_everywhere(render.as_stored(job))
    assert container["envFrom"] == [{"secretRef": {"name": JOBS_SECRET}}]
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert container["name"] == "prefect-job" and pod["restartPolicy"] == "Never"
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert requests["cpu"] and requests["memory"] and limits["memory"]
    # TRAJET_HOME is the scratch volume
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[env["TRAJET_HOME"]] in {v["name"] for v in pod["volumes"]}
    assert "TRAJET_DATABASE_URL" not in env and "AWS_SECRET_ACCESS_KEY" not in env  # from the Secret only
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    assert job["metadata"]["labels"]["prefect.io/deployment-name"] == name
    if POOL_OF[name] == "cpu":
        assert "nvidia" not in json.dumps(job) and not any(m == "/dev/shm" for m in mounts)


def test_job_variables_of_a_flow_run_override_the_pools(templates):
    vars_ = render.deployment_job_variables("finetune")
    run_vars = {"gpu_count": 2, "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                "env": {"TRAJET_TRAIN_NUM_EPOCHS": "3"}, "image": "registry.example.com/trajet:2026-12-05-gpu"}
    render.check_job_variables(templates["gpu"], {**vars_, **run_vars})
    job = render.render(templates["gpu"], vars_, run_vars).job_manifest
    container = _container(job)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TRAJET_TRAIN_NUM_EPOCHS"] == "3" and env["CUDA_VISIBLE_DEVICES"] == "0"  # merged, not replaced
    assert env["TRAJET_HOME"] == "/var/lib/trajet"  # the pool's default env stays
    assert container["image"] == "registry.example.com/trajet:2026-12-05-gpu"
    _validate_everywhere(render.as_stored(job))


def test_only_prefects_pod_spec_extras_are_unknown_to_kubernetes(jobs):
    job = jobs["finetune"]
    with pytest.raises(kubernetes_validate.ValidationError, match="completions.*parallelism"):
        render.validate_manifest(job)
    stored = render.as_stored(job)
    dropped = {p for p, _ in _leaves(job)} - {p for p, _ in _leaves(stored)}
    assert dropped == {("spec", "template", "spec", k) for k in render.PREFECT_POD_SPEC_EXTRAS}


def _broken(template: dict, old: str, new: str) -> dict:
    text = json.dumps(template)
    assert old in text, old
    return json.loads(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "old, new, stage, match",
    [
        ('"{{ gpu_count }}"', '"{{ gpu_cont }}"', "check", "undeclared variable"),
        ('"{{ shm_size }}"', '"8Gi"', "check", "no placeholder uses.*shm_size"),
        ('"default": 1, "type": "integer"', '"default": "one", "type": "integer"', "check", "gpu_count"),
        ('"envFrom"', '"envfrom"', "validate", "envfrom"),
        ('"nodeSelector"', '"nodeSelecter"', "validate", "nodeSelecter"),
        ('"medium": "Memory"', '"medium": ["Memory"]', "validate", "Memory"),
        ('"name": "prefect-job"', '"name": "trainer"', "render", "containers"),
        ('"restartPolicy": "Never"', '"restartPolicy": "Always"', "render", "restartPolicy"),
    ],
    ids=["placeholder-without-variable", "variable-without-placeholder", "bad-default", "misspelt-envFrom",
         "misspelt-nodeSelector", "wrong-type", "renamed-container", "restart-policy"],
)
def test_a_broken_template_is_caught(templates, old, new, stage, match):
    broken = _broken(templates["gpu"], old, new)
    with pytest.raises(Exception, match=match):
        render.check_template(broken)
        job = render.render(broken, render.deployment_job_variables("finetune")).job_manifest
        render.validate_manifest(render.as_stored(job))
    # and the stage named is the one that catches it
    if stage != "check":
        render.check_template(broken)
    if stage == "validate":
        render.render(broken)


@pytest.fixture(scope="module")
def serve_docs() -> dict:
    return _by_kind(_docs("serve.yaml"))


def test_serve_manifests_validate(serve_docs):
    assert set(serve_docs) == {("Deployment", "trajet-serve"), ("Service", "trajet-serve"),
                               ("PodDisruptionBudget", "trajet-serve")}
    for doc in serve_docs.values():
        _validate_everywhere(doc)
        assert doc["metadata"]["namespace"] == NAMESPACE


def test_serve_replicas_follow_the_champion_and_are_probed_on_health(serve_docs):
    import click
    import typer

    from trajet.cli import app

    deployment = serve_docs[("Deployment", "trajet-serve")]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["command"]
    assert command[:2] == ["trajet", "serve"] and "--model" not in command and "-m" not in command
    # the arguments parse as `trajet serve` options; the model is the champion, on all interfaces
    serve = typer.main.get_command(app).get_command(click.Context(click.Command("trajet")), "serve")
    params = serve.make_context("serve", command[2:]).params
    assert params["model"] == "champion" and params["host"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == params["port"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    assert container["envFrom"] == [{"secretRef": {"name": "trajet-serve"}}]
    # every variable set here is one `trajet serve` reads
    envvars = {p.envvar for p in serve.params if p.envvar} | {"TRAJET_HOME"}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert set(env) <= envvars, set(env) - envvars
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[env["TRAJET_HOME"]] in {v["name"] for v in pod["volumes"]}
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_serve_service_and_budget_select_the_replicas(serve_docs):
    deployment = serve_docs[("Deployment", "trajet-serve")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = serve_docs[("Service", "trajet-serve")]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    budget = serve_docs[("PodDisruptionBudget", "trajet-serve")]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


@pytest.fixture(scope="module")
def worker_docs() -> dict:
    return _by_kind(_docs("workers.yaml"))


def test_worker_manifests_validate(worker_docs):
    for doc in worker_docs.values():
        _validate_everywhere(doc)
        assert doc["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("pool", render.POOLS)
def test_a_kubernetes_worker_per_pool_with_the_rights_it_needs(pool, worker_docs, monkeypatch):
    from prefect_kubernetes.settings import KubernetesSettings

    deployment = worker_docs[("Deployment", f"prefect-worker-{pool}")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[:3] == ["prefect", "worker", "start"]
    assert args[args.index("--pool") + 1] == pool and args[args.index("--type") + 1] == "kubernetes"
    assert "--no-create-pool-if-not-found" in args  # a missing pool is an error, not a default template
    assert container["livenessProbe"]["httpGet"]["path"] == "/health" and "--with-healthcheck" in args
    assert container["envFrom"] == [{"secretRef": {"name": "prefect-api"}}]
    prefect_version = yaml.safe_load(render.PREFECT_YAML.read_text())["prefect-version"]
    assert container["image"] == f"prefecthq/prefect:{prefect_version}-python3.11-kubernetes"
    # the observer watches this namespace only: the setting is prefect-kubernetes' own
    env = {e["name"]: e["value"] for e in container["env"]}
    for name, value in env.items():
        if name.startswith("PREFECT_"):
            monkeypatch.setenv(name, value)
    assert KubernetesSettings().observer.namespaces == {NAMESPACE}

    # its ServiceAccount may create and watch Jobs and read their pods, in this namespace only
    account = pod["serviceAccountName"]
    (binding,) = [d for (kind, _), d in worker_docs.items() if kind == "RoleBinding"
                  and {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE} in d["subjects"]]
    role = worker_docs[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
    assert role["kind"] == "Role"

    def allowed(group, resource, verb):
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in role["rules"])

    for verb in ("create", "get", "list", "watch", "delete"):
        assert allowed("batch", "jobs", verb), verb
    for resource in ("pods", "pods/log"):
        assert allowed("", resource, "list") and allowed("", resource, "get")
    assert not allowed("", "secrets", "get") and not any("*" in json.dumps(r) for r in role["rules"])


def test_names_agree_across_templates_manifests_and_image(templates, serve_docs, worker_docs):
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    code_dir = re.search(r"TRAJET_CODE_DIR=(\S+)", dockerfile).group(1)
    uid = int(re.search(r"useradd .*--uid (\d+)", dockerfile).group(1))
    assert code_dir == render.IMAGE_CODE_DIR
    for pool, template in templates.items():
        props = template["variables"]["properties"]
        assert props["namespace"]["default"] == NAMESPACE
        assert props["working_dir"]["default"] == code_dir
        assert props["env_secret_name"]["default"] == JOBS_SECRET
        assert props["image"]["default"].endswith(f":{pool}")
        pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == uid
    serve = serve_docs[("Deployment", "trajet-serve")]["spec"]["template"]["spec"]
    assert serve["securityContext"]["runAsUser"] == uid
    # the replicas serve from the CPU image the cpu pool runs
    assert serve["containers"][0]["image"] == templates["cpu"]["variables"]["properties"]["image"]["default"]


@pytest.mark.parametrize(
    "secret, used_in",
    [(JOBS_SECRET, "cpu-job-template.json"), ("trajet-serve", "serve.yaml"), ("prefect-api", "workers.yaml")],
)
def test_secrets_are_named_not_written(secret, used_in):
    example = K8S_DIR / f"{secret}.env.example"
    text = example.read_text(encoding="utf-8")
    keys = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    for key, value in keys.items():
        if re.search(r"PASSWORD|SECRET_ACCESS_KEY|AUTH_STRING", key):
            assert "change-me" in value, key
        for match in re.finditer(r"://[^:/@\s]+:([^@\s]+)@", value):
            assert "change-me" in match.group(1), key
    if secret == JOBS_SECRET:
        assert {"TRAJET_DATABASE_URL", "TRAJET_REGISTRY_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(keys)
    elif secret == "trajet-serve":
        assert "TRAJET_REGISTRY_URI" in keys and "TRAJET_DATABASE_URL" not in keys  # the registry only
    else:
        assert "PREFECT_API_URL" in keys
    assert secret in (K8S_DIR / used_in).read_text(encoding="utf-8")
    # the filled-in copy is git-ignored
    assert "k8s/*.env" in (ROOT / "infra" / ".gitignore").read_text().splitlines()
    # and no manifest carries a Secret's data
    for name in ("serve.yaml", "workers.yaml"):
        assert all(d["kind"] != "Secret" for d in _docs(name))


def test_every_k8s_file_is_documented():
    readme = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    for path in sorted(K8S_DIR.iterdir()):
        if path.is_file() and path.suffix != ".env":  # filled-in Secrets (git-ignored) are not documented
            assert f"k8s/{path.name}" in readme, path.name
    assert "(infra/README.md#kubernetes)" in (ROOT / "README.md").read_text(encoding="utf-8")


def _stub_prefect(tmp_path: Path, existing: dict[str, str]) -> tuple[dict, Path]:
    """A `prefect` on PATH that knows the given pools (name -> type) and records what it is asked."""
    state = tmp_path / "prefect-state"
    state.mkdir()
    for name, type_ in existing.items():
        (state / f"{name}.json").write_text(json.dumps({"name": name, "type": type_}))
    stub = tmp_path / "bin" / "prefect"
    stub.parent.mkdir()
    stub.write_text(f"""#!/bin/sh
state={state}
echo "$*" >> "$state/calls"
if [ "$1 $2" = "work-pool inspect" ]; then cat "$state/$3.json" 2>/dev/null || exit 1; exit 0; fi
if [ "$2" = create ] && [ "$6" = --base-job-template ]; then cp "$7" "$state/create-$3.json"; fi
if [ "$2" = update ] && [ "$4" = --base-job-template ]; then cp "$5" "$state/update-$3.json"; fi
""")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{stub.parent}{os.pathsep}{os.environ['PATH']}", "PYTHON": sys.executable,
           "TRAJET_CPU_IMAGE": "registry.example.com/trajet:2026-12-05-cpu",
           "TRAJET_GPU_IMAGE": "registry.example.com/trajet:2026-12-05-gpu"}
    return env, state


@pytest.mark.slow  # two render.py processes (~3 s each: prefect imports)
def test_create_pools_script_creates_kubernetes_pools_with_the_images(tmp_path):
    env, state = _stub_prefect(tmp_path, {})
    proc = subprocess.run(["sh", str(K8S_DIR / "create-pools.sh")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    calls = (state / "calls").read_text().splitlines()
    assert [c.split(" --base-job-template")[0] for c in calls if "create" in c] == [
        "work-pool create cpu --type kubernetes", "work-pool create gpu --type kubernetes"]
    assert calls[-1] == "work-pool update gpu --concurrency-limit 1"
    for pool in render.POOLS:
        sent = json.loads((state / f"create-{pool}.json").read_text())
        assert sent["variables"]["properties"]["image"]["default"] == env[f"TRAJET_{pool.upper()}_IMAGE"]
        assert sent["variables"]["properties"]["namespace"]["default"] == NAMESPACE
        render.check_template(sent)


@pytest.mark.slow
def test_create_pools_script_refuses_to_turn_a_process_pool_into_kubernetes(tmp_path):
    env, state = _stub_prefect(tmp_path, {"cpu": "process"})
    proc = subprocess.run(["sh", str(K8S_DIR / "create-pools.sh")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "'cpu' is a 'process' pool" in proc.stderr and "prefect work-pool delete cpu" in proc.stderr
    calls = (state / "calls").read_text().splitlines()
    assert not any("create" in c or "update" in c for c in calls), calls
