"""Behavioural-suite bench: how long `trajet check` takes on a model, and its pass rates.

    python bench/check_suite.py --model models/latest --n-per-test 100 [--compare other_model]

Prints the time to build the suite and to predict all its sentences (one batch call), sentences/s, and the
pass rate per test; with --compare, the per-test difference between the two models on the same sentences
(what the gate's `max_behaviour_drop` rule reads). Run it with the machine as quiet as you can.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from trajet.behaviour import build_suite, run_suite  # noqa: E402
from trajet.predict import load_predictor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--compare", type=Path, help="A second model scored on the same sentences.")
    ap.add_argument("--n-per-test", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    started = time.perf_counter()
    tests = build_suite(args.n_per_test, args.seed)
    built = time.perf_counter() - started
    reports = []
    for model in [args.model] + ([args.compare] if args.compare else []):
        predictor = load_predictor(model, batch_size=64, num_threads=1)
        predictor.predict_entities(["Je vais de Paris à Lyon"])  # warm-up outside the timing
        t0 = time.perf_counter()
        report = run_suite(tests, predictor.predict_entities, seed=args.seed, n_per_test=args.n_per_test)
        seconds = time.perf_counter() - t0
        reports.append(report)
        print(f"{model}: {report['n_sentences']} sentences in {seconds:.2f} s "
              f"({report['n_sentences'] / seconds:.0f}/s; suite built in {built:.2f} s), "
              f"overall pass rate {report['overall']['pass_rate']:.3f}, "
              + ", ".join(f"{k} {v['pass_rate']:.3f}" for k, v in report["by_kind"].items()))
    print(f"\n{'test':24s} " + " ".join(f"{'model ' + str(i + 1):>8s}" for i in range(len(reports)))
          + ("   delta" if len(reports) == 2 else ""))
    for name in reports[0]["tests"]:
        rates = [r["tests"][name]["pass_rate"] for r in reports]
        delta = f"  {rates[1] - rates[0]:+.3f}" if len(rates) == 2 else ""
        print(f"{name:24s} " + " ".join(f"{r:8.3f}" for r in rates) + delta)


if __name__ == "__main__":
    main()
