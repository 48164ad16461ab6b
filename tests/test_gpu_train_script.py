"""bench/gpu_train.py must run end to end on a bare GPU machine (torch, transformers, accelerate, tokenizers,
safetensors, typer, rich and nothing else), so it is run here on CPU in its --tiny size, in a process where the
packages that machine lacks cannot be imported. Its span scores are trajet.metrics' seqeval-free ones
(tests/test_metrics.py checks them against seqeval)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys

import pytest

from trajet.config import REPO_ROOT

SCRIPT = REPO_ROOT / "bench" / "gpu_train.py"
GPU_MACHINE = ("torch", "transformers", "accelerate", "tokenizers", "safetensors", "typer", "rich")
ABSENT = ("seqeval", "datasets", "prefect", "pandas", "sqlalchemy", "great_expectations", "boto3", "fastapi",
          "onnxruntime", "sklearn")
# The pure-Python parts of training the script shares with `trajet train`; trajet.lexicon (stdlib + trajet.phrases)
# comes with trajet.encoding (gazetteer features), trajet.places with the word splitter (it reads the gazetteer);
# trajet.model_dir and trajet.manifest (stdlib) are where training writes its info and model card.
TRAJET_ALLOWED = {"trajet", "trajet.labels", "trajet.tags", "trajet.words", "trajet.phrases", "trajet.minibase",
                  "trajet.config", "trajet.errors", "trajet.train_data", "trajet.encoding", "trajet.metrics",
                  "trajet.lexicon", "trajet.places", "trajet.model_dir", "trajet.manifest"}

# Runs the script as __main__ with the absent packages made unimportable (and invisible to find_spec, as when
# they are not installed), then writes every module it loaded.
WRAPPER = """
import json, runpy, sys
absent, script, modules_file = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
for name in absent:
    sys.modules[name] = None
sys.argv = [script, *sys.argv[4:]]
code = 0
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as exc:
    code = exc.code
finally:
    loaded = sorted(k for k, v in sys.modules.items() if v is not None)
    open(modules_file, "w").write(json.dumps(loaded))
