#!/usr/bin/env python3
"""Trajet's Kubernetes work-pool templates, checked and rendered the way Prefect and its Kubernetes worker do.

No cluster is needed: the templates are merged into prefect-kubernetes' own default template, checked as the
Prefect server checks a pool's template, and rendered into the Job the worker would create for a flow run
(`KubernetesWorkerJobConfiguration.resolve_for_flow_run`, the worker's own code path).

    python infra/k8s/render.py template gpu --set image=registry.example.com/trajet:2026-12-05-gpu > gpu.json
    python infra/k8s/render.py job gpu --deployment finetune [--set gpu_count=2]   # the Job, as YAML

`template` prints a pool's base job template for `prefect work-pool create|update --base-job-template`, with
variable defaults set by `--set NAME=VALUE` (VALUE is read as JSON when it parses, else as a string). `job`
prints the Job manifest for a run of a deployment of deployments/prefect.yaml (its job variables, then
`--set` as a flow run's job variables); `| kubectl create --dry-run=server -f -` has a real cluster check it
(`create`, not `apply`: the Job has a generateName). Needs prefect-kubernetes (the `dev` extra, or the worker
image); Trajet itself does not.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"
POOLS = ("cpu", "gpu")
# The Kubernetes version the manifests are written and validated for (tests/test_k8s.py): the oldest one
# supported. Nothing newer than 1.31's GA API is used.
K8S_VERSION = "1.31"
# Where the image keeps Trajet's code (infra/Dockerfile); fills `{{ $TRAJET_CODE_DIR }}` in prefect.yaml.
IMAGE_CODE_DIR = "/opt/trajet"
# prefect-kubernetes requires these two inside the pod spec (its job configuration's validator checks for
# them), but PodSpec has no such fields: the API server drops them with a warning (default field
# validation), so they are the only unknown fields a rendered Job may carry.
PREFECT_POD_SPEC_EXTRAS = ("parallelism", "completions")


def template_path(pool: str) -> Path:
    return HERE / f"{pool}-job-template.json"


def load_template(pool: str) -> dict[str, Any]:
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}: one of {', '.join(POOLS)}")
    return json.loads(template_path(pool).read_text(encoding="utf-8"))


def default_template() -> dict[str, Any]:
    """prefect-kubernetes' own base job template, the one `prefect work-pool create --type kubernetes` uses."""
    from prefect_kubernetes.worker import KubernetesWorker

    return KubernetesWorker.get_default_base_job_template()


def _named_items(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, dict) and "name" in i for i in value)


def merge(base: Any, override: Any) -> Any:
    """`override` on top of `base`: dicts merge key by key, lists of named items (containers, volumes,
    mounts) merge by name, anything else in `override` wins."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if _named_items(base) and _named_items(override):
        by_name = {item["name"]: item for item in base}
        merged = [merge(by_name[i["name"]], i) if i["name"] in by_name else copy.deepcopy(i) for i in override]
        names = {i["name"] for i in override}
        return merged + [copy.deepcopy(i) for i in base if i["name"] not in names]
    return copy.deepcopy(override)


def merged_template(template: dict[str, Any]) -> dict[str, Any]:
    """The template merged into prefect-kubernetes' default: what the default has and the template lacks
    comes back (a variable or field added by a newer prefect-kubernetes, for instance)."""
    return merge(default_template(), template)


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set takes NAME=VALUE, got {item!r}")
        values[name] = parse_value(value)
    return values


def with_defaults(template: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A copy of the template whose variables default to `defaults` (e.g. the image and the namespace)."""
    out = copy.deepcopy(template)
    properties = out["variables"]["properties"]
    for name, value in defaults.items():
        if name not in properties:
            raise ValueError(f"{name!r} is not a variable of this template: {', '.join(sorted(properties))}")
        properties[name]["default"] = value
    return out


def check_job_variables(template: dict[str, Any], job_variables: dict[str, Any]) -> None:
    """Job variables (a deployment's, a flow run's, or the defaults) against the template's variables schema,
    as the Prefect server validates them."""
    from prefect.utilities.schema_tools import validate

    validate(job_variables, template["variables"], raise_on_error=True, preprocess=True,
             ignore_required=True, allow_none_with_default=True)


def check_template(template: dict[str, Any]) -> None:
    """What the Prefect server checks when the pool is created or updated (every placeholder is a variable,
    the defaults fit the schema), and that every variable is used: one that no placeholder reads has no effect."""
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.templating import find_placeholders

    validate_base_job_template(template)
    properties = template["variables"]["properties"]
    used = {p.name for p in find_placeholders(template["job_configuration"])}
    unused = sorted(set(properties) - used)
    if unused:
        raise ValueError(f"variables that no placeholder uses (they would do nothing): {', '.join(unused)}")
    defaults = {name: p["default"] for name, p in properties.items() if p.get("default") is not None}
    check_job_variables(template, defaults)


