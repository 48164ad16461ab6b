"""How long the default dataset takes to generate (the issue asks for < 10 s). Prints seconds."""

from __future__ import annotations

import time

from trajet.generate import build_vocabularies, generate


def main(repeats: int = 3) -> None:
    started = time.perf_counter()
    build_vocabularies()
    print(f"vocabularies: {time.perf_counter() - started:.2f} s")
    for i in range(repeats):
        started = time.perf_counter()
        data = generate()
        n = sum(len(v) for v in data.values())
        print(f"run {i + 1}: {n} phrases in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
