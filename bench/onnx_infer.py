"""Inference bench: torch fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8 (dynamic), on one CPU thread.

Two models:

(a) a trained Trajet model directory (`--model DIR`): batched sentences/s (batch 32), p50 single-sentence
    latency, and the strict micro/macro F1 on the challenge set per backend, with its delta to torch
    (the goal: int8 within 0.002 of torch);
(b) a randomly initialised camembert-base-sized token classifier (12 layers, 768 hidden, 12 heads, 3072
    intermediate; vocabulary = the tokenizer of `--model`, or `--base-vocab N`), built from a config (no hub)
    with the tokenizer of `--model`: the same speed numbers, and the share of word labels identical to torch
    (its F1 means nothing: nothing was trained).

Ratios are to the torch numbers measured in the same run. It prints numbers and never asserts:

    python bench/onnx_infer.py --model models/latest --json onnx_infer.json
    python bench/onnx_infer.py --model models/latest --skip-base          # (a) only, ~30 s
    python bench/onnx_infer.py --model models/latest --base-n-batched 64 --base-n-single 20

The base-sized model and its ONNX export are cached under --work-dir (first run: ~2-4 minutes of export on a
small CPU; later runs reuse them). Run it with the machine as quiet as you can.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BACKENDS = ("torch fp32", "onnx fp32", "onnx int8")


def load_backends(model_dir: Path, cache_root: Path, batch_size: int) -> dict[str, Any]:
    from trajet.onnx_runtime import OnnxPredictor, ensure_onnx
    from trajet.predict import Predictor

    t0 = time.perf_counter()
    files = ensure_onnx(model_dir, cache_root=cache_root)
    print(f"  ONNX files {'exported' if files.exported else 'reused'} in {time.perf_counter() - t0:.1f} s: "
          f"{files.folder}", flush=True)
    return {
        "torch fp32": Predictor.load(model_dir, batch_size=batch_size, num_threads=1),
        "onnx fp32": OnnxPredictor.load(model_dir, batch_size=batch_size, num_threads=1, precision="fp32",
                                        cache_root=cache_root),
        "onnx int8": OnnxPredictor.load(model_dir, batch_size=batch_size, num_threads=1, precision="int8",
                                        cache_root=cache_root),
    }


def speed(predict: Callable[[list[str]], Any], texts: Sequence[str], n_single: int, repeats: int) -> dict[str, float]:
    """Batched sentences/s (best of `repeats` passes over `texts`) and single-sentence latency percentiles."""
    from trajet.predict import percentile

    predict(list(texts[:32]))  # warm-up: first-call allocations, ORT arena
    rates = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        predict(list(texts))
        rates.append(len(texts) / (time.perf_counter() - t0))
    lat = []
    for text in texts[:n_single]:
        t0 = time.perf_counter()
        predict([text])
        lat.append((time.perf_counter() - t0) * 1000)
    return {"sentences_per_s": max(rates), "sentences_per_s_median": statistics.median(rates),
            "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90), "n_batched": len(texts),
            "n_single": len(lat)}


def word_labels(predictor: Any, texts: Sequence[str]) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in texts]
    for item in predictor._run(list(texts)):
        if len(item) == 5:  # index, words, tags, tag probabilities, log-probability rows
            out[item[0]] = list(item[2])
    return out


def build_base_sized(tokenizer_dir: Path, work_dir: Path, vocab: int | None) -> Path:
    """camembert-base dimensions, random weights (seed 0), the tokenizer of `tokenizer_dir`; built once."""
    import hashlib

    import torch
    from transformers import AutoTokenizer, CamembertConfig, CamembertForTokenClassification

    from trajet.labels import ID2LABEL, LABEL2ID, LABELS

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    size = vocab or len(tokenizer)
    tok_key = hashlib.sha256((tokenizer_dir / "tokenizer.json").read_bytes()).hexdigest()[:8]
    out = work_dir / f"camembert-base-random-v{size}-{tok_key}"
    if (out / "model.safetensors").is_file():
        return out
    if size < len(tokenizer):
        raise SystemExit(f"--base-vocab {size} is smaller than the tokenizer's {len(tokenizer)} ids")
    torch.manual_seed(0)
    config = CamembertConfig(
        vocab_size=size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        num_labels=len(LABELS), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID),
    )
    model = CamembertForTokenClassification(config).eval()
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / "trajet_training.json").write_text(json.dumps({"config": {"max_length": 128}}) + "\n")
    tmp.rename(out)
    return out


def run_model(name: str, model_dir: Path, challenge: list, args: argparse.Namespace, *, trained: bool,
              n_batched: int, n_single: int) -> dict[str, Any]:
    from trajet.evaluate import evaluate_predictions
    from trajet.phrases import tokenize

    print(f"[{name}] loading {model_dir}", flush=True)
    predictors = load_backends(model_dir, args.work_dir / "onnx-cache", args.batch_size)
    texts = [p.text for p in challenge]
    pool = (texts * (n_batched // len(texts) + 1))[:n_batched]
    rows: dict[str, dict[str, Any]] = {}
    reference_labels = None
    for backend in BACKENDS:
        predictor = predictors[backend]
        t0 = time.perf_counter()
        row: dict[str, Any] = speed(predictor.predict, pool, n_single, args.repeats)
        if trained:
            report = evaluate_predictions(challenge, predictor.predict_entities(texts))
            row.update(micro_f1=report["micro"]["f1"], macro_f1=report["macro"]["f1"],
                       exact_match=report["exact_match"])
        else:
            labels = word_labels(predictor, texts)
            reference_labels = reference_labels or labels
            same = sum(a == b for x, y in zip(reference_labels, labels, strict=True) for a, b in zip(x, y, strict=True))
            row["same_word_labels"] = same / max(1, sum(len(x) for x in labels))
        rows[backend] = row
        print(f"  {backend}: {row['sentences_per_s']:.1f} sentences/s, p50 {row['p50_ms']:.2f} ms "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    base = rows["torch fp32"]
    for row in rows.values():
        row["speedup_batched"] = row["sentences_per_s"] / base["sentences_per_s"]
        row["speedup_p50"] = base["p50_ms"] / row["p50_ms"]
        if trained:
            row["delta_micro_f1"] = row["micro_f1"] - base["micro_f1"]
    meta = predictors["onnx int8"].files.meta
    tokenizer = predictors["torch fp32"].tokenizer
    lengths = [len(tokenizer([t.text for t in tokenize(x)], is_split_into_words=True)["input_ids"]) for x in texts]
    return {"model": str(model_dir), "backends": rows, "onnx_bytes": meta.get("bytes"),
            "export_seconds": meta.get("total_seconds"), "vocab": len(tokenizer),
            "mean_subtokens": sum(lengths) / len(lengths)}


def markdown(title: str, result: dict[str, Any], trained: bool) -> str:
    cols = ["backend", "sentences/s (batch 32)", "x torch", "p50 ms (1 sentence)", "x torch"]
    cols += ["challenge micro F1", "delta vs torch", "macro F1"] if trained else ["word labels = torch"]
    lines = [f"**{title}**", "", "| " + " | ".join(cols) + " |", "| --- " + "| ---: " * (len(cols) - 1) + "|"]
    for backend, r in result["backends"].items():
        cells = [backend, f"{r['sentences_per_s']:.0f}", f"{r['speedup_batched']:.2f}", f"{r['p50_ms']:.2f}",
                 f"{r['speedup_p50']:.2f}"]
        if trained:
            cells += [f"{r['micro_f1']:.4f}", f"{r['delta_micro_f1']:+.4f}", f"{r['macro_f1']:.4f}"]
        else:
            cells += [f"{r['same_word_labels']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="Trained Trajet model directory.")
    parser.add_argument("--challenge", type=Path, default=None, help="Default: data/challenge.jsonl.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-batched", type=int, default=298, help="(a) sentences per throughput pass.")
    parser.add_argument("--n-single", type=int, default=298, help="(a) single-sentence calls for the latency.")
    parser.add_argument("--repeats", type=int, default=3, help="Throughput passes (best is reported).")
    parser.add_argument("--skip-base", action="store_true", help="Only (a), the trained model.")
    parser.add_argument("--base-vocab", type=int, default=None,
                        help="(b) vocabulary size (default: the tokenizer's; e.g. 32000 for camembert-base's).")
    parser.add_argument("--base-tokenizer", type=Path, default=None,
                        help="(b) directory whose tokenizer to use (default: --model's); e.g. a mini base built "
                        "by `trajet base build-mini`, when --model is a tiny model with an 800-piece vocabulary.")
    parser.add_argument("--base-n-batched", type=int, default=64, help="(b) sentences per throughput pass.")
    parser.add_argument("--base-n-single", type=int, default=30, help="(b) single-sentence calls.")
    parser.add_argument("--base-repeats", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=Path(".trajet/bench/onnx_infer"),
                        help="Base-sized model and ONNX exports are cached here.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results as JSON.")
    args = parser.parse_args()

    import torch

    from trajet.evaluate import load_challenge

    torch.set_num_threads(1)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    challenge = load_challenge(args.challenge)
    started = time.perf_counter()
    results: dict[str, Any] = {"threads": 1, "batch_size": args.batch_size, "challenge_sentences": len(challenge),
                               "torch": torch.__version__}
    import onnxruntime

    results["onnxruntime"] = onnxruntime.__version__
    results["trained"] = run_model("a: trained model", args.model, challenge, args, trained=True,
                                   n_batched=args.n_batched, n_single=args.n_single)
    trained = results["trained"]
    tables = [markdown(f"(a) {args.model} (vocab {trained['vocab']}, {trained['mean_subtokens']:.1f} sub-tokens per "
                       f"sentence) on 1 CPU thread, challenge set ({len(challenge)} sentences)",
                       results["trained"], trained=True)]
    if not args.skip_base:
        base_dir = build_base_sized(args.base_tokenizer or args.model, args.work_dir, args.base_vocab)
        saved_repeats, args.repeats = args.repeats, args.base_repeats
        results["base_sized"] = run_model("b: camembert-base-sized, random init", base_dir, challenge, args,
                                          trained=False, n_batched=args.base_n_batched,
                                          n_single=args.base_n_single)
        args.repeats = saved_repeats
        tables.append(markdown(
            f"(b) camembert-base-sized (12x768, random init, vocab {results['base_sized']['vocab']}, "
            f"{results['base_sized']['mean_subtokens']:.1f} sub-tokens per sentence) on 1 CPU thread, "
            f"{args.base_n_batched} challenge sentences batched, {args.base_n_single} single",
            results["base_sized"], trained=False))
    results["seconds"] = round(time.perf_counter() - started, 1)
    print()
    print("\n\n".join(tables))
    print(f"\n{results['seconds']:.0f} s in all (torch {results['torch']}, onnxruntime {results['onnxruntime']})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"JSON written to {args.json}")


if __name__ == "__main__":
    main()
