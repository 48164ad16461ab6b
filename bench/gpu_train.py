"""GPU training speed bench: how fast does a camembert-base-sized token classifier reach early stopping on the
8,000-phrase train split, and what does each speed feature buy?

Self-contained on purpose: it runs on a bare GPU machine whose Python has only torch, transformers,
accelerate, tokenizers, safetensors, typer and rich. From Trajet it takes what `trajet train` uses, in the
modules that import nothing heavy: the validation split (`trajet.train_data`), the word-to-sub-token alignment
(`trajet.encoding`), the span scores and the reading of predicted tags (`trajet.metrics`, its seqeval-free
entity finder) and `trajet.minibase.train_tokenizer` (tokenizers + transformers); no seqeval, datasets,
prefect, pandas or SQLAlchemy (tests/test_gpu_train_script.py checks it).

What it does, like `trajet train` does it:
- model: CamembertForTokenClassification, camembert-base sizes (12 layers x 768, 12 heads, 3072), randomly
  initialised (no hub here), vocabulary from a BPE tokenizer trained on the train texts (`--vocab`, 32k asked;
  the corpus supports fewer, reported);
- data: data/phrases/train.jsonl, 1/8 held out for validation by the hash of the normalised text (the same bits
  as `trajet.store` / `trajet train`); the label of a word sits on its first sub-token (`trajet.encoding`);
- optimisation: AdamW, weight decay 0.01 (not on biases and LayerNorm), warmup 10 % then linear decay;
- evaluation every `--eval-every` steps (default: every 1,600 samples, as the reference's 100 steps of 16) with a
  strict entity-level span F1 (exact start, end and label; micro, and macro over DEPART/ARRIVEE/VIA); early
  stopping after 3 evaluations without a better validation macro F1; the best state is kept and scored on
  data/phrases/test.jsonl at the end.

Speed features, each switchable (`--no-X`) so its effect can be measured: bf16 autocast (`--bf16`), dynamic
padding (`--dynamic-padding`, else pad to --max-length) with length-grouped batches (`--group-by-length`),
fused AdamW (`--fused-adamw`), batch 64 with the learning rate scaled by the square-root rule from the
reference's 5e-5 at 16 (`--batch-size`, `--lr`), TF32 matmuls (`--tf32`), DataLoader workers and pinned
memory (`--workers`, `--pin-memory`), and `torch.compile` (`--compile`, off by default).

`--compare` first runs the reference-like baseline (fp32, batch 16, lr 5e-5, padding to 128 -- or to the
batch's longest with `--baseline-padding dynamic` --, random batches, unfused AdamW, no TF32, no workers) for
`--compare-warmup` + `--compare-steps` steps, then the full run, and reports the full run's speed as a ratio to
that baseline (timed after its warm-up), measured in the same process on the same GPU.

    python bench/gpu_train.py --compare --out $OUT/gpu_train.json      # what bench/gpu_run.sh runs
    python bench/gpu_train.py --no-bf16 --no-fused-adamw              # measure one feature's effect
    python bench/gpu_train.py --tiny --out /tmp/tiny.json             # CPU smoke run, ~20 s
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from trajet.encoding import IGNORED, encode_words  # noqa: E402
from trajet.labels import ID2LABEL, LABEL2ID, LABELS  # noqa: E402
from trajet.metrics import span_scores, word_tags  # noqa: E402
from trajet.phrases import Phrase, read_phrases  # noqa: E402
from trajet.train_data import is_validation, split_validation  # noqa: E402,F401

REFERENCE_BATCH, REFERENCE_LR, REFERENCE_EVAL_STEPS = 16, 5e-5, 100
PAD_LABEL = IGNORED

# ---------------------------------------------------------------------------------------------- data


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def encode(phrases: Sequence[Phrase], tokenizer: Any, max_length: int) -> list[Example]:
    """Sub-tokens of the project's words, labels aligned as `trajet train` aligns them (no gazetteer features)."""
    out = []
    for phrase in phrases:
        tokens, tags = phrase.tokens_and_tags()
        enc = encode_words([t.text for t in tokens], tags, tokenizer, max_length)
        out.append(Example(list(enc["input_ids"]), enc["labels"]))
    return out


