"""`trajet train --nproc N`: the same training in N processes under torchrun (PyTorch DDP through the HF Trainer),
on one host or on several.

Why a parent and a job folder: every rank must train on exactly the same phrases with exactly the same settings,
so the parent resolves both once and writes them down (JSONL files and job.json) for the ranks to read, instead of
each rank parsing arguments, reading the store or drawing a snapshot again. The parent also prepares what the
ranks share, the base model (a built-in base built once, an s3:// mirror downloaded once), so that N ranks do not
race to build it. Rank 0 alone writes the model directory, atomically, and the progress lines the parent forwards
to its own log. A rank that fails makes torchrun fail; the parent turns that into one line naming the rank, its
exit code and its error, and keeps the launcher's log (with the rank's traceback) beside the output.

Evaluation on the test split and the gate are not here: they run after training, in one process, as before.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trajet.errors import TrajetError
from trajet.phrases import write_jsonl
from trajet.snapshot_reader import SnapshotSplit
from trajet.train import TrainResult, check_inputs, train_model
from trajet.train_config import TrainingConfig, cuda_available
from trajet.train_data import PhraseSource, Texts

BACKENDS = ("auto", "nccl", "gloo")
RANK_MODULE = "trajet.train_rank"
JOB_FILE, TRAIN_FILE, VALIDATION_FILE = "job.json", "train.jsonl", "validation.jsonl"
PROGRESS_FILE, RESULT_FILE, LAUNCHER_LOG = "progress.log", "result.json", "torchrun.log"
ERROR_GLOB = "rank*.error.json"


@dataclass(frozen=True)
class Launch:
    """Where the training runs: `nproc` processes on this host (one per GPU), on `nnodes` hosts."""

    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None  # HOST:PORT of the node-rank 0 host, for several hosts
    backend: str = "auto"

    @property
    def distributed(self) -> bool:
        return self.nproc * self.nnodes > 1

    def check(self) -> Launch:
        """Bad settings are one line before anything starts, not a hung rendezvous later."""
        if self.nproc < 1 or self.nnodes < 1:
            raise TrajetError(f"nproc and nnodes must be at least 1 (got {self.nproc} and {self.nnodes})")
        if not 0 <= self.node_rank < self.nnodes:
            raise TrajetError(f"--node-rank must be between 0 and {self.nnodes - 1} for --nnodes {self.nnodes}")
        if self.nnodes > 1:
            host, _, port = (self.rdzv_endpoint or "").rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise TrajetError("several hosts need --rdzv-endpoint HOST:PORT: the node-rank 0 host and a free "
                                  "port, reachable from every host")
        elif self.rdzv_endpoint:
            raise TrajetError("--rdzv-endpoint is for several hosts (--nnodes > 1); one host rendezvous by itself")
        if self.backend not in BACKENDS:
            raise TrajetError(f"unknown --ddp-backend {self.backend!r} (known: {', '.join(BACKENDS)})")
        if self.distributed and cuda_available():
            import torch

            visible = torch.cuda.device_count()
            if self.nproc > visible:
                raise TrajetError(f"{self.nproc} training processes need {self.nproc} GPUs on this host, {visible} "
                                  f"visible (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
        elif self.distributed and self.backend == "nccl":
            raise TrajetError("--ddp-backend nccl needs CUDA GPUs; on CPU use gloo (or auto)")
        return self

    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "nccl" if cuda_available() else "gloo"

    def torchrun_args(self) -> list[str]:
        """One host: a standalone rendezvous on a free local port. Several: a static rendezvous at the endpoint,
        so that node-rank 0 holds global rank 0, the rank that writes the model."""
        if self.nnodes == 1:
            where = ["--standalone"]
        else:
            where = [f"--nnodes={self.nnodes}", f"--node-rank={self.node_rank}", "--rdzv-backend=static",
                     f"--rdzv-endpoint={self.rdzv_endpoint}"]
        return [*where, f"--nproc-per-node={self.nproc}", "--max-restarts=0"]


def run_training(
    train: PhraseSource,
    validation: PhraseSource,
    config: TrainingConfig,
    output_dir: Path,
    launch: Launch | None = None,
    *,
    snapshot_hash: str | None = None,
    progress: bool = True,
    log_line: Callable[[str], None] | None = None,
) -> TrainResult:
    """In this process (the default: one process, nothing launched), or under torchrun when `launch` asks for
    more than one process."""
    if launch is None or not launch.check().distributed:
        return train_model(train, validation, config, output_dir, snapshot_hash=snapshot_hash, progress=progress,
                           log_line=log_line)
    return launch_training(train, validation, config, output_dir, launch, snapshot_hash=snapshot_hash,
                           progress=progress, log_line=log_line)


def job_dir_for(output_dir: Path) -> Path:
    return output_dir.parent / f".{output_dir.name}.ddp"


def write_job(job_dir: Path, train: PhraseSource, validation: PhraseSource, config: TrainingConfig, output_dir: Path,
              *, base: Path | str, backend: str, snapshot_hash: str | None, progress: bool) -> None:
    shutil.rmtree(job_dir, ignore_errors=True)
    job_dir.mkdir(parents=True)
    job = {"config": config.to_dict(), "base": str(base), "backend": backend, "output_dir": str(output_dir),
           "snapshot_hash": snapshot_hash, "progress": progress}
    if isinstance(train, SnapshotSplit) and isinstance(validation, SnapshotSplit):
        # The ranks stream the exported snapshot themselves (its cached, verified copy): no second copy as JSONL.
        job["snapshot_uri"] = train.reader.uri
    else:
        write_jsonl(job_dir / TRAIN_FILE, train)
        write_jsonl(job_dir / VALIDATION_FILE, validation)
    (job_dir / JOB_FILE).write_text(json.dumps(job, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def launch_training(
    train: PhraseSource,
    validation: PhraseSource,
    config: TrainingConfig,
    output_dir: Path,
    launch: Launch,
    *,
    snapshot_hash: str | None = None,
    progress: bool = True,
    log_line: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train under torchrun and return rank 0's result (on another host: its local rank 0's, the same metrics;
    the model is written on the node-rank 0 host only)."""
    from trajet.base import resolve_base

    check_inputs(train, validation, config)
    launch.check()
    output_dir = Path(output_dir).resolve()
    job_dir = job_dir_for(output_dir)
    base = resolve_base(config.base_model, corpus=Texts(train, validation), spec=config.base_spec)
    write_job(job_dir, train, validation, config, output_dir, base=base, backend=launch.resolved_backend(),
              snapshot_hash=snapshot_hash, progress=progress)
    command = [sys.executable, "-m", "torch.distributed.run", *launch.torchrun_args(), "-m", RANK_MODULE,
               str(job_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    # stdout stays the console's (rank 0's progress bar); stderr (the launcher's report, the ranks' warnings and
    # tracebacks) goes to a log that a failure names
    with (job_dir / LAUNCHER_LOG).open("wb") as log:
        code = _follow(subprocess.Popen(command, stderr=log, env=env), job_dir / PROGRESS_FILE, log_line)
    if code != 0:
        _drop_partials(output_dir)
        raise TrajetError(failure_line(job_dir, code))
    result = json.loads((job_dir / RESULT_FILE).read_text(encoding="utf-8"))
    shutil.rmtree(job_dir, ignore_errors=True)
    return TrainResult(output_dir=output_dir, best_metrics=result["best_metrics"], steps=result["steps"],
                       seconds=result["seconds"], history=result["history"])


def _follow(proc: subprocess.Popen[bytes], progress: Path, log_line: Callable[[str], None] | None) -> int:
    """Wait for torchrun, passing rank 0's validation lines on to `log_line` as they come (a Prefect run's log
    sees the F1 curve form, as with in-process training). An interrupted parent stops torchrun, which stops the
    ranks."""
    done = 0
    try:
        while True:
            try:
                code = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
            if log_line is not None and progress.is_file():
                lines = progress.read_text(encoding="utf-8").splitlines()
                complete = lines if code is not None else lines[:-1]  # the last one may be half-written
                for line in complete[done:]:
                    log_line(line)
                done = max(done, len(complete))
            if code is not None:
                return code
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def _drop_partials(output_dir: Path) -> None:
    """A failed run's scratch: its checkpoints, and a model directory rank 0 may have been writing."""
    shutil.rmtree(output_dir.parent / f".{output_dir.name}.checkpoints", ignore_errors=True)
    for partial in output_dir.parent.glob(f".{output_dir.name}.partial-*"):
        shutil.rmtree(partial, ignore_errors=True)


_ROOT_CAUSE = re.compile(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.S)


def failure_line(job_dir: Path, code: int) -> str:
    """The first rank that failed (torchrun's root cause), its exit code and its own error, in one line."""
    log = job_dir / LAUNCHER_LOG
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    cause = _ROOT_CAUSE.search(text)
    errors: dict[int, dict[str, Any]] = {}
    for path in job_dir.glob(ERROR_GLOB):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            errors[int(record["rank"])] = record
        except (ValueError, KeyError, TypeError):
            continue
    if cause:
        rank, rank_code = int(cause.group(1)), int(cause.group(2))
    elif errors:
        rank = min(errors, key=lambda r: errors[r].get("time", 0))
        rank_code = 1
    else:
        return f"distributed training failed: torchrun exited with code {code}; no model written (log: {log})"
    what = f"exited with code {rank_code}" if rank_code >= 0 else f"was killed by signal {-rank_code}"
    reason = f" ({errors[rank]['error']})" if rank in errors else ""
    return (f"distributed training failed: rank {rank} {what}{reason}; torchrun exited with code {code}; "
            f"no model written (log: {log})")
