"""What the gazetteer hints are worth, and what happens to a place the gazetteer does not know.

    python bench/gazetteer_ablation.py --model MODEL

Scores one trained gazetteer-feature model (the `mini` default) three ways on the generated test split and the
challenge set: (a) with the lexicon it was trained with; (b) with that lexicon minus every commune of the
part held out for the test split (so the test split's unseen places get no hint at all, as a hamlet or an
unknown spelling would in production); (c) with no hint anywhere. (b) is the honest number for places
missing from the gazetteer; (a) is what a user typing a known French place gets.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--test", type=Path, default=Path("data/phrases/test.jsonl"))
    parser.add_argument("--challenge", type=Path, default=Path("data/challenge.jsonl"))
    args = parser.parse_args()

    from trajet.evaluate import evaluate_model, load_challenge
    from trajet.generate import _held_out, place_key
    from trajet.lexicon import Lexicon, name_keys
    from trajet.phrases import read_phrases
    from trajet.places import communes
    from trajet.predict import Predictor

    predictor = Predictor.load(args.model, num_threads=1)
    if predictor.lexicon is None:
        raise SystemExit(f"{args.model} was trained without gazetteer features")
    full = predictor.lexicon
    held: set[tuple[str, ...]] = set()
    for c in communes():
        if _held_out(place_key(c.name)):
            for name in (c.name, c.ascii, *c.alternates):
                held |= name_keys(name)
    without_test_places = Lexicon(full.entries - held)
    test, challenge = read_phrases(args.test), load_challenge(args.challenge)
    rows = []
    for label, lexicon in (
        ("(a) lexicon as trained", full),
        (f"(b) minus the {len(full.entries) - len(without_test_places.entries)} held-out test entries", without_test_places),
        ("(c) no hints", Lexicon(())),
    ):
        predictor.lexicon = lexicon
        t, c = evaluate_model(predictor, test), evaluate_model(predictor, challenge)
        rows.append({
            "lexicon": label, "entries": len(lexicon),
            "test_micro_f1": round(t["micro"]["f1"], 4), "test_exact": round(t["exact_match"], 4),
            "challenge_micro_f1": round(c["micro"]["f1"], 4), "challenge_exact": round(c["exact_match"], 4),
        })
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    print("\n| lexicon | entries | test micro F1 / exact | challenge micro F1 / exact |\n| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['lexicon']} | {r['entries']} | {r['test_micro_f1']:.3f} / {r['test_exact']:.3f} "
              f"| {r['challenge_micro_f1']:.3f} / {r['challenge_exact']:.3f} |")


if __name__ == "__main__":
    main()
