"""Entity scores from word tags: strict IOB2 (an entity counts only when its type and both boundaries match).

Two ways to find the entities of a tag sequence, which agree on well-formed sequences (tests/test_metrics.py):
seqeval's strict IOB2 extraction (`seqeval_entities`, what `trajet evaluate` and checkpoint selection use) and
`bio_entities`, pure Python, read as the predictor reads tags, for machines without seqeval (bench/gpu_train.py).
The counting on top (micro, macro over DEPART/ARRIVEE/VIA, exact match) is written once, in `scores_from_tags`.
Two conventions: a set of sentences with no gold and no predicted entity scores 1.0; macro is the mean over the
entity types present in gold or predictions (micro when none is).

Validation during training (`compute_token_metrics`) reads each word's tag on its first sub-token and decodes
log-probabilities under the trip's rules as `trajet.predict` does, so the best checkpoint is chosen on what
users get. Nothing heavy at import: seqeval and trajet.decode load when first used.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from trajet.encoding import IGNORED
from trajet.labels import ENTITY_TYPES, ID2LABEL
from trajet.tags import bio_to_spans, repair_bio
from trajet.words import Token

EntityKey = tuple[int, str, int, int]  # sentence index, type, first word, last word + 1 (seqeval order)
EntityFinder = Callable[[Sequence[Sequence[str]]], set[EntityKey]]


def seqeval_entities(tag_seqs: Sequence[Sequence[str]]) -> set[EntityKey]:
    from seqeval.scheme import IOB2, Entities

    found = Entities([list(s) for s in tag_seqs], IOB2, suffix=False).entities
    return {e.to_tuple() for sent in found for e in sent}


def bio_entities(tag_seqs: Sequence[Sequence[str]]) -> set[EntityKey]:
    """The entities the predictor reads: an I-X that does not continue an X opens one (`repair_bio`)."""
    out: set[EntityKey] = set()
    for n, tags in enumerate(tag_seqs):
        tokens = [Token(str(i), i, i + 1) for i in range(len(tags))]
        out.update((n, e.label, e.start, e.end) for e in bio_to_spans(tokens, list(tags), strict=False))
    return out


def prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    if n_pred == 0 and n_gold == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def scores_from_tags(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]], *, entities: EntityFinder = seqeval_entities
) -> dict[str, Any]:
    """Micro, macro (over DEPART/ARRIVEE/VIA present in gold or predictions), per entity, exact match."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold sentences but {len(y_pred)} predicted")
    gold, pred = entities(y_true), entities(y_pred)
    tp_set = gold & pred
    per_entity: dict[str, dict[str, float]] = {}
    macro_rows = []
    for ent in ENTITY_TYPES:
        g = sum(1 for e in gold if e[1] == ent)
        p = sum(1 for e in pred if e[1] == ent)
        t = sum(1 for e in tp_set if e[1] == ent)
        row = prf(t, p, g) if (g or p) else {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        per_entity[ent] = {**row, "support": g}
        if g or p:
            macro_rows.append(row)
    micro = prf(len(tp_set), len(pred), len(gold))
    if macro_rows:
        macro = {k: sum(r[k] for r in macro_rows) / len(macro_rows) for k in ("precision", "recall", "f1")}
    else:
        macro = dict(micro)
    by_sent_gold: dict[int, set[EntityKey]] = defaultdict(set)
    by_sent_pred: dict[int, set[EntityKey]] = defaultdict(set)
    for e in gold:
        by_sent_gold[e[0]].add(e)
    for e in pred:
        by_sent_pred[e[0]].add(e)
    n = len(y_true)
    exact = sum(1 for i in range(n) if by_sent_gold[i] == by_sent_pred[i])
    return {
        "n_sentences": n,
        "micro": micro,
        "macro": macro,
        "per_entity": per_entity,
        "exact_match": exact / n if n else 0.0,
        "_gold_by_sentence": by_sent_gold,
        "_pred_by_sentence": by_sent_pred,
    }


def span_scores(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """`scores_from_tags` without seqeval: well-formed gold, predictions read as the predictor reads them."""
    scores = scores_from_tags(y_true, y_pred, entities=bio_entities)
    scores.pop("_gold_by_sentence")
    scores.pop("_pred_by_sentence")
    return scores


def word_tags(
    predictions: Any, label_ids: Any, closed: Sequence[Sequence[bool]] | None = None
) -> tuple[list[list[str]], list[list[str]]]:
    """(gold, predicted) word tags, read on the labelled positions (each word's first sub-token).

    A prediction row of per-position log-probabilities (length, labels) is decoded as `trajet.predict` decodes
    (trajet.decode, with the row's `closed` words); a row of label ids is read leniently (`repair_bio`)."""
    y_true, y_pred = [], []
    for n, (pred_row, gold_row) in enumerate(zip(predictions, label_ids, strict=True)):
        keep = [i for i, g in enumerate(gold_row) if g != IGNORED]
        y_true.append([ID2LABEL[int(gold_row[i])] for i in keep])
        if getattr(pred_row, "ndim", 1) == 2:
            from trajet.decode import decode

            rows = [list(map(float, pred_row[i])) for i in keep]
            row_closed = closed[n][: len(keep)] if closed is not None else None
            y_pred.append([ID2LABEL[t] for t in decode(rows, row_closed)])
        else:
            y_pred.append(repair_bio([ID2LABEL[int(pred_row[i])] for i in keep]))
    return y_true, y_pred


def compute_token_metrics(
    predictions: Any, label_ids: Any, closed: Sequence[Sequence[bool]] | None = None
) -> dict[str, float]:
    """The flat validation metrics the Trainer logs and selects checkpoints on (`f1_macro` by default)."""
    report = scores_from_tags(*word_tags(predictions, label_ids, closed))
    out = {
        "f1_micro": report["micro"]["f1"],
        "f1_macro": report["macro"]["f1"],
        "precision_micro": report["micro"]["precision"],
        "recall_micro": report["micro"]["recall"],
        "exact_match": report["exact_match"],
    }
    for ent in ENTITY_TYPES:
        out[f"f1_{ent}"] = report["per_entity"][ent]["f1"]
    return out
