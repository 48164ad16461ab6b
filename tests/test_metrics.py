"""trajet.metrics: the seqeval-free span scores agree with seqeval's strict IOB2 and with the seqeval path of
`scores_from_tags`; predicted tags are read as the predictor reads them."""

from __future__ import annotations

import pytest

from trajet.labels import LABEL2ID
from trajet.metrics import (
    bio_entities,
    scores_from_tags,
    seqeval_entities,
    span_scores,
    word_tags,
)
from trajet.tags import repair_bio

SEQUENCES = [
    # (gold, predicted): multi-word entities, adjacent same-type entities, boundary and label errors, misses,
    # spurious entities, sentences without entities
    (["O", "B-DEPART", "O", "B-ARRIVEE", "I-ARRIVEE"], ["O", "B-DEPART", "O", "B-ARRIVEE", "I-ARRIVEE"]),
    (["B-DEPART", "I-DEPART", "O", "B-ARRIVEE"], ["B-DEPART", "O", "O", "B-ARRIVEE"]),
    (["O", "B-VIA", "B-VIA", "O"], ["O", "B-VIA", "I-VIA", "O"]),
    (["B-DEPART", "O", "B-ARRIVEE", "O", "B-VIA"], ["B-ARRIVEE", "O", "B-DEPART", "O", "B-VIA"]),
    (["O", "O", "O"], ["O", "B-VIA", "O"]),
    (["O", "O"], ["O", "O"]),
    (["B-ARRIVEE", "I-ARRIVEE", "I-ARRIVEE"], ["B-ARRIVEE", "I-ARRIVEE", "O"]),
    (["O", "B-DEPART", "I-DEPART", "O", "B-ARRIVEE", "O", "B-VIA", "I-VIA"],
     ["O", "B-DEPART", "I-DEPART", "O", "B-ARRIVEE", "O", "B-VIA", "I-VIA"]),
    (["B-DEPART", "O"], ["O", "O"]),
]


def _seqeval(gold, pred) -> dict:
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    report = classification_report(gold, pred, output_dict=True, **kw)
    return {"micro": (precision_score(gold, pred, **kw), recall_score(gold, pred, **kw), f1_score(gold, pred, **kw)),
            "macro_f1": report["macro avg"]["f1-score"],
            "per_entity": {k: v["f1-score"] for k, v in report.items() if k.isupper()}}


@pytest.mark.parametrize("subset", [slice(None), slice(0, 1), slice(1, 4), slice(4, 6), slice(3, 9)])
def test_span_scores_match_seqeval_strict(subset):
    gold = [g for g, _ in SEQUENCES[subset]]
    pred = [p for _, p in SEQUENCES[subset]]
    ours = span_scores(gold, pred)
    ref = _seqeval(gold, pred)
    micro = ours["micro"]
    assert any(t != "O" for s in gold + pred for t in s)  # seqeval scores 0 where neither side has an entity
    assert (micro["precision"], micro["recall"], micro["f1"]) == pytest.approx(ref["micro"])
    if ref["per_entity"]:
        assert ours["macro"]["f1"] == pytest.approx(ref["macro_f1"])
    for ent, f1 in ref["per_entity"].items():
        assert ours["per_entity"][ent]["f1"] == pytest.approx(f1)
    # and the seqeval path agrees on everything, exact match included, to the last bit
    project = scores_from_tags(gold, pred)
    for key in ("micro", "macro", "per_entity", "exact_match", "n_sentences"):
        assert ours[key] == project[key], key


def test_both_entity_finders_agree_on_well_formed_tags():
    seqs = [s for pair in SEQUENCES for s in pair]
    assert bio_entities(seqs) == seqeval_entities(seqs)


def test_span_scores_read_malformed_predictions_like_the_predictor():
    """An I-X that does not continue an X opens one, as trajet predict reads it (repair_bio, then seqeval)."""
    gold = [["O", "B-DEPART", "O", "B-ARRIVEE"], ["B-VIA", "I-VIA", "O"]]
    pred = [["O", "I-DEPART", "O", "I-ARRIVEE"], ["B-VIA", "I-DEPART", "O"]]
    ours = span_scores(gold, pred)
    ref = _seqeval(gold, [repair_bio(p) for p in pred])
    assert (ours["micro"]["precision"], ours["micro"]["recall"], ours["micro"]["f1"]) == pytest.approx(ref["micro"])
    assert ours["micro"]["f1"] == pytest.approx(2 / 3.5)  # 2 right of 4 predicted, 2 of 3 gold


def test_word_tags_read_the_labelled_positions_only():
    """Label ids are read on the words' first sub-tokens (gold != -100), leniently; the rest is ignored."""
    gold = [-100, LABEL2ID["B-DEPART"], -100, LABEL2ID["O"], LABEL2ID["B-ARRIVEE"], -100]
    pred = [LABEL2ID["B-VIA"], LABEL2ID["I-DEPART"], LABEL2ID["B-VIA"], LABEL2ID["O"], LABEL2ID["I-ARRIVEE"], 0]
    y_true, y_pred = word_tags([pred], [gold])
    assert y_true == [["B-DEPART", "O", "B-ARRIVEE"]]
    assert y_pred == [["B-DEPART", "O", "B-ARRIVEE"]]
