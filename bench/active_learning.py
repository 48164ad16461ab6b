"""What `trajet suggest` is worth: F1 after annotating its top N requests against N chosen at random.

    python bench/active_learning.py --out /tmp/al            # base on batches 01-04, pool 05-09, N=200
    python bench/active_learning.py --out /tmp/al --seeds 42,7

The base model is trained on the generated train split plus the train part of the first hand-written batches;
the pool is the train part of the later batches, read as unlabeled text. Each arm adds N pool requests with
their real annotations (what an annotator hands back once the suggestion is corrected) to the same base data
and trains the same preset with the same seed and number of epochs from scratch, so the only difference is which N
requests were annotated. Both arms are scored on the test part of every hand-written batch (never in the pool)
and on the challenge set. The base model is kept (`--out/base`) so the audit bench can use a model that never
saw the pool.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HANDWRITTEN = Path("data/handwritten")


def _split_batches(names: list[str]):
    """(train part, test part) of the named batches, as the store files them by the hash of the text."""
    from trajet.phrases import normalise_text, read_phrases
    from trajet.store import hash_split, norm_hash

    train, test = [], []
    for name in names:
        for p in read_phrases(HANDWRITTEN / f"batch_{name}.jsonl"):
            (test if hash_split(norm_hash(normalise_text(p.text))) == "test" else train).append(p)
    return train, test


def _train(phrases, out_dir: Path, seed: int, preset: str):
    from trajet.phrases import Phrase
    from trajet.train import train_model
    from trajet.train_config import config_for
    from trajet.train_data import split_validation

    rows = [Phrase(p.text, p.entities, {**p.meta, "split": "train"}) for p in phrases]
    train, val = split_validation(rows)
    t0 = time.perf_counter()
    result = train_model(train, val, config_for(preset, {"seed": seed}), out_dir, progress=False)
    return result, time.perf_counter() - t0


def _score(model_dir: Path, sets: dict) -> dict:
    from trajet.evaluate import evaluate_model
    from trajet.predict import Predictor

    predictor = Predictor.load(model_dir)
    out = {}
    for name, phrases in sets.items():
        rep = evaluate_model(predictor, phrases)
        out[name] = {"micro_f1": round(rep["micro"]["f1"], 4), "exact": round(rep["exact_match"], 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="Working folder (models, pool, chosen lists).")
    parser.add_argument("--base-batches", default="01,02,03,04")
    parser.add_argument("--pool-batches", default="05,06,07,08,09")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--seeds", default="42", help="Training seeds; the random arm draws with the same seed.")
    parser.add_argument("--preset", default="mini")
    args = parser.parse_args()

    import torch

    from trajet.evaluate import load_challenge
    from trajet.phrases import read_phrases, write_jsonl
    from trajet.predict import Predictor
    from trajet.suggest import suggest

    torch.set_num_threads(2)
    generated = read_phrases(Path("data/phrases/train.jsonl"))
    base_hw, base_test = _split_batches(args.base_batches.split(","))
    pool, pool_test = _split_batches(args.pool_batches.split(","))
    sets = {"handwritten_test": base_test + pool_test, "challenge": load_challenge()}
    by_text = {p.text: p for p in pool}
    args.out.mkdir(parents=True, exist_ok=True)
    pool_file = args.out / "pool.jsonl"
    pool_file.write_text("".join(json.dumps({"text": p.text}, ensure_ascii=False) + "\n" for p in pool),
                         encoding="utf-8")
    print(f"base: {len(generated)} generated + {len(base_hw)} hand-written; pool {len(pool)}; "
          f"scored on {len(sets['handwritten_test'])} hand-written test requests", flush=True)

    for seed in (int(s) for s in args.seeds.split(",")):
        base_dir = args.out / f"base-{seed}"
        if not (base_dir / "model.safetensors").is_file():
            _, wall = _train(generated + base_hw, base_dir, seed, args.preset)
            print(f"seed {seed}: base trained in {wall:.0f} s", flush=True)
        chosen = suggest(Predictor.load(base_dir), pool_file, n=args.n, model=f"base-{seed}").rows
        suggested = [by_text[r["text"]] for r in chosen]
        rand = random.Random(seed).sample(pool, args.n)
        write_jsonl(args.out / f"suggested-{seed}.jsonl", suggested)
        row = {"seed": seed, "n": args.n, "base": _score(base_dir, sets)}
        for arm, extra in (("suggested", suggested), ("random", rand)):
            arm_dir = args.out / f"{arm}-{seed}"
            _, wall = _train(generated + base_hw + extra, arm_dir, seed, args.preset)
            row[arm] = {**_score(arm_dir, sets), "train_s": round(wall)}
            row[arm]["entities_added"] = sum(len(p.entities) for p in extra)
            row[arm]["no_trip_added"] = sum(1 for p in extra if not p.entities)
            print(json.dumps({"seed": seed, arm: row[arm]}, ensure_ascii=False), flush=True)
        print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
