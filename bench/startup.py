"""Start-up of `trajet predict --model M "one sentence"`: process wall time, this checkout against a baseline.

Ops call `trajet predict` from scripts and cron, one sentence at a time: what they wait for is the whole process
(imports, model load, one forward pass), so that is what is timed, with the shell's view (fork to exit). The
baseline is another commit of this repository (default `main`), extracted with `git archive` into a temporary
folder and run with the same Python, the same model and the same TRAJET_HOME (so both read one cached ONNX
export), interleaved run by run so that a machine shared with other work slows both alike. The first run of each
(backend, code) is a warm-up (ONNX export, the torch path's saved TorchScript trace, file cache) and is not
counted. Outputs of both must be identical.

    python bench/startup.py --model /path/to/model [--runs 7] [--baseline main]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEXT = "Je veux aller de Paris à Lyon en passant par Dijon"


def extract(ref: str, dest: Path) -> Path:
    """trajet/ and data/ (the gazetteer) of `ref` in `dest`, without touching the repository's worktrees."""
    archive = dest / "baseline.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", ref, "trajet", "data"], stdout=fh, check=True)
    root = dest / "baseline"
    root.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root


def run_once(code_root: Path, model: str, backend: str, env: dict[str, str]) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "trajet", "predict", "--model", model, TEXT]
    if backend == "onnx":
        cmd[4:4] = ["--backend", "onnx"]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**env, "PYTHONPATH": str(code_root)},
                          cwd=code_root, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{code_root}: {' '.join(cmd[1:])} failed:\n{done.stderr[-2000:]}")
    return took, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A model directory (a registry version works too).")
    parser.add_argument("--runs", type=int, default=7, help="Timed runs per backend and code (median reported).")
    parser.add_argument("--baseline", default="main", help="Git ref to compare against.")
    parser.add_argument("--backends", default="torch,onnx")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryDirectory(prefix="trajet-startup-") as tmp:
        env.setdefault("TRAJET_HOME", str(Path(tmp) / "home"))
        codes = {args.baseline: extract(args.baseline, Path(tmp)), "this checkout": REPO}
        load_before = os.getloadavg()[0]
        rows = []
        for backend in args.backends.split(","):
            times: dict[str, list[float]] = {name: [] for name in codes}
            outputs: dict[str, set[str]] = {name: set() for name in codes}
            for name, root in codes.items():  # warm-up: export, tokenizer check, page cache
                outputs[name].add(run_once(root, args.model, backend, env)[1])
            for _ in range(args.runs):
                for name, root in codes.items():
                    took, out = run_once(root, args.model, backend, env)
                    times[name].append(took)
                    outputs[name].add(out)
            same = len(set().union(*outputs.values())) == 1
            for name in codes:
                t = times[name]
                rows.append((backend, name, statistics.median(t), min(t), max(t), same))
        load_after = os.getloadavg()[0]
    print(f"model {args.model}, {args.runs} timed runs each, interleaved; "
          f"load average {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} CPUs)")
    print("| backend | code | median s | min s | max s | same output |")
    print("|---|---|---:|---:|---:|---|")
    for backend, name, med, lo, hi, same in rows:
        print(f"| {backend} | {name} | {med:.2f} | {lo:.2f} | {hi:.2f} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
