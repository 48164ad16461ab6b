"""Inference bench: the Trajet model vs a spaCy blank("fr") + ner pipeline trained on the same train split.

Prints, for both, batched sentences/s, p50 single-sentence latency and strict micro-F1 / exact match on the
same challenge set. spaCy is a bench-only dependency (never imported by trajet itself):

    pip install spacy            # bench only
    python bench/predict.py --model models/latest

Both run on one CPU thread so the numbers compare; run it with the machine as quiet as you can.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from trajet.phrases import Entity, Phrase, read_phrases, tokenize  # noqa: E402


def snap_to_words(text: str, start: int, end: int, label: str) -> Entity | None:
    """spaCy's French tokenizer cuts some words differently: widen its span to the project's word bounds."""
    covered = [t for t in tokenize(text) if t.end > start and t.start < end]
    if not covered:
        return None
    return Entity(covered[0].start, covered[-1].end, label)


def train_spacy(train: list[Phrase], epochs: int, seed: int = 0):
    import spacy
    from spacy.training import Example
    from spacy.util import minibatch

    nlp = spacy.blank("fr")
    ner = nlp.add_pipe("ner")
    for label in ("DEPART", "ARRIVEE", "VIA"):
        ner.add_label(label)
    examples, skipped = [], 0
    for p in train:
        doc = nlp.make_doc(p.text)
        spans = []
        for e in p.entities:
            span = doc.char_span(e.start, e.end, label=e.label, alignment_mode="expand")
            if span is None:
                skipped += 1
                continue
            spans.append(span)
        try:
            doc.ents = spans
        except ValueError:
            skipped += 1
            continue
        examples.append(Example(nlp.make_doc(p.text), doc))
    random.seed(seed)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(epochs):
        random.shuffle(examples)
        for batch in minibatch(examples, size=32):
            nlp.update(batch, sgd=optimizer, drop=0.2)
    return nlp, skipped


def spacy_entities(nlp, texts: list[str]) -> list[list[Entity]]:
    out = []
    for doc in nlp.pipe(texts, batch_size=64):
        ents = [snap_to_words(doc.text, e.start_char, e.end_char, e.label_) for e in doc.ents]
        kept: list[Entity] = []
        for e in sorted(x for x in ents if x is not None):
            if not kept or e.start >= kept[-1].end:
                kept.append(e)
        out.append(kept)
    return out


def timings(batched, single, texts: list[str], n_single: int, repeat: int = 1) -> tuple[float, float, float]:
    """(sentences/s of the fastest of `repeat` batched passes, the same per second of this process's CPU time,
    p50 single-sentence latency in ms). CPU time counts every thread of the process and hardly moves when other
    jobs share the cores; wall time does."""
    from trajet.predict import percentile

    batched(texts[:64])  # warm-up
    rate = cpu_rate = 0.0
    for _ in range(max(1, repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        batched(texts)
        rate = max(rate, len(texts) / (time.perf_counter() - t0))
        cpu_rate = max(cpu_rate, len(texts) / max(time.process_time() - c0, 1e-9))
    lat = []
    for text in texts[:n_single]:
        t = time.perf_counter()
        single(text)
        lat.append((time.perf_counter() - t) * 1000)
    return rate, cpu_rate, percentile(lat, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="Trajet model directory.")
    parser.add_argument("--train", type=Path, default=Path("data/phrases/train.jsonl"))
    parser.add_argument("--challenge", type=Path, default=Path("data/challenge.jsonl"))
    parser.add_argument("--spacy-epochs", type=int, default=10)
    parser.add_argument("--n-batched", type=int, default=2000, help="Sentences for the throughput run.")
    parser.add_argument("--repeat", type=int, default=1,
                        help="Batched passes per pipeline; the fastest counts (a busy machine slows some passes).")
    parser.add_argument("--n-single", type=int, default=200, help="Single-sentence calls for the latency run.")
    parser.add_argument("--spacy-dir", type=Path,
                        help="Save the trained spaCy pipeline here; when one is there already, load it instead of "
                             "training again (the same spaCy model across runs, e.g. before/after a change).")
    parser.add_argument("--backend", default="torch",
                        help="Trajet backends to time, comma-separated: torch, onnx (int8, exported once and cached).")
    args = parser.parse_args()

    try:
        import spacy
    except ImportError:
        sys.exit("this bench needs spaCy: pip install spacy")
    import torch
    from rich.console import Console
    from rich.table import Table

    from trajet.evaluate import evaluate_predictions, load_challenge
    from trajet.predict import load_predictor

    torch.set_num_threads(1)
    challenge = load_challenge(args.challenge)
    texts = [p.text for p in challenge]
    pool = (texts * (args.n_batched // len(texts) + 1))[: args.n_batched]

    rows = []
    for backend in [b.strip() for b in args.backend.split(",") if b.strip()]:
        predictor = load_predictor(args.model, backend=backend, batch_size=64, num_threads=1)
        ours = evaluate_predictions(challenge, predictor.predict_entities(texts))
        rate, cpu_rate, p50 = timings(predictor.predict, lambda t, p=predictor: p.predict([t]), pool, args.n_single,
                            args.repeat)
        rows.append((f"trajet {args.model.name} ({backend})", ours, rate, cpu_rate, p50))

    t0 = time.perf_counter()
    if args.spacy_dir is not None and (args.spacy_dir / "meta.json").is_file():
        nlp, skipped = spacy.load(args.spacy_dir), 0
        spacy_label = f"loaded from {args.spacy_dir.name}"
    else:
        nlp, skipped = train_spacy(read_phrases(args.train), args.spacy_epochs)
        spacy_label = f"{args.spacy_epochs} ep, {time.perf_counter() - t0:.0f} s"
        if args.spacy_dir is not None:
            nlp.to_disk(args.spacy_dir)
    theirs = evaluate_predictions(challenge, spacy_entities(nlp, texts))
    sp_rate, sp_cpu, sp_p50 = timings(lambda ts: list(nlp.pipe(ts, batch_size=64)), nlp, pool, args.n_single, args.repeat)

    table = Table(title=f"inference on 1 CPU thread, challenge set ({len(texts)} sentences)")
    for col in ("pipeline", "sentences/s (batched)", "per CPU s", "p50 latency ms", "micro F1", "exact match", "no-trip clean"):
        table.add_column(col, justify="right")
    for name, rep, rate, cpu_rate, p50 in (
        *rows,
        (f"spaCy blank fr + ner ({spacy_label})", theirs, sp_rate, sp_cpu, sp_p50),
    ):
        nt = rep["no_trip"]["clean"]
        table.add_row(name, f"{rate:.0f}", f"{cpu_rate:.0f}", f"{p50:.2f}", f"{rep['micro']['f1']:.4f}", f"{rep['exact_match']:.4f}",
                      "-" if nt is None else f"{nt:.3f}")
    Console().print(table)
    if skipped:
        print(f"spaCy: {skipped} training spans did not align with its tokenizer and were skipped")


if __name__ == "__main__":
    main()
