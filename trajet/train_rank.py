"""One rank of a distributed training: `python -m trajet.train_rank JOB_DIR`, started by torchrun (trajet.distributed).

It reads the job its parent wrote (the resolved config, the phrases, the base already prepared) rather than
arguments, so every rank trains on the same list with the same settings; on several hosts, where each host's
parent wrote its own job, the ranks compare fingerprints of what they read before training and refuse to start
if one differs. A rank that fails writes its error, in one line, where the parent looks for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from trajet.distributed import (
    JOB_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
    TRAIN_FILE,
    VALIDATION_FILE,
)
from trajet.errors import TrajetError
from trajet.phrases import read_phrases
from trajet.train_config import TrainingConfig
from trajet.train_data import ROW_LOG_VAR, PhraseSource, phrases_hash


def _env(name: str) -> int:
    return int(os.environ.get(name, "0"))


def _init_process_group(backend: str) -> Any:
    import torch
    import torch.distributed as dist

    if backend == "nccl":
        torch.cuda.set_device(_env("LOCAL_RANK"))
    dist.init_process_group(backend=backend)
    return dist


def _same_everywhere(dist: Any, train: PhraseSource, validation: PhraseSource, config: TrainingConfig) -> None:
    """Each host's parent wrote its own job: refuse to train if the ranks did not read the same phrases (with
    the fields that weigh them) and the same settings."""
    meta_keys = hashlib.sha256()
    for p in train:  # which fields weigh each phrase, digested as read (a stream is not held)
        meta_keys.update(json.dumps(sorted(p.meta)).encode())
    seen = json.dumps([phrases_hash(train), phrases_hash(validation), meta_keys.hexdigest(), config.to_dict()],
                      sort_keys=True, default=str)
    mine = hashlib.sha256(seen.encode()).hexdigest()[:16]
    every: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    odd = [rank for rank, fingerprint in enumerate(every) if fingerprint != every[0]]
    if odd:
        raise TrajetError(f"rank(s) {', '.join(map(str, odd))} read other phrases or settings than rank 0: give "
                          "every host the same --train/--validation files (or --snapshot), preset and --set values")


def run_rank(job_dir: Path) -> None:
    from trajet.train import train_model

    job = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    config = TrainingConfig.from_dict(job["config"])
    train: PhraseSource
    validation: PhraseSource
    if job.get("snapshot_uri"):
        from trajet.snapshot_reader import SnapshotReader

        train, validation, _ = SnapshotReader(job["snapshot_uri"], expected_hash=job["snapshot_hash"]).training_splits()
    else:
        train, validation = read_phrases(job_dir / TRAIN_FILE), read_phrases(job_dir / VALIDATION_FILE)
    dist = _init_process_group(job["backend"])
    _same_everywhere(dist, train, validation, config)
    rank = dist.get_rank()
    progress = job_dir / PROGRESS_FILE

    def log_line(line: str) -> None:
        with progress.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    result = train_model(train, validation, config, Path(job["output_dir"]), snapshot_hash=job["snapshot_hash"],
                         progress=bool(job["progress"]), log_line=log_line, base=job["base"],
                         ddp_backend=job["backend"])
    summary = {"rank": rank, "wrote_model": rank == 0, "best_metrics": result.best_metrics, "steps": result.steps,
               "seconds": result.seconds, "history": result.history}
    if _env("LOCAL_RANK") == 0:
        (job_dir / RESULT_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if os.environ.get(ROW_LOG_VAR):  # test-only: what each rank computed, to compare across ranks
        (Path(os.environ[ROW_LOG_VAR]) / f"result-rank{rank}.json").write_text(json.dumps(summary), encoding="utf-8")
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m trajet.train_rank JOB_DIR (started by `trajet train --nproc N`)", file=sys.stderr)
        return 2
    job_dir = Path(args[0])
    rank = os.environ.get("RANK", "0")
    try:
        run_rank(job_dir)
    except Exception as exc:
        said = str(exc) if isinstance(exc, TrajetError) else f"{type(exc).__name__}: {exc}"
        error = " ".join(said.split())[:500]
        record = {"rank": int(rank), "error": error, "time": time.time()}
        (job_dir / f"rank{rank}.error.json").write_text(json.dumps(record) + "\n", encoding="utf-8")
        if isinstance(exc, TrajetError):
            print(f"rank {rank}: error: {exc}", file=sys.stderr)
        else:  # a bug or a crash: the traceback goes to the launcher's log, which the parent's error names
            traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
