"""A trained model on requests typed glued, read with the bare tokenizer (before) and with the splitter (after).

From the generated test split: every phrase with a place after `de`, `à`, `au`, `du`, `pour`, `vers`, `via`,
`par` gets that space removed (`de Rouen` -> `deRouen`), and every terse pair `X - Y` / `X -> Y` loses its
spaces (`Lyon-Paris`, `Lyon->Paris`). Phrases whose glued place the splitter does not know (a village under the
glued-preposition population floor, a misspelled name) are counted and left out: their gold span is no longer a
word. Strict micro F1 and sentence exact match, same model, same phrases, both ways.

    python bench/glued_eval.py --model /path/to/model [--limit 600]
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

from trajet import predictor as predictor_module
from trajet.config import data_dir
from trajet.evaluate import evaluate_predictions
from trajet.phrases import Entity, Phrase, PhraseError, read_jsonl, spans_to_bio, tokenize
from trajet.words import NO_SPLIT

_GLUE = re.compile(r"(?i)(?:^|(?<=\s))(de|à|a|au|du|pour|vers|via|par) $")
_PAIR = (" - ", " -> ")


def glued(phrase: Phrase) -> Phrase | None:
    """The phrase with one space removed before each entity that follows a preposition or a pair sign."""
    text, ents = phrase.text, sorted(phrase.entities)
    changed = False
    for k in range(len(ents)):
        e = ents[k]
        before = text[: e.start]
        cut = 0
        if _GLUE.search(before[-8:]):
            cut = 1
        elif k > 0 and ents[k - 1].end == e.start - 3 and before.endswith(" - "):
            text = text[: e.start - 3] + "-" + text[e.start :]
            cut = 2
        elif k > 0 and ents[k - 1].end == e.start - 4 and before.endswith(" -> "):
            text = text[: e.start - 4] + "->" + text[e.start :]
            cut = 2
        if cut == 1:
            text = text[: e.start - 1] + text[e.start :]
        if cut:
            changed = True
            ents = ents[:k] + [Entity(x.start - cut, x.end - cut, x.label) for x in ents[k:]]
    if not changed:
        return None
    return Phrase(text, tuple(ents), dict(phrase.meta))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=600)
    args = parser.parse_args()
    phrases, unknown = [], 0
    for p in read_jsonl(data_dir() / "phrases" / "test.jsonl"):
        g = glued(p)
        if g is None:
            continue
        try:
            spans_to_bio(g.text, g.entities)
        except PhraseError:
            unknown += 1
            continue
        phrases.append(g)
        if len(phrases) >= args.limit:
            break
    print(f"{len(phrases)} glued phrases ({unknown} left out: place unknown to the splitter)")
    from trajet.predict import load_predictor

    predictor = load_predictor(args.model)
    texts = [p.text for p in phrases]
    results = {}
    for label, splitter in (("bare tokenizer (before)", NO_SPLIT), ("splitter (after)", None)):
        predictor_module.tokenize = lambda text, s=splitter: tokenize(text, s)  # noqa: B023 - bound per loop
        t0 = time.perf_counter()
        predicted = predictor.predict_entities(texts)
        elapsed = time.perf_counter() - t0
        report = evaluate_predictions(phrases, predicted)
        results[label] = report
        print(f"{label}: micro F1 {report['micro']['f1']:.4f}, exact match {report['exact_match']:.4f} "
              f"({elapsed:.1f} s)")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
