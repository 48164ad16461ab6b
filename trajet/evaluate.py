"""Evaluation of a model on annotated phrases, with seqeval in strict IOB2 mode (trajet.metrics): an entity counts
only when its type and both boundaries match.

Gold and predicted spans are turned into BIO tags on the project's word tokens, then scored by
`trajet.metrics.scores_from_tags`. One addition here: a challenge group without gold entities (no-trip), where
F1 is undefined, scores the share of its sentences left clean.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trajet import config as trajet_config
from trajet.errors import TrajetError
from trajet.metrics import prf, scores_from_tags
from trajet.phrases import Entity, Phrase, PhraseError, read_jsonl, spans_to_bio


def _tags(phrase: Phrase, entities: Sequence[Entity], what: str, index: int) -> list[str]:
    try:
        return spans_to_bio(phrase.text, entities)[1]
    except PhraseError as exc:
        raise TrajetError(f"{what} entities of sentence {index + 1} ({phrase.text[:60]!r}): {exc}") from None


def evaluate_predictions(gold: Sequence[Phrase], predicted: Sequence[Sequence[Entity]]) -> dict[str, Any]:
    """The report agreed in contracts.md; groups come from `phrase.meta["group"]`."""
    if len(gold) != len(predicted):
        raise TrajetError(f"{len(gold)} gold phrases but {len(predicted)} predictions")
    y_true = [_tags(p, p.entities, "gold", i) for i, p in enumerate(gold)]
    y_pred = [_tags(p, list(ents), "predicted", i) for i, (p, ents) in enumerate(zip(gold, predicted, strict=True))]
    scores = scores_from_tags(y_true, y_pred)
    by_gold, by_pred = scores.pop("_gold_by_sentence"), scores.pop("_pred_by_sentence")

    no_trip = [i for i, p in enumerate(gold) if not p.entities]
    clean = sum(1 for i in no_trip if not predicted[i])
    report: dict[str, Any] = {
        "n_sentences": scores["n_sentences"],
        "micro": scores["micro"],
        "macro": scores["macro"],
        "per_entity": scores["per_entity"],
        "exact_match": scores["exact_match"],
        "no_trip": {"n": len(no_trip), "clean": clean / len(no_trip) if no_trip else None},
        "groups": {},
    }
    members: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(gold):
        group = p.meta.get("group")
        if group is not None:
            members[str(group)].append(i)
    for group in sorted(members):
        idx = members[group]
        g = [e for i in idx for e in by_gold[i]]
        pr = [e for i in idx for e in by_pred[i]]
        tp = len(set(g) & set(pr))
        exact = sum(1 for i in idx if by_gold[i] == by_pred[i]) / len(idx)
        # F1 is undefined for a group without gold entities (a no-trip group): one stray entity in any of
        # its sentences would turn a 0/1 "F1" to 0. Its score is the share of its sentences left clean.
        report["groups"][group] = {
            "n": len(idx),
            "micro_f1": prf(tp, len(pr), len(g))["f1"] if g else exact,
            "exact_match": exact,
        }
    return report


def evaluate_model(model: Path | Any, phrases: Sequence[Phrase]) -> dict[str, Any]:
    """`model` is a model directory or a loaded `trajet.predict.Predictor`."""
    from trajet.predict import Predictor

    predictor = model if isinstance(model, Predictor) else Predictor.load(Path(model))
    predicted = predictor.predict_entities([p.text for p in phrases])
    return evaluate_predictions(phrases, predicted)


#: Behavioural-suite size when evaluation runs it for the gate: 23 tests x 200 sentences (about 6,800 distinct
#: sentences with the originals of INV/DIR pairs, ~5 s on CPU for the default model). 200 rather than 100 so that
#: a per-test drop the gate reads is less a matter of which sentences were drawn.
GATE_BEHAVIOUR_N = 200
GATE_BEHAVIOUR_EXAMPLES = 3


def behaviour_evaluation(model: Path | Any, n_per_test: int = GATE_BEHAVIOUR_N, seed: int = 0) -> dict[str, Any]:
    """The behavioural suite's report (trajet.behaviour), a few failing examples per test: it is stored with
    the run and in the manifest, so it stays small."""
    from trajet.behaviour import check_model
    from trajet.predict import Predictor

    predictor = model if isinstance(model, Predictor) else Predictor.load(Path(model))
    return check_model(predictor.predict_entities, n_per_test=n_per_test, seed=seed, examples=GATE_BEHAVIOUR_EXAMPLES)


def full_evaluation(
    model: Path | Any,
    test: Sequence[Phrase],
    challenge: Sequence[Phrase] | None,
    behaviour_n: int | None = None,
) -> dict[str, Any]:
    """Test split, challenge set and (with `behaviour_n` sentences per test) the behavioural suite, with one
    model load. Without it, `behaviour` is None and the gate skips its behaviour rules, saying so. `written` is
    the test split's share that people wrote (no generator `pattern`): what the night's new annotations say."""
    from trajet.predict import Predictor

    predictor = model if isinstance(model, Predictor) else Predictor.load(Path(model))
    written = [p for p in test if "pattern" not in p.meta]
    return {
        "test": evaluate_model(predictor, test),
        "written": evaluate_model(predictor, written) if written else None,
        "challenge": evaluate_model(predictor, challenge) if challenge else None,
        "behaviour": behaviour_evaluation(predictor, behaviour_n) if behaviour_n else None,
    }


def challenge_path() -> Path:
    return trajet_config.data_dir() / "challenge.jsonl"


def load_challenge(path: Path | None = None) -> list[Phrase]:
    """The hand-written challenge set; used for reporting and gating only, never for training or selection."""
    p = path or challenge_path()
    if not p.is_file():
        raise TrajetError(f"challenge set not found: {p}")
    return read_jsonl(p)


def report_table(report: dict[str, Any], title: str = "evaluation") -> Any:
    """A rich table: per entity rows, micro/macro, then exact match, no-trip and groups."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{title} ({report['n_sentences']} sentences)")
    table.add_column("")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    table.add_column("F1", justify="right")
    table.add_column("support / n", justify="right")
    for ent, row in report["per_entity"].items():
        table.add_row(ent, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", str(row["support"]))
    for name in ("micro", "macro"):
        row = report[name]
        table.add_row(f"[bold]{name}[/]", f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"[bold]{row['f1']:.4f}[/]", "")
    table.add_row("exact match", "", "", f"{report['exact_match']:.4f}", str(report["n_sentences"]))
    nt = report["no_trip"]
    table.add_row("no-trip clean", "", "", "-" if nt["clean"] is None else f"{nt['clean']:.4f}", str(nt["n"]))
    for group, row in report["groups"].items():
        table.add_row(escape(f"group {group}"), "", "", f"{row['micro_f1']:.4f} (EM {row['exact_match']:.2f})", str(row["n"]))
    return table


def write_report(report: dict[str, Any], path: Path | None) -> str:
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    return text