sys.exit(code)
"""


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_train_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpu_train():
    return _load_script()


def _allowed_distributions() -> set[str]:
    """The GPU machine's packages and everything they require (extras left out)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(GPU_MACHINE)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _not_on_the_gpu_machine() -> list[str]:
    """Every top-level module of this venv that belongs to no package of the GPU machine's list (nor to one of
    their requirements): optional imports of torch/transformers (scipy, dill, ...) included, since that machine
    lacks them too."""
    allowed = _allowed_distributions()
    absent = set(ABSENT)
    for top, dists in importlib.metadata.packages_distributions().items():
        if top in {"trajet", "tests"} or top in sys.stdlib_module_names:
            continue
        if not {d.lower().replace("_", "-") for d in dists} & allowed:
            absent.add(top)
    return sorted(absent)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_train")
    modules_file = out / "modules.json"
    absent = _not_on_the_gpu_machine()
    cmd = [sys.executable, "-c", WRAPPER, json.dumps(absent), str(SCRIPT), str(modules_file),
           "--tiny", "--compare", "--max-steps", "30", "--device", "cpu", "--out", str(out / "result.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                               "HOME": str(out)})
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").is_file() else None
    modules = json.loads(modules_file.read_text()) if modules_file.is_file() else []
    return proc, result, modules, absent


def test_tiny_run_end_to_end(tiny_run):
    proc, result, _, _ = tiny_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result is not None
    full = result["full_run"]
    assert full["steps"] > 0 and full["samples"] > 0 and full["samples_per_s"] > 0
    assert full["eval_rows"], "no evaluation rows"
    for row in full["eval_rows"]:
        assert {"step", "elapsed_s", "val_macro_f1", "val_micro_f1"} <= set(row)
        assert 0.0 <= row["val_macro_f1"] <= 1.0
    steps = [row["step"] for row in full["eval_rows"]]
    assert steps == sorted(steps) and steps[0] == 10
    es = full["early_stopping"]
    assert {"patience", "stopped_by", "evals_without_improvement", "best_step", "best_val_macro_f1"} <= set(es)
    assert es["patience"] == 3 and es["stopped_by"] in {"early_stopping", "epochs", "max_steps", "time_budget"}
    assert es["best_step"] in steps
    for key in ("micro_f1", "macro_f1", "exact_match"):
        assert 0.0 <= full["test"][key] <= 1.0
    assert full["test"]["n_sentences"] == 300
    assert set(full["test"]["per_entity_f1"]) == {"DEPART", "ARRIVEE", "VIA"}
    assert full["time_to_stop_s"] > 0 and "peak_gpu_mem_gib" in full
    # the reference-like baseline ran first, on the same data, and the ratio is reported
    base = result["baseline"]
    assert base["config"]["batch_size"] == 16 and base["config"]["bf16"] is False
    assert base["probe"]["steps"] > 0 and result["speedup"]["samples_per_s_vs_baseline"] > 0
    assert result["data"]["train"] + result["data"]["validation"] == 1200
    assert "gpu_train summary" in proc.stdout


def test_script_imports_only_what_the_gpu_machine_has(tiny_run):
    """The run above succeeded with every package outside the GPU machine's list unimportable; check that the
    list covered what matters and that only the pure-Python parts of Trajet were loaded."""
    proc, _, modules, absent = tiny_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert modules, "the wrapper did not record the loaded modules"
    assert set(ABSENT) <= set(absent)
    for name in absent:
        assert not any(m == name or m.startswith(name + ".") for m in modules), name
    assert {m for m in modules if m.split(".")[0] == "trajet"} <= TRAJET_ALLOWED
    assert {"torch", "transformers", "tokenizers", "rich"} <= {m.split(".")[0] for m in modules}


def test_validation_split_is_the_store_split(gpu_train):
    from trajet.phrases import normalise_text, read_phrases
    from trajet.store import hash_is_validation, norm_hash
    from trajet.train_data import is_validation, split_validation

    phrases = read_phrases(REPO_ROOT / "data" / "phrases" / "train.jsonl")
    assert all(gpu_train.is_validation(p.text) == is_validation(p.text) for p in phrases)
    assert all(gpu_train.is_validation(p.text) == hash_is_validation(norm_hash(normalise_text(p.text))) for p in phrases[:500])
    ours, theirs = gpu_train.split_validation(phrases), split_validation(phrases)
    assert [len(x) for x in ours] == [len(x) for x in theirs]
    assert 900 < len(ours[1]) < 1100


def test_batches_cover_every_example_once(gpu_train):
    lengths = [5, 40, 7, 12, 33, 9, 18, 25, 3, 11] * 7
    for group in (False, True):
        sampler = gpu_train.BatchSampler(lengths, 8, shuffle=True, group=group, seed=1)
        epoch1, epoch2 = list(sampler), list(sampler)
        assert sorted(i for b in epoch1 for i in b) == list(range(len(lengths)))
        assert epoch1 != epoch2, "each epoch is shuffled anew"
        assert len(epoch1) == len(sampler) == 9
    grouped = list(gpu_train.BatchSampler(lengths, 8, shuffle=True, group=True, seed=1))
    random_ = list(gpu_train.BatchSampler(lengths, 8, shuffle=True, group=False, seed=1))

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(grouped) < padding(random_) / 2


def test_cli_defaults(gpu_train, monkeypatch, tmp_path):
    monkeypatch.setenv("OUT", str(tmp_path))
    args = gpu_train.parse_args([])
    assert (args.hidden, args.layers, args.heads, args.intermediate) == (768, 12, 12, 3072)
    assert args.batch_size == 64 and args.lr is None and args.patience == 3 and args.warmup == 0.1
    assert args.out == tmp_path / "gpu_train.json"
    tiny = gpu_train.parse_args(["--tiny"])
    assert (tiny.hidden, tiny.layers) == (64, 2) and tiny.max_steps > 0
