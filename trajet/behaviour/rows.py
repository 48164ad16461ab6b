"""The suite's surface-form invariance checks, run on annotated rows people sent instead of template sentences.

The suite (trajet.behaviour.suite) measures a model on sentences it fills itself; the champion watch
(trajet.watch) also wants to know whether the requests arriving now break the model when typed differently:
in lower case, without accents, with other punctuation, a greeting or an inserted detail. Each row becomes a
`Sample` whose annotated spans are its places, the perturbation rewrites it, and the row fails a check when
the model's answer on the rewritten text is not its answer on the original (compared as the suite compares
INV cases: label and folded surface). Checks that rename places are left out: renaming a real request's town
turns it into a sentence nobody sent, which the suite already covers with its own templates.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Any

from trajet.behaviour.perturb import INVARIANCE
from trajet.behaviour.samples import Piece, Sample, merge_text
from trajet.behaviour.suite import TRIP_ONLY, Case, score_case
from trajet.phrases import Entity, Phrase

#: The INV checks that keep every place as written (case, accents, punctuation, openings, details).
ROW_CHECKS = ("inv_lowercase", "inv_uppercase", "inv_titlecase", "inv_no_accents", "inv_punctuation",
              "inv_prefix_suffix", "inv_details")
#: Rows shown per check: enough to see the pattern, small enough for a database row and an artifact.
EXAMPLES = 2

Predict = Callable[[Sequence[str]], Sequence[Sequence[Entity]]]


def phrase_sample(phrase: Phrase) -> Sample:
    """The row as pieces: each annotated span a place (its text as name), the rest plain text."""
    pieces: list[Piece] = []
    pos = 0
    for e in sorted(phrase.entities):
        pieces.append(Piece(phrase.text[pos : e.start]))
        span = phrase.text[e.start : e.end]
        pieces.append(Piece(span, e.label, "annotated", span))
        pos = e.end
    pieces.append(Piece(phrase.text[pos:]))
    return Sample(tuple(merge_text(pieces)), "row")


def checked_rows(phrases: Sequence[Phrase], limit: int) -> list[Phrase]:
    """At most `limit` rows, picked by the hash of their text: the same rows on every re-scoring of a batch,
    spread over the batch rather than its first lines (an export is often sorted by annotator or date)."""
    ordered = sorted(phrases, key=lambda p: hashlib.sha256(p.text.encode("utf-8")).hexdigest())
    return ordered[:limit]


def _rng(check: str, text: str) -> random.Random:
    """One generator per (check, row): a row gets the same perturbation whatever else is in the batch."""
    return random.Random(f"trajet-watch-{check}-{text}")


def row_cases(phrases: Sequence[Phrase]) -> dict[str, list[Case]]:
    """Per check, the (original, perturbed) pairs of the rows it applies to and actually changes."""
    cases: dict[str, list[Case]] = {name: [] for name in ROW_CHECKS}
    for phrase in phrases:
        sample = phrase_sample(phrase)
        for name in ROW_CHECKS:
            if name in TRIP_ONLY and not phrase.entities:
                continue  # as in the suite: a detail added to a sentence that asks for no trip is noise
            out = INVARIANCE[name][1](sample, _rng(name, phrase.text))
            if out is None or out.sample.text == phrase.text:
                continue
            cases[name].append(Case(out.sample.text, out.sample.entities, phrase.text, phrase.entities))
    return cases


def row_checks(predict: Predict, phrases: Sequence[Phrase], limit: int) -> dict[str, Any]:
    """Per check: rows it applied to, rows whose answer changed, a few of them. One predict call for all."""
    rows = checked_rows(phrases, limit)
    cases = row_cases(rows)
    texts = list(dict.fromkeys(t for found in cases.values() for c in found for t in (c.original, c.text) if t))
    answers = predict(texts) if texts else []
    if len(answers) != len(texts):
        raise ValueError(f"the predictor answered {len(answers)} predictions for {len(texts)} sentences")
    predicted = dict(zip(texts, answers, strict=True))
    checks: dict[str, dict[str, Any]] = {}
    changed_rows: set[str] = set()
    for name, found in cases.items():
        changed, examples = 0, []
        for case in found:
            passed, expected, got = score_case(case, predicted)
            if passed:
                continue
            changed += 1
            changed_rows.add(str(case.original))
            if len(examples) < EXAMPLES:
                examples.append({"original": case.original, "perturbed": case.text, "expected": expected, "got": got})
        checks[name] = {"description": INVARIANCE[name][0], "n": len(found), "changed": changed,
                        "rate": changed / len(found) if found else None, "examples": examples}
    return {
        "rows": len(rows),
        "failures": sum(c["changed"] for c in checks.values()),
        "rows_changed": len(changed_rows),
        "checks": checks,
    }
