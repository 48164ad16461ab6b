"""Does the saved TorchScript trace (one-sentence `trajet predict`) answer exactly as the eager torch path did?

Runs both predictors of one model on a sample of a JSONL file, batched and one sentence at a time, and counts
sentences whose whole output (spans, trip fields, errors, 4-decimal scores) is identical.

    python bench/saved_trace_agreement.py --model /path/to/model [--data data/phrases/test.jsonl] [--every 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent.parent / "data/phrases/test.jsonl")
    parser.add_argument("--every", type=int, default=4, help="Take every N-th line.")
    parser.add_argument("--one-by-one", type=int, default=200, help="Sentences also predicted one at a time.")
    args = parser.parse_args()

    from trajet.predict import Predictor
    from trajet.torchscript import load_saved

    lines = args.data.read_text(encoding="utf-8").splitlines()[:: args.every]
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    eager = Predictor.load(args.model, trace=False)
    with tempfile.TemporaryDirectory(prefix="trajet-saved-trace-") as cache:
        saved = load_saved(args.model, cache_root=Path(cache))
        want, got = eager.predict(texts), saved.predict(texts)
        single = [saved.predict([t])[0] for t in texts[: args.one_by_one]]
    spans = lambda r: [(e["start"], e["end"], e["label"]) for e in r.get("entities", [])]  # noqa: E731
    diff = max((abs(a["score"] - b["score"]) for w, g in zip(want, got, strict=True)
                for a, b in zip(w.get("entities", []), g.get("entities", []), strict=False)), default=0.0)
    print(f"model {args.model}, {type(saved).__name__} with {type(saved.tokenizer).__name__}; "
          f"{len(texts)} sentences of {args.data.name}, {sum(len(spans(w)) for w in want)} eager entities")
    print(f"batched: identical output {sum(w == g for w, g in zip(want, got, strict=True))}/{len(texts)}, "
          f"same spans {sum(spans(w) == spans(g) for w, g in zip(want, got, strict=True))}/{len(texts)}, "
          f"max score difference {diff:.4f}")
    print(f"one at a time: identical output {sum(w == g for w, g in zip(want, single, strict=False))}/{len(single)}")


if __name__ == "__main__":
    main()
