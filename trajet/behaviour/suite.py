"""Building, running and scoring the behavioural suite (CheckList, Ribeiro et al. 2020).

- MFT (minimum functionality): hand-written templates filled with gazetteer places; the prediction must be
  exactly the gold spans (type and both boundaries).
- INV (invariance): the prediction on a perturbed sentence must be the prediction on the original, each
  entity compared by (label, folded surface) after mapping renamed places; case, accents and offsets may move.
- DIR (directional): the prediction must move exactly as the perturbation says (one VIA more; roles swapped).

INV and DIR compare a model with itself, so they pass on a sentence the model gets wrong the same way twice:
MFT says what is right, INV/DIR what must not depend on surface form. Every draw comes from a seeded generator
per test, so a seed and a gazetteer give the same sentences on any machine, and candidate and champion
evaluated in one run read exactly the same suite (its fingerprint says so).
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trajet.behaviour.perturb import DIRECTIONAL, INVARIANCE, Perturbation
from trajet.behaviour.samples import Sample, fill
from trajet.behaviour.templates import MFT
from trajet.phrases import Entity

SUITE_VERSION = "trajet-behaviour-v2"
DEFAULT_N_PER_TEST = 100
DEFAULT_EXAMPLES = 5
KINDS = ("MFT", "INV", "DIR")

Predict = Callable[[Sequence[str]], Sequence[Sequence[Entity]]]


@dataclass(frozen=True)
class Case:
    """MFT (`original` None): the prediction on `text` must be `gold`. INV/DIR: it must be the prediction on
    `original`, its surfaces renamed by `renames`, plus `added`. Both sentences keep their gold spans, so an
    oracle answering gold passes every test: the check that perturbations move the answer as they claim."""

    text: str
    gold: tuple[Entity, ...] = ()
    original: str | None = None
    original_gold: tuple[Entity, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    added: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BehaviourTest:
    name: str
    kind: str
    description: str
    cases: tuple[Case, ...]


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(f"trajet-check-{seed}-{name}")


def _mft_cases(name: str, n: int, seed: int) -> tuple[Case, ...]:
    """Templates used in turn, so every template gets about n / len(templates) sentences."""
    group = MFT[name]
    rng = _rng(seed, name)
    cases: list[Case] = []
    seen: set[str] = set()
    for i in range(n):
        template = group.templates[i % len(group.templates)]
        for _ in range(20):
            sample = fill(template, rng, group.pool)
            if sample.text not in seen:
                break
        seen.add(sample.text)
        cases.append(Case(sample.text, gold=sample.entities))
    return tuple(cases)


_ALL_TEMPLATES = tuple((g.pool, t) for g in MFT.values() for t in g.templates)


_TRIP_TEMPLATES = tuple((g.pool, t) for name, g in MFT.items() if name != "mft_no_trip" for t in g.templates)
#: Tests whose perturbation only makes sense in a request (a price or a stop added to "Il pleut à X" is noise).
TRIP_ONLY = frozenset({"inv_details", "inv_invented_place", "dir_add_via", "dir_swap_roles"})


def _perturbed_cases(name: str, perturb: Perturbation, n: int, seed: int) -> tuple[Case, ...]:
    """n (original, perturbed) pairs over sentences of the MFT templates; sentences the perturbation does
    not apply to (a swap without two places) are drawn again."""
    rng = _rng(seed, name)
    templates = _TRIP_TEMPLATES if name in TRIP_ONLY else _ALL_TEMPLATES
    cases: list[Case] = []
    for _ in range(n * 30):
        if len(cases) >= n:
            break
        pool, template = rng.choice(templates)
        base: Sample = fill(template, rng, pool)
        out = perturb(base, rng)
        if out is None or out.sample.text == base.text and not out.added and not out.renames:
            continue
        cases.append(
            Case(out.sample.text, out.sample.entities, base.text, base.entities, out.renames, out.added)
        )
    return tuple(cases)


def build_suite(n_per_test: int = DEFAULT_N_PER_TEST, seed: int = 0) -> list[BehaviourTest]:
    if n_per_test < 1:
        raise ValueError("n_per_test must be at least 1")
    tests = [BehaviourTest(name, "MFT", g.description, _mft_cases(name, n_per_test, seed)) for name, g in MFT.items()]
    for kind, table in (("INV", INVARIANCE), ("DIR", DIRECTIONAL)):
        for name, (description, fn) in table.items():
            tests.append(BehaviourTest(name, kind, description, _perturbed_cases(name, fn, n_per_test, seed)))
    return tests


# --------------------------------------------------------------------------------------------- scoring


def fold(text: str) -> str:
    """Surface key for INV/DIR: case, accents, apostrophe style and spacing ignored."""
    decomposed = unicodedata.normalize("NFKD", text.replace("’", "'"))
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())


def rename(surface: str, renames: Sequence[tuple[str, str]]) -> str:
    """Every renamed place inside `surface` rewritten at once (a swap exchanges both names)."""
    if not renames:
        return surface
    table = {old: new for old, new in renames}
    pattern = "|".join(re.escape(old) for old in sorted(table, key=len, reverse=True))
    return re.sub(rf"(?<!\w)(?:{pattern})(?!\w)", lambda m: table[m.group()], surface)


def _shown(items: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{label}:{surface}" for label, surface in items]


def _spans(text: str, entities: Sequence[Entity]) -> list[tuple[str, str]]:
    return [(e.label, text[e.start : e.end]) for e in sorted(entities)]


def score_case(case: Case, predicted: dict[str, Sequence[Entity]]) -> tuple[bool, list[str], list[str]]:
    """(passed, expected, got), expected and got as `LABEL:surface` lists for people to read."""
    got = _spans(case.text, predicted[case.text])
    if case.original is None:
        gold = case.gold
        passed = set(gold) == set(predicted[case.text])
        return passed, _shown(_spans(case.text, gold)), _shown(got)
    before = _spans(case.original, predicted[case.original])
    expected = [(label, rename(surface, case.renames)) for label, surface in before] + list(case.added)
    passed = sorted((lb, fold(s)) for lb, s in expected) == sorted((lb, fold(s)) for lb, s in got)
    return passed, _shown(expected), _shown(got)


def judgeable(case: Case, predicted: dict[str, Sequence[Entity]]) -> bool:
    """False when the answer expected from the original sentence names words the new sentence no longer has:
    the model cut a renamed place short on the original (`Orléans` of `Orléans Centre`), so no answer on the
    renamed sentence could pass. Such a case measures the original's boundary error, which the MFTs count, not
    whether the answer moved: it is left out of the pass rate and counted as `unjudged`."""
    if case.original is None or not case.renames:
        return True
    present = fold(case.text)
    for _, surface in _spans(case.original, predicted[case.original]):
        expected = fold(rename(surface, case.renames))
        if not re.search(rf"(?<!\w){re.escape(expected)}(?!\w)", present):
            return False
    return True


def suite_fingerprint(tests: Sequence[BehaviourTest]) -> str:
    digest = hashlib.sha256(SUITE_VERSION.encode())
    for t in tests:
        digest.update(f"\n#{t.name}".encode())
        for c in t.cases:
            digest.update(f"\n{c.original or ''}\t{c.text}".encode())
    return digest.hexdigest()[:16]


def run_suite(
    tests: Sequence[BehaviourTest], predict: Predict, *, examples: int = DEFAULT_EXAMPLES, seed: int = 0,
    n_per_test: int | None = None,
) -> dict[str, Any]:
    """Every sentence of every test predicted in one batch call, then scored: the JSON report."""
    texts = list(dict.fromkeys(t for test in tests for c in test.cases for t in (c.original, c.text) if t))
    found = predict(texts)
    if len(found) != len(texts):
        raise ValueError(f"the predictor answered {len(found)} predictions for {len(texts)} sentences")
    predicted = dict(zip(texts, found, strict=True))
    report_tests: dict[str, dict[str, Any]] = {}
    for test in tests:
        passed, failures, unjudged = 0, [], 0
        for case in test.cases:
            if not judgeable(case, predicted):
                unjudged += 1
                continue
            ok, expected, got = score_case(case, predicted)
            passed += ok
            if not ok and len(failures) < examples:
                failure = {"input": case.text, "expected": expected, "got": got}
                if case.original is not None:
                    failure["original"] = case.original
                failures.append(failure)
        n = len(test.cases) - unjudged
        report_tests[test.name] = {
            "kind": test.kind, "description": test.description, "n": n, "passed": passed,
            "pass_rate": passed / n if n else None, "failures": failures, "unjudged": unjudged,
        }
    return {
        "suite": SUITE_VERSION,
        "seed": seed,
        "n_per_test": n_per_test,
        "fingerprint": suite_fingerprint(tests),
        "n_sentences": len(texts),
        "overall": _overall(list(report_tests.values())),
        "by_kind": {k: _overall([t for t in report_tests.values() if t["kind"] == k]) for k in KINDS},
        "tests": report_tests,
    }


def _overall(tests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean of the tests' pass rates (each test counts once, whatever its size), plus the raw counts."""
    rates = [t["pass_rate"] for t in tests if t["pass_rate"] is not None]
    return {
        "pass_rate": sum(rates) / len(rates) if rates else None,
        "tests": len(rates),
        "n": sum(t["n"] for t in tests),
        "passed": sum(t["passed"] for t in tests),
    }


def check_model(
    predict: Predict, *, n_per_test: int = DEFAULT_N_PER_TEST, seed: int = 0, examples: int = DEFAULT_EXAMPLES
) -> dict[str, Any]:
    """Builds the suite and runs it: what `trajet check` and evaluation call."""
    tests = build_suite(n_per_test, seed)
    return run_suite(tests, predict, examples=examples, seed=seed, n_per_test=n_per_test)
