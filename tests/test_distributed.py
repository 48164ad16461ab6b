"""`trajet train --nproc N`: real torchrun runs, 2 gloo processes on CPU with the tiny preset and a few steps.

What is checked is what the ranks did: the row indices each rank's loader fetched (written by the test-only
TRAJET_TEST_RANK_LOG hook), the metrics each rank computed, the files left on disk, the exit code and the one
line a failed run prints; and, through the nightly flow, that a dead rank leaves the champion where it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.train_fixtures import make_phrases
from trajet.distributed import Launch
from trajet.errors import TrajetError
from trajet.phrases import write_jsonl

pytest_plugins = ["_prefect_harness"]
REPO = Path(__file__).resolve().parent.parent
N_TRAIN, N_VAL, BATCH, STEPS = 96, 24, 16, 6  # 96 = 3 steps of 16 x 2 ranks: an epoch needs no padding
TINY = ["--preset", "tiny", "--set", f"max_steps={STEPS}", "--set", "eval_steps=3", "--set", "save_steps=3",
        "--set", f"batch_size={BATCH}"]


def _data(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "train.jsonl", make_phrases(N_TRAIN, seed=21))
    write_jsonl(folder / "val.jsonl", make_phrases(N_VAL, seed=22))
    return folder / "train.jsonl", folder / "val.jsonl"


def _train(tmp_path: Path, output: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    train, val = _data(tmp_path / "data")
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               "COLUMNS": "300", **env}
    return subprocess.run(
        [sys.executable, "-m", "trajet", "train", "--train", str(train), "--validation", str(val), "-o", str(output),
         "--quiet", *TINY, *extra],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=300,
    )


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


# ------------------------------------------------------------------------------------------- settings


def test_launch_settings_are_refused_in_one_line():
    for launch, message in [
        (Launch(nproc=0), "at least 1"),
        (Launch(nproc=2, nnodes=2), "--rdzv-endpoint HOST:PORT"),
        (Launch(nproc=2, nnodes=2, rdzv_endpoint="host"), "--rdzv-endpoint HOST:PORT"),
        (Launch(nproc=2, nnodes=2, node_rank=2, rdzv_endpoint="h:29500"), "between 0 and 1"),
        (Launch(nproc=2, rdzv_endpoint="h:29500"), "several hosts"),
        (Launch(nproc=2, backend="mpi"), "unknown --ddp-backend"),
        (Launch(nproc=2, backend="nccl"), "nccl needs CUDA"),
    ]:
        with pytest.raises(TrajetError, match=message):
            launch.check()
    assert not Launch().check().distributed and Launch(nproc=1, nnodes=2, rdzv_endpoint="h:1").check().distributed
    assert Launch(nproc=2).torchrun_args() == ["--standalone", "--nproc-per-node=2", "--max-restarts=0"]
    assert Launch(4, 2, 1, "node0:29500").torchrun_args() == [
        "--nnodes=2", "--node-rank=1", "--rdzv-backend=static", "--rdzv-endpoint=node0:29500",
        "--nproc-per-node=4", "--max-restarts=0"]
    from trajet.cli import app

    res = CliRunner().invoke(app, ["train", "--nproc", "2", "--nnodes", "2"])
    assert isinstance(res.exception, TrajetError) and "--rdzv-endpoint" in str(res.exception)


def test_grouped_epochs_give_each_rank_its_own_batches_of_the_same_plan(tmp_path):
    """The augmented dataset (GroupedEpochs) counts its epochs itself; sharded the way the Trainer's accelerate
    loader shards it (every N-th batch, the last round padded with the epoch's first rows), the ranks still serve
    the same epoch's plan: together they serve every sentence once, plus the padding, epoch after epoch."""
    from collections import Counter

    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader, SequentialSampler
    from transformers import AutoTokenizer

    from trajet.augment import AugmentedPhrases, GroupedEpochs
    from trajet.minibase import MiniSpec, build_mini

    phrases = make_phrases(224, seed=11)
    tokenizer = AutoTokenizer.from_pretrained(str(build_mini([p.text for p in phrases], tmp_path / "base",
                                                             MiniSpec.named("tiny"))))
    for n, ranks in [(203, 2), (200, 3), (209, 3), (224, 2)]:
        loaders = []
        for rank in range(ranks):
            ds = GroupedEpochs(AugmentedPhrases(phrases[:n], tokenizer, 48, prob=0.0, seed=1), 8, seed=4, group_batches=5)
            loader = DataLoader(ds, batch_size=8, sampler=SequentialSampler(ds),
                                collate_fn=lambda items: [tuple(i["input_ids"]) for i in items])
            loaders.append(prepare_data_loader(loader, num_processes=ranks, process_index=rank, put_on_device=False))
        expected = Counter(tuple(i["input_ids"]) for i in AugmentedPhrases(phrases[:n], tokenizer, 48, prob=0.0,
                                                                           seed=1).plain)
        for epoch in range(3):
            served: Counter[tuple[int, ...]] = Counter()
            lengths = set()
            for loader in loaders:
                loader.set_epoch(epoch)
                batches = list(loader)
                lengths.add(len(batches))
                served.update(row for batch in batches for row in batch)
            assert len(lengths) == 1  # every rank takes as many steps (DDP would hang otherwise)
            assert not expected - served, (n, ranks, epoch)  # every sentence served
            padding = sum(served.values()) - n
            assert 0 <= padding < 8 * ranks  # and nothing more than the last round's padding


# --------------------------------------------------------------------------------------- torchrun runs


@pytest.mark.slow
def test_two_ranks_train_on_disjoint_shards_and_rank_0_alone_writes_the_model(tmp_path, monkeypatch):
    """Called as the flows call it (`run_training`), so that the validation lines the parent passes on from
    rank 0 are seen; the command line is run by the tests below."""
    from trajet.distributed import run_training
    from trajet.phrases import read_phrases
    from trajet.train_config import config_for

    out, log = tmp_path / "runs" / "model", tmp_path / "ranks"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("TRAJET_TEST_RANK_LOG", str(log))
    train, val = (read_phrases(path) for path in _data(tmp_path / "data"))
    config = config_for("tiny", {"max_steps": STEPS, "eval_steps": 3, "save_steps": 3, "batch_size": BATCH})
    lines: list[str] = []
    result = run_training(train, val, config, out, Launch(nproc=2), snapshot_hash="h1", progress=False,
                          log_line=lines.append)
    assert result.output_dir == out and result.steps == STEPS
    assert [line.split(":")[0] for line in lines] == ["step 3/6", "step 6/6"]  # rank 0's, once each

    # each optimizer step, each rank fetched one batch of 16 rows; per epoch (3 steps) the shards are disjoint
    # and together are the whole training list
    rows = {r: [json.loads(line) for line in (log / f"rows-rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)}
    assert all(len(batches) == STEPS and all(len(b) == BATCH for b in batches) for batches in rows.values())
    for epoch in range(STEPS // 3):
        shard = {r: [i for b in rows[r][epoch * 3:(epoch + 1) * 3] for i in b] for r in (0, 1)}
        assert not set(shard[0]) & set(shard[1])
        assert sorted(shard[0] + shard[1]) == list(range(N_TRAIN))
    assert rows[0][:3] != rows[0][3:]  # a new shuffle each epoch

    # one model directory, nothing else beside it: no checkpoints, job folder or partial copy left
    assert _leftovers(out.parent, keep="model") == []
    info = json.loads((out / "trajet_training.json").read_text())
    assert (info["processes"], info["steps"], info["n_train"], info["n_validation"]) == (2, STEPS, N_TRAIN, N_VAL)
    # each validation once (not once per rank): steps 3 and 6, then the best model's final scoring
    assert [h["step"] for h in info["history"]] == [3, 6, 6]
    # validation is gathered, so both ranks computed the same metrics; rank 0 recorded them once
    results = [json.loads((log / f"result-rank{r}.json").read_text()) for r in (0, 1)]

    def scores(metrics: dict) -> dict:  # the timings of each rank's evaluation differ, of course
        return {k: v for k, v in metrics.items() if k != "runtime" and not k.endswith("per_second")}

    assert scores(results[0]["best_metrics"]) == scores(results[1]["best_metrics"]) == scores(info["metrics"])
    assert {"f1_macro", "f1_micro", "loss", "exact_match"} <= set(scores(info["metrics"]))
    assert [r["wrote_model"] for r in results] == [True, False]
    assert result.best_metrics == results[0]["best_metrics"] and info["snapshot_hash"] == "h1"

    from trajet.predict import load_predictor

    [prediction] = load_predictor(out, backend="torch").predict(["Je veux aller de Paris à Lyon"])
    assert "entities" in prediction and "error" not in prediction


def test_ranks_stream_an_exported_snapshot_themselves(tmp_path, monkeypatch):
    """From a snapshot URI the job names the snapshot instead of copying its phrases: each rank streams the
    verified file itself, builds its own memory-mapped training cache, and leaves nothing beside the model."""
    from flow_data import phrase_rows
    from flow_data import write_jsonl as write_rows

    from trajet import store
    from trajet.distributed import JOB_FILE, TRAIN_FILE, run_training, write_job
    from trajet.ingest import ingest_source
    from trajet.snapshot_export import export_snapshot
    from trajet.snapshot_reader import SnapshotReader
    from trajet.train_config import config_for

    engine = store.get_engine(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade(engine=engine)
    ingest_source(write_rows(tmp_path / "batch.jsonl", phrase_rows(120, seed=5, split="train")), engine=engine)
    train, val, content_hash = SnapshotReader(export_snapshot(engine, str(tmp_path / "root")).uri).training_splits()
    config = config_for("tiny", {"max_steps": STEPS, "eval_steps": 3, "save_steps": 3, "batch_size": BATCH})
    write_job(tmp_path / "job", train, val, config, tmp_path / "m", base="b", backend="gloo",
              snapshot_hash=content_hash, progress=False)
    job = json.loads((tmp_path / "job" / JOB_FILE).read_text())
    assert job["snapshot_uri"] == train.reader.uri and not (tmp_path / "job" / TRAIN_FILE).exists()

    out, log = tmp_path / "runs" / "model", tmp_path / "ranks"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("TRAJET_TEST_RANK_LOG", str(log))
    result = run_training(train, val, config, out, Launch(nproc=2), snapshot_hash=content_hash, progress=False)
    assert result.steps == STEPS and _leftovers(out.parent, keep="model") == []  # no job, cache or checkpoints
    info = json.loads((out / "trajet_training.json").read_text())
    assert (info["processes"], info["n_train"], info["n_validation"]) == (2, len(train), len(val))
    assert info["snapshot_hash"] == content_hash
    rows = {r: [i for line in (log / f"rows-rank{r}.jsonl").read_text().splitlines() for i in json.loads(line)]
            for r in (0, 1)}
    first = {r: rows[r][: 3 * BATCH] for r in (0, 1)}  # the first 3 steps of each rank: disjoint shards
    assert not set(first[0]) & set(first[1]) and max(rows[0] + rows[1]) < len(train)


@pytest.mark.slow
def test_a_rank_that_dies_fails_the_run_in_one_line_and_leaves_the_model_in_place(tmp_path):
    out = tmp_path / "runs" / "model"
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"the previous model")
    res = _train(tmp_path, out, "--nproc", "2", TRAJET_TEST_FAIL_RANK="1:2")
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert "Traceback" not in res.stderr and lines[-1].startswith("error: distributed training failed: rank 1 ")
    assert "exited with code 1 (RuntimeError: rank 1 failed on purpose after step 2" in lines[-1]
    assert "no model written" in lines[-1]
    # the model already there is untouched, no half-written one beside it; the launcher's log is kept, named
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == b"the previous model"
    assert _leftovers(out.parent, keep="model") == [".model.ddp"]
    launcher_log = out.parent / ".model.ddp" / "torchrun.log"
    assert f"(log: {launcher_log})" in lines[-1]
    assert "failed on purpose" in launcher_log.read_text()  # the rank's traceback, for whoever debugs it


@pytest.mark.slow
def test_two_hosts_meet_at_the_endpoint_and_node_0_alone_writes_the_model(tmp_path):
    """Two hosts played by two commands on this machine (one rank each, a static rendezvous on a local port):
    node 0 writes the model, node 1 reports the same scores and leaves nothing behind (it kept its own checkpoints
    to reload the best one, then removed them)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    train, val = _data(tmp_path / "data")
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               "COLUMNS": "300"}
    hosts = [subprocess.Popen(
        [sys.executable, "-m", "trajet", "train", "--train", str(train), "--validation", str(val), "--quiet", *TINY,
         "-o", str(tmp_path / f"host{rank}" / "model"), "--nproc", "1", "--nnodes", "2", "--node-rank", str(rank),
         "--rdzv-endpoint", f"127.0.0.1:{port}"],
        cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    (_, err0), (_, err1) = (host.communicate(timeout=300) for host in hosts)
    assert [host.returncode for host in hosts] == [0, 0], err0[-2000:] + err1[-2000:]
    info = json.loads((tmp_path / "host0" / "model" / "trajet_training.json").read_text())
    assert info["processes"] == 2 and info["steps"] == STEPS
    assert f"best macro F1 {info['metrics']['f1_macro']:.4f}" in err1 and "node 0 wrote the model" in err1
    assert list((tmp_path / "host1").iterdir()) == []
    assert _leftovers(tmp_path / "host0", keep="model") == []


@pytest.mark.slow
def test_a_dead_rank_fails_the_night_and_the_champion_stays(prefect_api, tmp_path, monkeypatch):
    """Through nightly-retrain (nproc=2, training in the flow's own worker): the failure is the flow's, with the
    one line; the gate never runs, the champion pointer does not move, the failed night is recorded."""
    import torch
    from flow_data import TINY_TRAINING, phrase_rows
    from flow_data import write_jsonl as write_rows
    from safetensors.torch import save_file

    from flows.retrain import nightly_retrain
    from trajet import registry, runs, store
    from trajet.ingest import ingest_source

    url = f"sqlite:///{tmp_path / 'night.db'}"
    store.upgrade(url)
    monkeypatch.setenv("TRAJET_DATABASE_URL", url)
    monkeypatch.delenv("TRAJET_TRAIN_DEPLOYMENT", raising=False)
    rows = phrase_rows(80, seed=1, split="train") + phrase_rows(20, seed=2, split="test")
    ingest_source(write_rows(tmp_path / "batch.jsonl", rows))
    champion_dir = tmp_path / "champion"
    champion_dir.mkdir()
    (champion_dir / "config.json").write_text("{}")
    save_file({"w": torch.zeros(2)}, str(champion_dir / "model.safetensors"))
    reg = registry.open_registry()
    reg.push("v1", champion_dir, {})
    before = reg.promote("v1")

    monkeypatch.setenv("TRAJET_TEST_FAIL_RANK", "1:1")
    state = nightly_retrain(force=True, preset="tiny", config=TINY_TRAINING, nproc=2, return_state=True)
    assert state.is_failed()
    assert "distributed training failed: rank 1 exited with code 1" in state.message
    assert reg.champion() == before and [v["version"] for v in reg.list_versions()] == ["v1"]
    [night] = runs.training_runs(store.get_engine(url))
    assert night.status == "failed" and "rank 1 exited with code 1" in night.message
