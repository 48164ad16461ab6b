"""Predictions of a model on fixed sentence files, written to JSON, to check that a speed change keeps outputs.

    python bench/predict_snapshot.py --model M --backend torch,onnx --out before.json
    ... change the code ...
    python bench/predict_snapshot.py --model M --backend torch,onnx --out after.json --compare before.json

Per backend and file: `predict` on the whole file in one call (batched, batch size 64 as bench/predict.py) and
`predict([text])` on each sentence (the latency path), entities with their scores and the trip fields. With
`--compare`, every sentence whose output differs is listed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FILES = (Path("data/phrases/test.jsonl"), Path("data/challenge.jsonl"))


def snapshot(model: Path, backends: list[str], files: list[Path], n_single: int) -> dict:
    from trajet.phrases import iter_lines
    from trajet.predict import load_predictor

    out: dict = {}
    for backend in backends:
        predictor = load_predictor(model, backend=backend, batch_size=64, num_threads=1)
        for path in files:
            texts = [json.loads(line)["text"] for _, line in iter_lines(path)]
            out[f"{backend} {path} batched"] = predictor.predict(texts)
            out[f"{backend} {path} single"] = [predictor.predict([t])[0] for t in texts[:n_single]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--backend", default="torch,onnx")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="An earlier snapshot: list every sentence whose output differs.")
    parser.add_argument("--n-single", type=int, default=300, help="Sentences per file also predicted one at a time.")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    snap = snapshot(args.model, [b.strip() for b in args.backend.split(",") if b.strip()], list(FILES), args.n_single)
    args.out.write_text(json.dumps(snap, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    if args.compare is None:
        return
    before = json.loads(args.compare.read_text(encoding="utf-8"))
    bad = 0
    for key, rows in snap.items():
        old = before.get(key)
        if old is None:
            print(f"{key}: not in {args.compare}")
            bad += 1
            continue
        spans = lambda r: [(e["start"], e["end"], e["label"]) for e in r.get("entities", [])]  # noqa: E731
        diff = [i for i, (a, b) in enumerate(zip(old, rows, strict=True)) if a != b]
        span_diff = [i for i in diff if spans(old[i]) != spans(rows[i]) or "error" in old[i] or "error" in rows[i]]
        print(f"{key}: {len(rows)} sentences, {len(rows) - len(diff)} identical outputs (spans, scores, trip), "
              f"{len(rows) - len(span_diff)} identical spans")
        for i in diff[:5]:
            print(f"  {i}: {old[i]}\n   -> {rows[i]}")
        bad += len(diff)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
