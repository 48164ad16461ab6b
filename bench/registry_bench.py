"""Push / pull / promote timings for a model-sized directory on both registry backends.

    python bench/registry_bench.py [--mib 128]

S3 runs against moto's server on loopback, so its numbers measure Trajet's overhead (hashing,
verification, temp-dir rename) plus a local HTTP hop, not a real network.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

from trajet.registry import open_registry


def make_model(path: Path, mib: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    save_file(
        {"w": rng.standard_normal((mib * 1024 * 1024) // 4, dtype=np.float32)},
        str(path / "model.safetensors"),
    )
    (path / "config.json").write_text('{"model_type": "camembert"}')
    (path / "tokenizer.json").write_text('{"version": "1.0"}')


def bench(uri: str, model: Path, work: Path) -> dict[str, float]:
    reg = open_registry(uri)
    out: dict[str, float] = {}
    t = time.perf_counter()
    reg.push("v1", model, {})
    out["push"] = time.perf_counter() - t
    t = time.perf_counter()
    reg.push("v2", model, {})
    reg.promote("v1")
    t = time.perf_counter()
    reg.promote("v2")
    out["promote"] = time.perf_counter() - t
    t = time.perf_counter()
    reg.pull("champion", work / f"pulled-{uuid.uuid4().hex[:6]}")
    out["pull"] = time.perf_counter() - t
    t = time.perf_counter()
    reg.list_versions()
    out["list"] = time.perf_counter() - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=128)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "model"
        make_model(model, args.mib)
        results = {"local": bench(str(work / "registry"), model, work)}

        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://{host}:{port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench")
        try:
            results["s3 (moto, loopback)"] = bench("s3://bench/trajet", model, work)
        finally:
            server.stop()
    print(f"model directory: {args.mib} MiB of safetensors + 2 small files")
    for backend, r in results.items():
        print(
            f"{backend:20s} push {r['push']:.2f}s ({args.mib / r['push']:.0f} MiB/s)  "
            f"pull {r['pull']:.2f}s ({args.mib / r['pull']:.0f} MiB/s)  "
            f"promote {r['promote'] * 1000:.0f} ms  list {r['list'] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
