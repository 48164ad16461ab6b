"""CPU training bench: wall time, CPU time, peak RSS, the validation F1 curve, then test and challenge scores.

    python bench/train_cpu.py --preset mini --train data/phrases/train.jsonl --test data/phrases/test.jsonl
    python bench/train_cpu.py --preset mini --set base_spec='{"hidden_size": 192}' --label mini-192

Run it with the machine as quiet as possible (2 cores): the wall time is the budgeted number (goal: the
default preset on the 8,000-phrase train split in under 5 minutes, peak RSS under 4 GiB). The challenge set
and the blind set are only scored, never used for selection.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the data-loader workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _with_handwritten(train: Path) -> tuple[Path, list]:
    """The generated train file plus the hand-written rows ingestion would file under train (hash of the text),
    and the rows it would file under test, as the store would split them."""
    from trajet.phrases import Phrase, normalise_text, read_phrases, write_jsonl
    from trajet.store import hash_split, norm_hash

    hw_train: list[Phrase] = []
    hw_test: list[Phrase] = []
    for path in sorted(Path("data/handwritten").glob("*.jsonl")):
        for p in read_phrases(path):
            split = hash_split(norm_hash(normalise_text(p.text)))
            (hw_test if split == "test" else hw_train).append(p)
    out = Path(tempfile.mkdtemp(prefix="trajet-mix-")) / "train.jsonl"
    write_jsonl(out, list(read_phrases(train)) + [Phrase(p.text, p.entities, {**p.meta, "split": "train"}) for p in hw_train])
    print(f"training on {train} + {len(hw_train)} hand-written phrases; scoring {len(hw_test)} hand-written test phrases")
    return out, hw_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--train", type=Path, default=Path("data/phrases/train.jsonl"))
    parser.add_argument("--validation", type=Path, default=None)
    parser.add_argument("--test", type=Path, default=Path("data/phrases/test.jsonl"))
    parser.add_argument("--challenge", type=Path, default=Path("data/challenge.jsonl"))
    parser.add_argument("--blind", type=Path, default=Path("data/challenge_blind.jsonl"),
                        help="Blind hand-written set: scored only, never read to change anything (data/README.md).")
    parser.add_argument("--blind2", type=Path, default=None,
                        help="The frozen blind set (data/blind/blind.jsonl): scored only, and only once a candidate was"
                             " chosen, so that its numbers are never in view while choosing.")
    parser.add_argument("--handwritten", action="store_true",
                        help="Add the hand-written batches (data/handwritten/*.jsonl) that ingestion files under train to"
                             " the training phrases, and score the ones it files under test.")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--label", default=None, help="Name of this run in the printed row.")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the trained model here.")
    parser.add_argument("--json", type=Path, default=None, help="Append the result row as JSON to this file.")
    args = parser.parse_args()

    import torch

    from trajet.evaluate import evaluate_model, load_challenge
    from trajet.phrases import read_phrases
    from trajet.predict import Predictor
    from trajet.train import train_model
    from trajet.train_config import config_for, parse_set_options
    from trajet.train_data import load_training_data

    torch.set_num_threads(2)
    overrides = {k: json.loads(v) if v.strip().startswith("{") else v for k, v in parse_set_options(args.sets).items()}
    cfg = config_for(args.preset, overrides)
    train_path, hw_test = args.train, []
    if args.handwritten:
        train_path, hw_test = _with_handwritten(args.train)
    train, val, content_hash = load_training_data(train_path, args.validation)
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="trajet-bench-")) / "model"
    load = os.getloadavg()[0]
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    result = train_model(train, val, cfg, out_dir, snapshot_hash=content_hash, progress=True)
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    # Data-loader workers (`dataloader_workers`) are children: their CPU counts, and their peak RSS is added to
    # this process's as an upper bound of what the training held at once.
    peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024

    predictor = Predictor.load(out_dir)
    row: dict = {
        "label": args.label or args.preset,
        "base": cfg.base_model,
        "n_train": len(train),
        "steps": result.steps,
        "wall_s": round(wall, 1),
        "cpu_min": round(cpu / 60, 2),
        "peak_rss_mib": round(peak_mib),
        "load_avg_at_start": round(load, 2),
        "val_f1_macro": round(result.best_metrics.get("f1_macro", 0), 4),
        "curve": [(h["step"], round(h["f1_macro"] or 0, 4)) for h in result.history],
        "model_mb": round(sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file()) / 1e6, 1),
    }
    if args.test.is_file():
        rep = evaluate_model(predictor, read_phrases(args.test))
        row["test_micro_f1"] = round(rep["micro"]["f1"], 4)
        row["test_exact"] = round(rep["exact_match"], 4)
    if args.challenge.is_file():
        rep = evaluate_model(predictor, load_challenge(args.challenge))
        row["challenge_micro_f1"] = round(rep["micro"]["f1"], 4)
        row["challenge_exact"] = round(rep["exact_match"], 4)
        row["challenge_no_trip_clean"] = rep["no_trip"]["clean"]
        row["challenge_groups"] = {g: round(v["micro_f1"], 3) for g, v in rep["groups"].items()}
    if args.blind.is_file():
        rep = evaluate_model(predictor, load_challenge(args.blind))
        row["blind_micro_f1"] = round(rep["micro"]["f1"], 4)
        row["blind_exact"] = round(rep["exact_match"], 4)
    if hw_test:
        rep = evaluate_model(predictor, hw_test)
        row["handwritten_test_n"] = len(hw_test)
        row["handwritten_test_micro_f1"] = round(rep["micro"]["f1"], 4)
        row["handwritten_test_exact"] = round(rep["exact_match"], 4)
    if args.blind2 is not None:
        rep = evaluate_model(predictor, read_phrases(args.blind2))
        row["blind2_micro_f1"] = round(rep["micro"]["f1"], 4)
        row["blind2_exact"] = round(rep["exact_match"], 4)
        row["blind2_no_trip_clean"] = rep["no_trip"]["clean"]
    quality = row.get("test_micro_f1", row["val_f1_macro"])
    row["f1_per_cpu_min"] = round(quality / max(row["cpu_min"], 1e-9), 4)
    print(json.dumps(row, ensure_ascii=False))
    if args.json:
        with args.json.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