class BatchSampler:
    """Index batches for one epoch per iteration. Grouped: shuffle, cut into mega-batches of 50 batches, sort
    each by length, then shuffle the batches (HF's LengthGroupedSampler idea): little padding, still random."""

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool, group: bool, seed: int) -> None:
        self.lengths, self.batch_size, self.shuffle, self.group = list(lengths), batch_size, shuffle, group
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.lengths)))
        if self.shuffle:
            self.rng.shuffle(order)
        if self.group:
            mega = self.batch_size * 50
            order = [i for k in range(0, len(order), mega)
                     for i in sorted(order[k : k + mega], key=lambda j: -self.lengths[j])]
        batches = [order[k : k + self.batch_size] for k in range(0, len(order), self.batch_size)]
        if self.shuffle and self.group:
            self.rng.shuffle(batches)
        return iter(batches)


class Collate:
    """Pad a batch to its longest example (rounded up to `multiple`) or to a fixed length; picklable for workers."""

    def __init__(self, examples: Sequence[Example], pad_id: int, fixed_length: int | None, multiple: int) -> None:
        self.examples, self.pad_id, self.fixed_length, self.multiple = examples, pad_id, fixed_length, multiple

    def __call__(self, indices: Sequence[int]) -> dict[str, Any]:
        import torch

        batch = [self.examples[i] for i in indices]
        width = self.fixed_length or max(len(e.input_ids) for e in batch)
        if not self.fixed_length and self.multiple > 1:
            width = math.ceil(width / self.multiple) * self.multiple
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), PAD_LABEL, dtype=torch.long)
        for row, e in enumerate(batch):
            n = len(e.input_ids)
            ids[row, :n] = torch.tensor(e.input_ids)
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(e.labels)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# --------------------------------------------------------------------------------------------- setup


@dataclass
class RunConfig:
    name: str
    batch_size: int
    lr: float
    bf16: bool
    dynamic_padding: bool
    group_by_length: bool
    fused_adamw: bool
    tf32: bool
    compile: bool
    workers: int
    pin_memory: bool
    max_steps: int | None  # None: epochs / early stopping decide
    eval_every: int | None  # None: no evaluation (speed probe)


def model_config(tokenizer: Any, args: argparse.Namespace) -> Any:
    from transformers import CamembertConfig

    return CamembertConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=args.intermediate,
        max_position_embeddings=max(514, args.max_length + 2), type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=0, eos_token_id=2,
        num_labels=len(LABELS), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID),
    )


def build_optimizer(model: Any, lr: float, weight_decay: float, fused: bool) -> Any:
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # unfused = torch's default implementation (foreach on CUDA), what HF's `adamw_torch` used before fused
    return torch.optim.AdamW(groups, lr=lr, fused=True) if fused else torch.optim.AdamW(groups, lr=lr)


def linear_schedule(optimizer: Any, warmup: int, total: int) -> Any:
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def set_tf32(enabled: bool) -> None:
    import torch

    if not torch.cuda.is_available():
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9: allow_tf32 is deprecated there
        matmul.fp32_precision = "tf32" if enabled else "ieee"
    else:  # pragma: no cover - older torch
        matmul.allow_tf32 = enabled
    if hasattr(cudnn, "fp32_precision"):
        cudnn.fp32_precision = "tf32" if enabled else "ieee"
    else:  # pragma: no cover - older torch
        cudnn.allow_tf32 = enabled


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader(examples: Sequence[Example], cfg: RunConfig, pad_id: int, max_length: int, *, train: bool,
           seed: int, device: Any) -> Any:
    from torch.utils.data import DataLoader

    lengths = [len(e.input_ids) for e in examples]
    sampler = BatchSampler(lengths, cfg.batch_size if train else 256, shuffle=train,
                           group=cfg.group_by_length if train else True, seed=seed)
    collate = Collate(examples, pad_id, None if cfg.dynamic_padding else max_length, 8 if cfg.dynamic_padding else 1)
    workers = cfg.workers if train else 0
    return DataLoader(list(range(len(examples))), batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                      pin_memory=cfg.pin_memory and device.type == "cuda", persistent_workers=workers > 0)


