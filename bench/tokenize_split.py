"""Cost of the glued-word splitter: gazetteer load once per process, then words per second with and without
splitting on the committed phrases, and how many phrases of each file tokenize differently.

    python bench/tokenize_split.py
"""

from __future__ import annotations

import os
import time

from trajet.config import data_dir
from trajet.phrases import default_splitter, read_jsonl, tokenize
from trajet.words import NO_SPLIT


def main() -> None:
    started = time.perf_counter()
    splitter = default_splitter()
    load_s = time.perf_counter() - started
    print(f"gazetteer splitter built in {load_s:.2f} s ({len(splitter.names)} one-word names, "
          f"{len(splitter.glued)} after a glued preposition, {len(splitter.whole)} words kept whole)")
    files = ["phrases/train.jsonl", "phrases/test.jsonl", "challenge.jsonl", "challenge_blind.jsonl"]
    texts: list[str] = []
    for name in files:
        phrases = read_jsonl(data_dir() / name)
        changed = sum(tokenize(p.text) != tokenize(p.text, NO_SPLIT) for p in phrases)
        print(f"{name}: {changed} of {len(phrases)} phrases tokenize differently")
        texts += [p.text for p in phrases]
    for label, arg in (("bare pattern", NO_SPLIT), ("with splitter", None)):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            n = sum(len(tokenize(t, arg)) for t in texts)
            best = min(best, time.perf_counter() - t0)
        print(f"{label}: {len(texts)} phrases, {n} tokens in {best:.3f} s ({n / best / 1000:.0f} k tokens/s)")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
