#!/bin/sh
# Creates Trajet's `cpu` and `gpu` Kubernetes work pools from the templates in this folder, or updates their base
# job templates when they exist already (infra/README.md#kubernetes). Run it again after changing a template.
#   export PREFECT_API_URL=http://prefect-server.example.internal:4200/api
#   TRAJET_CPU_IMAGE=registry.example.com/trajet:2026-12-05-cpu \
#   TRAJET_GPU_IMAGE=registry.example.com/trajet:2026-12-05-gpu \
#     infra/k8s/create-pools.sh
# Optional: TRAJET_K8S_NAMESPACE (trajet), TRAJET_GPU_POOL_LIMIT (1: flow runs at once on the gpu pool, one per
# GPU), PYTHON (python3, with prefect-kubernetes: the `dev` extra). The plain Prefect commands it runs are
#   python infra/k8s/render.py template gpu --set image=... --set namespace=... > gpu.json
#   prefect work-pool create gpu --type kubernetes --base-job-template gpu.json
# A pool's type cannot change: an existing `process` pool of the same name is refused, not converted.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
namespace=${TRAJET_K8S_NAMESPACE:-trajet}
cpu_image=${TRAJET_CPU_IMAGE:?set TRAJET_CPU_IMAGE to the CPU image built from infra/Dockerfile}
gpu_image=${TRAJET_GPU_IMAGE:?set TRAJET_GPU_IMAGE to the CUDA image built from infra/Dockerfile}
gpu_limit=${TRAJET_GPU_POOL_LIMIT:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for pool in cpu gpu; do
  if [ "$pool" = cpu ]; then image=$cpu_image; else image=$gpu_image; fi
  "$python" "$here/render.py" template "$pool" --set "image=$image" --set "namespace=$namespace" > "$tmp/$pool.json"
  if prefect work-pool inspect "$pool" --output json > "$tmp/$pool.existing" 2>/dev/null; then
    type=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["type"])' "$tmp/$pool.existing")
    if [ "$type" != kubernetes ]; then
      echo "work pool '$pool' is a '$type' pool and a pool's type cannot change: delete it" \
        "(prefect work-pool delete $pool), run this again, then redeploy (prefect deploy --all)" >&2
      exit 1
    fi
    prefect work-pool update "$pool" --base-job-template "$tmp/$pool.json"
  else
    prefect work-pool create "$pool" --type kubernetes --base-job-template "$tmp/$pool.json"
  fi
done
prefect work-pool update gpu --concurrency-limit "$gpu_limit"