def predict_tags(model: Any, data: Any, device: Any, bf16: bool) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted word tags (first sub-token of each word) for every sentence of `data`."""
    import torch

    gold_all: list[tuple[int, list[str]]] = []
    pred_all: list[tuple[int, list[str]]] = []
    order = [i for batch in data.batch_sampler for i in batch]
    model.eval()
    k = 0
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for batch in data:
            ids = batch["input_ids"].to(device, non_blocking=True)
            mask = batch["attention_mask"].to(device, non_blocking=True)
            pred_ids = model(input_ids=ids, attention_mask=mask).logits.argmax(-1).cpu()
            for gold, pred in zip(*word_tags(pred_ids.tolist(), batch["labels"].tolist()), strict=True):
                gold_all.append((order[k], gold))
                pred_all.append((order[k], pred))
                k += 1
    model.train()
    gold_all.sort(key=lambda x: x[0])
    pred_all.sort(key=lambda x: x[0])
    return [g for _, g in gold_all], [p for _, p in pred_all]


def evaluate(model: Any, data: Any, device: Any, bf16: bool) -> dict[str, Any]:
    gold, pred = predict_tags(model, data, device, bf16)
    return span_scores(gold, pred)


# ----------------------------------------------------------------------------------------------- run


def train_run(cfg: RunConfig, data: dict[str, Any], args: argparse.Namespace, device: Any, console: Any,
              on_eval: Any = None) -> dict[str, Any]:
    """One training run; returns its numbers. With `cfg.eval_every` None it is a pure speed probe."""
    import torch
    from transformers import CamembertForTokenClassification

    set_tf32(cfg.tf32)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    tokenizer = data["tokenizer"]
    raw_model = CamembertForTokenClassification(model_config(tokenizer, args)).to(device)
    raw_model.train()
    model = torch.compile(raw_model, dynamic=True) if cfg.compile else raw_model
    optimizer = build_optimizer(raw_model, cfg.lr, args.weight_decay, cfg.fused_adamw)
    train_loader = loader(data["train"], cfg, tokenizer.pad_token_id, args.max_length, train=True, seed=args.seed,
                          device=device)
    val_loader = loader(data["validation"], cfg, tokenizer.pad_token_id, args.max_length, train=False, seed=0,
                        device=device)
    steps_per_epoch = len(train_loader)
    total = cfg.max_steps or math.ceil(args.epochs * steps_per_epoch)
    if cfg.max_steps is None and args.max_steps:
        total = min(total, args.max_steps)
    scheduler = linear_schedule(optimizer, round(args.warmup * total), total)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    rows: list[dict[str, Any]] = []
    best: dict[str, Any] = {"f1": -1.0, "step": 0, "state": None, "metrics": None}
    bad_evals, step, samples, tokens, padded = 0, 0, 0, 0, 0
    eval_seconds, stopped_by = 0.0, None
    loss_sum = torch.zeros((), device=device)
    loss_n = 0
    probe_start, probe_samples = None, 0  # speed probe: timing starts after the warm-up steps
    first_eval: tuple[float, int] | None = None
    sync(device)
    started = time.perf_counter()
    done = False
    while not done:
        for batch in train_loader:
            if cfg.eval_every is None and step == args.compare_warmup:
                sync(device)
                probe_start, probe_samples = time.perf_counter(), 0
            ids = batch["input_ids"].to(device, non_blocking=True)
            mask = batch["attention_mask"].to(device, non_blocking=True)
            labels = batch["labels"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(raw_model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            n = ids.shape[0]
            samples += n
            probe_samples += n
            tokens += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
            loss_sum += loss.detach().float()
            loss_n += 1
            if cfg.eval_every and step % cfg.eval_every == 0:
                sync(device)
                t0 = time.perf_counter()
                if first_eval is None:  # warm-up (allocator, cuDNN/compile) ends here: steady speed after it
                    first_eval = (t0 - started, samples)
                metrics = evaluate(model, val_loader, device, cfg.bf16)
                eval_seconds += time.perf_counter() - t0
                macro = metrics["macro"]["f1"]
                row = {"step": step, "epoch": round(step / steps_per_epoch, 2),
                       "elapsed_s": round(time.perf_counter() - started, 2),
                       "train_loss": round(float(loss_sum) / max(1, loss_n), 4),
                       "val_macro_f1": round(macro, 4), "val_micro_f1": round(metrics["micro"]["f1"], 4)}
                loss_sum.zero_()
                loss_n = 0
                if macro > best["f1"]:
                    keep = "cpu" if args.best_on_cpu else device
                    best = {"f1": macro, "step": step, "metrics": metrics,
                            "state": {k: v.detach().to(keep, copy=True) for k, v in raw_model.state_dict().items()}}
                    bad_evals = 0
                    row["best"] = True
                else:
                    bad_evals += 1
                rows.append(row)
                console.print(f"  step {step:>5}  epoch {row['epoch']:>5.2f}  {row['elapsed_s']:>7.1f} s  "
                              f"loss {row['train_loss']:.4f}  val macro F1 {macro:.4f}  micro F1 "
                              f"{row['val_micro_f1']:.4f}{'  *' if row.get('best') else ''}")
                if on_eval:
                    on_eval(rows)
                if bad_evals >= args.patience:
                    stopped_by = "early_stopping"
                    done = True
                elif args.time_budget and time.perf_counter() - started > args.time_budget:
                    stopped_by = "time_budget"
                    done = True
            if step >= total:
                done = True
            if done:
                break
    sync(device)
    wall = time.perf_counter() - started
    if stopped_by is None:
        stopped_by = "max_steps" if cfg.max_steps or (args.max_steps and step >= args.max_steps) else "epochs"
    train_seconds = wall - eval_seconds
    result: dict[str, Any] = {
        "config": cfg.__dict__,
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "epochs": round(step / steps_per_epoch, 2),
        "samples": samples,
        "wall_s": round(wall, 2),
        "train_s": round(train_seconds, 2),
        "eval_s": round(eval_seconds, 2),
        "samples_per_s": round(samples / train_seconds, 1),
        "samples_per_s_after_first_eval": (
            round((samples - first_eval[1]) / (train_seconds - first_eval[0]), 1)
            if first_eval and samples > first_eval[1] and train_seconds > first_eval[0] else None),
        "tokens_per_s": round(tokens / train_seconds, 1),
        "padding_share": round(1 - tokens / max(1, padded), 4),
        "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
    }
    if probe_start is not None:
        probe_s = time.perf_counter() - probe_start
        result["probe"] = {"warmup_steps": args.compare_warmup, "steps": step - args.compare_warmup,
                           "samples": probe_samples, "seconds": round(probe_s, 2),
                           "samples_per_s": round(probe_samples / probe_s, 1)}
    if cfg.eval_every:
        result["time_to_stop_s"] = round(wall, 2)
        result["eval_rows"] = rows
        result["early_stopping"] = {"patience": args.patience, "stopped_by": stopped_by,
                                    "evals_without_improvement": bad_evals, "best_step": best["step"],
                                    "best_val_macro_f1": round(best["f1"], 4) if best["state"] else None}
        if best["state"] is not None:
            raw_model.load_state_dict(best["state"])
        test_loader = loader(data["test"], cfg, tokenizer.pad_token_id, args.max_length, train=False, seed=0,
                             device=device)
        test = evaluate(model, test_loader, device, cfg.bf16)
        result["test"] = {"micro_f1": round(test["micro"]["f1"], 4), "macro_f1": round(test["macro"]["f1"], 4),
                          "exact_match": round(test["exact_match"], 4), "n_sentences": test["n_sentences"],
                          "per_entity_f1": {k: round(v["f1"], 4) for k, v in test["per_entity"].items()}}
        if best["metrics"]:
            result["best_validation"] = {"micro_f1": round(best["metrics"]["micro"]["f1"], 4),
                                         "macro_f1": round(best["metrics"]["macro"]["f1"], 4)}
    del model, raw_model, optimizer, best
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def load_data(args: argparse.Namespace, console: Any) -> dict[str, Any]:
    from trajet.minibase import MiniSpec, train_tokenizer

    t0 = time.perf_counter()
    phrases = read_phrases(args.train)
    if args.train_limit:
        phrases = phrases[: args.train_limit]
    train, validation = split_validation(phrases)
    test = read_phrases(args.test)
    if args.test_limit:
        test = test[: args.test_limit]
    spec = MiniSpec(vocab_size=args.vocab, min_frequency=2, max_positions=args.max_length)
    tokenizer = train_tokenizer([p.text for p in phrases], spec)
    data = {
        "tokenizer": tokenizer,
        "train": encode(train, tokenizer, args.max_length),
        "validation": encode(validation, tokenizer, args.max_length),
        "test": encode(test, tokenizer, args.max_length),
    }
    lengths = [len(e.input_ids) for e in data["train"]]
    data["info"] = {"train": len(train), "validation": len(validation), "test": len(test),
                    "vocab_asked": args.vocab, "vocab": len(tokenizer),
                    "mean_length": round(sum(lengths) / len(lengths), 1), "max_length_seen": max(lengths),
                    "seconds": round(time.perf_counter() - t0, 2)}
    console.print(f"data: {len(train)} train / {len(validation)} validation / {len(test)} test phrases, "
                  f"vocab {len(tokenizer)} (asked {args.vocab}), mean {data['info']['mean_length']} sub-tokens "
                  f"({data['info']['seconds']} s)")
    return data


def environment(device: Any) -> dict[str, Any]:
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_mem_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                   bf16_supported=torch.cuda.is_bf16_supported())
    else:
        env["cpu_threads"] = torch.get_num_threads()
    return env


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    flag = argparse.BooleanOptionalAction
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=Path, default=REPO / "data/phrases/train.jsonl")
    p.add_argument("--test", type=Path, default=REPO / "data/phrases/test.jsonl")
    p.add_argument("--train-limit", type=int, default=0, help="Use only the first N train phrases (0: all).")
    p.add_argument("--test-limit", type=int, default=0, help="Score only the first N test phrases (0: all).")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cuda, cpu.")
    p.add_argument("--cpu-threads", type=int, default=0, help="torch CPU threads (0: torch's default).")
    p.add_argument("--vocab", type=int, default=32000, help="BPE vocabulary asked (the corpus may support fewer).")
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None,
                   help="Default: 5e-5 * sqrt(batch / 16), the reference's rate scaled by the square-root rule.")
    p.add_argument("--epochs", type=float, default=10.0)
    p.add_argument("--max-steps", type=int, default=0, help="Stop after N steps (0: epochs / early stopping).")
    p.add_argument("--warmup", type=float, default=0.1, help="Warmup share of the steps.")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--eval-every", type=int, default=0,
                   help="Steps between evaluations (0: every 1,600 samples, the reference's 100 steps of 16).")
    p.add_argument("--patience", type=int, default=3, help="Evaluations without a better val macro F1.")
    p.add_argument("--time-budget", type=float, default=0, help="Stop at the first evaluation after S seconds.")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bf16", action=flag, default=None, help="bf16 autocast (default: on when CUDA has bf16).")
    p.add_argument("--dynamic-padding", action=flag, default=True, help="Pad to the batch's longest (x8).")
    p.add_argument("--group-by-length", action=flag, default=True, help="Length-grouped batches.")
    p.add_argument("--fused-adamw", action=flag, default=None, help="Fused AdamW (default: on with CUDA).")
    p.add_argument("--tf32", action=flag, default=True, help="TF32 matmuls for what stays fp32 (CUDA).")
    p.add_argument("--compile", action=flag, default=False, help="torch.compile the model (dynamic shapes).")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 2 on CUDA, 0 on CPU).")
    p.add_argument("--pin-memory", action=flag, default=None, help="Pinned host memory (default: on with CUDA).")
    p.add_argument("--best-on-cpu", action=flag, default=False, help="Keep the best state in host memory.")
    p.add_argument("--compare", action="store_true",
                   help="First run the reference-like baseline for --compare-steps steps; report speed ratios.")
    p.add_argument("--compare-steps", type=int, default=120, help="Baseline steps timed (after the warm-up).")
    p.add_argument("--compare-warmup", type=int, default=10, help="Baseline steps run before timing.")
    p.add_argument("--baseline-padding", choices=("max", "dynamic"), default="max",
                   help="Baseline padding: to --max-length (classic padding='max_length' recipe; default) or to the "
                   "batch's longest (HF's DataCollatorForTokenClassification).")
    p.add_argument("--tiny", action="store_true",
                   help="CPU smoke size: hidden 64, 2 layers, 1,200 phrases, 40 steps, eval every 10.")
    p.add_argument("--out", type=Path, default=None, help="JSON results (default: $OUT/gpu_train.json when $OUT is set).")
    args = p.parse_args(argv)
    if args.tiny:
        for key, value in {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128, "vocab": 2000,
                           "max_length": 64, "batch_size": 32, "train_limit": args.train_limit or 1200,
                           "test_limit": args.test_limit or 300, "max_steps": args.max_steps or 40,
                           "eval_every": args.eval_every or 10, "compare_steps": min(args.compare_steps, 10),
                           "compare_warmup": min(args.compare_warmup, 2),
                           "cpu_threads": args.cpu_threads or 1}.items():
            setattr(args, key, value)
    if args.out is None and os.environ.get("OUT"):
        args.out = Path(os.environ["OUT"]) / "gpu_train.json"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=150)  # logs: no wrapping at 80 columns
    if args.cpu_threads > 0:
        torch.set_num_threads(args.cpu_threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          (args.device if args.device != "auto" else "cpu"))
    cuda = device.type == "cuda"
    results: dict[str, Any] = {"environment": environment(device), "args": {k: str(v) if isinstance(v, Path) else v
                                                                              for k, v in vars(args).items()}}

    def save() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    console.print(f"[bold]gpu_train[/] on {results['environment'].get('gpu', device)}: "
                  f"{args.layers} layers x {args.hidden}, max length {args.max_length}")
    data = load_data(args, console)
    results["data"] = data.pop("info")
    save()

    started = time.perf_counter()
    if args.compare:
        base = RunConfig(name="baseline (reference-like)", batch_size=REFERENCE_BATCH, lr=REFERENCE_LR, bf16=False,
                         dynamic_padding=args.baseline_padding == "dynamic", group_by_length=False, fused_adamw=False, tf32=False, compile=False,
                         workers=0, pin_memory=False, max_steps=args.compare_warmup + args.compare_steps,
                         eval_every=None)
        padding = "dynamic padding" if base.dynamic_padding else f"pad to {args.max_length}"
        console.print(f"[bold]baseline[/]: fp32, batch 16, lr 5e-5, {padding}, no grouping, "
                      f"unfused AdamW, {args.compare_warmup} + {base.max_steps - args.compare_warmup} steps")
        results["baseline"] = train_run(base, data, args, device, console)
        probe = results["baseline"]["probe"]
        console.print(f"  baseline: {probe['samples_per_s']:.1f} samples/s, peak "
                      f"{results['baseline']['peak_gpu_mem_gib']} GiB")
        save()

    batch = args.batch_size
    lr = args.lr or REFERENCE_LR * math.sqrt(batch / REFERENCE_BATCH)
    cfg = RunConfig(
        name="full run", batch_size=batch, lr=lr,
        bf16=args.bf16 if args.bf16 is not None else bool(cuda and torch.cuda.is_bf16_supported()),
        dynamic_padding=args.dynamic_padding, group_by_length=args.group_by_length,
        fused_adamw=args.fused_adamw if args.fused_adamw is not None else cuda,
        tf32=args.tf32 and cuda, compile=args.compile,
        workers=args.workers if args.workers is not None else (2 if cuda else 0),
        pin_memory=args.pin_memory if args.pin_memory is not None else cuda,
        max_steps=None,
        eval_every=args.eval_every or max(1, round(REFERENCE_BATCH * REFERENCE_EVAL_STEPS / batch)),
    )
    flags = ", ".join(f"{k}={v}" for k, v in cfg.__dict__.items() if k not in ("name", "max_steps"))
    console.print(f"[bold]full run[/]: {flags}")

    def on_eval(rows: list[dict[str, Any]]) -> None:
        results["full_run_progress"] = rows
        save()

    full = train_run(cfg, data, args, device, console, on_eval=on_eval)
    results.pop("full_run_progress", None)
    results["full_run"] = full
    if args.compare:
        base_rate = results["baseline"]["probe"]["samples_per_s"]
        steady = full["samples_per_s_after_first_eval"]
        results["speedup"] = {
            "samples_per_s_vs_baseline": round(full["samples_per_s"] / base_rate, 2),
            # both without warm-up: the baseline's probe starts after its warm-up steps
            "steady_samples_per_s_vs_baseline": round(steady / base_rate, 2) if steady else None,
            "baseline_samples_per_s": base_rate,
            "full_run_samples_per_s": full["samples_per_s"],
            # what the baseline would need to push the same samples through (training only, no evaluations)
            "baseline_estimated_train_s_for_same_samples": round(full["samples"] / base_rate, 1),
        }
    results["total_s"] = round(time.perf_counter() - started, 1)
    save()

    table = Table(title="gpu_train summary")
    table.add_column("")
    table.add_column("value", justify="right")
    es = full["early_stopping"]
    rows = [
        ("time to stop (train + evals)", f"{full['time_to_stop_s']:.1f} s ({es['stopped_by']})"),
        ("steps / epochs", f"{full['steps']} / {full['epochs']}"),
        ("best step (val macro F1)", f"{es['best_step']} ({es['best_val_macro_f1']})"),
        ("samples/s (training only; after 1st eval)",
         f"{full['samples_per_s']:.1f}; {full['samples_per_s_after_first_eval'] or '-'}"),
        ("tokens/s, padding share", f"{full['tokens_per_s']:.0f}, {full['padding_share']:.1%}"),
        ("peak GPU memory", f"{full['peak_gpu_mem_gib']} GiB" if full["peak_gpu_mem_gib"] is not None else "-"),
        ("test micro / macro F1", f"{full['test']['micro_f1']:.4f} / {full['test']['macro_f1']:.4f}"),
    ]
    if args.compare:
        sp = results["speedup"]
        rows.insert(4, ("speed vs reference-like baseline (all; steady)",
                        f"x{sp['samples_per_s_vs_baseline']:.2f}; x{sp['steady_samples_per_s_vs_baseline'] or '-'} "
                        f"({sp['baseline_samples_per_s']:.1f} samples/s)"))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if args.out:
        console.print(f"JSON written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