class _OfflineClient:
    """Stands in for the Prefect client while rendering: the worker only asks it for the flow. A template that
    reads a block or a Prefect variable needs a real API, and fails here instead of rendering something else."""

    def __init__(self, flow: Any) -> None:
        self._flow = flow

    async def read_flow(self, flow_id: Any) -> Any:
        return self._flow

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"rendering offline: this template needs the Prefect API ({name})")


def render(
    template: dict[str, Any],
    job_variables: dict[str, Any] | None = None,
    flow_run_job_variables: dict[str, Any] | None = None,
    *,
    pool: str = "gpu",
    deployment: str = "finetune",
    flow: str = "finetune",
) -> Any:
    """The worker's job configuration for a sample flow run of `deployment` on a pool with this template:
    deployment and flow-run job variables merged over the template's defaults, then prepared for the run
    (Prefect's environment, labels, command, name). `.job_manifest` is the Job the worker would create."""
    from prefect.client.schemas.objects import Flow, FlowRun, WorkPool
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    api_flow = Flow(id=uuid.uuid4(), name=flow)
    api_deployment = DeploymentResponse(
        id=uuid.uuid4(), name=deployment, flow_id=api_flow.id, job_variables=copy.deepcopy(job_variables or {})
    )
    flow_run = FlowRun(
        id=uuid.uuid4(), name="sample-run", flow_id=api_flow.id, deployment_id=api_deployment.id,
        job_variables=copy.deepcopy(flow_run_job_variables or {}),
    )
    work_pool = WorkPool(name=pool, type="kubernetes", base_job_template=template)
    return asyncio.run(
        KubernetesWorkerJobConfiguration.resolve_for_flow_run(
            flow_run, client=_OfflineClient(api_flow), work_pool=work_pool, worker_name="render",
            deployment=api_deployment,
        )
    )


def as_stored(job: dict[str, Any]) -> dict[str, Any]:
    """The Job as the API server keeps it: Prefect's two pod-spec extras dropped, nothing else changed."""
    out = copy.deepcopy(job)
    pod_spec = out["spec"]["template"]["spec"]
    for key in PREFECT_POD_SPEC_EXTRAS:
        pod_spec.pop(key, None)
    return out


def validate_manifest(manifest: dict[str, Any], version: str = K8S_VERSION) -> None:
    """Strict validation against the Kubernetes OpenAPI schema of `version` (kubernetes-validate, offline):
    unknown fields, wrong types and missing required fields all fail."""
    import kubernetes_validate

    kubernetes_validate.validate(manifest, version, strict=True)


def deployments() -> dict[str, dict[str, Any]]:
    import yaml

    doc = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    return {d["name"]: d for d in doc["deployments"]}


def deployment_job_variables(name: str, code_dir: str = IMAGE_CODE_DIR) -> dict[str, Any]:
    """A deployment's job variables from deployments/prefect.yaml, `{{ $VAR }}` filled in from the environment
    as `prefect deploy` does, with TRAJET_CODE_DIR set to `code_dir` (the image's code directory)."""
    from unittest import mock

    from prefect.utilities.templating import apply_values

    job_variables = deployments()[name]["work_pool"].get("job_variables") or {}
    with mock.patch.dict(os.environ, {"TRAJET_CODE_DIR": code_dir}):
        return apply_values(copy.deepcopy(job_variables), os.environ, remove_notset=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tpl = sub.add_parser("template", help="a pool's base job template, checked, with --set variable defaults")
    tpl.add_argument("pool", choices=POOLS)
    tpl.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    job = sub.add_parser("job", help="the Job manifest the worker would create for a run of a deployment")
    job.add_argument("pool", choices=POOLS)
    job.add_argument("--deployment", help="a deployment of deployments/prefect.yaml (default: none)")
    job.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="a flow run's job variable (e.g. gpu_count=2)")
    args = parser.parse_args(argv)

    try:
        values = parse_sets(args.set)
        if args.command == "template":
            template = with_defaults(merged_template(load_template(args.pool)), values)
            check_template(template)
            json.dump(template, sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
            return 0
        import yaml

        template = merged_template(load_template(args.pool))
        check_template(template)
        deployment_vars = deployment_job_variables(args.deployment) if args.deployment else {}
        check_job_variables(template, {**deployment_vars, **values})
        config = render(template, deployment_vars, values, pool=args.pool,
                        deployment=args.deployment or "sample", flow=args.deployment or "sample")
        yaml.safe_dump(config.job_manifest, sys.stdout, sort_keys=False)
        return 0
    except Exception as exc:  # a bad --set, a template Prefect would refuse, an unknown deployment
        print(f"render.py: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
