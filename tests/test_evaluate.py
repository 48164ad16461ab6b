"""Evaluation metrics against hand-computed strict seqeval cases."""

from __future__ import annotations

import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from trajet.evaluate import evaluate_predictions, report_table, scores_from_tags
from trajet.phrases import Entity, Phrase, parse_markup


def _ents(marked: str) -> list[Entity]:
    return list(parse_markup(marked).entities)


def test_perfect_predictions_score_one():
    gold = [parse_markup("de [Paris|D] à [Lyon|A] via [Dijon|V]"), parse_markup("[Metz|D] - [Nancy|A]")]
    rep = evaluate_predictions(gold, [list(p.entities) for p in gold])
    assert rep["n_sentences"] == 2
    assert rep["micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert rep["macro"]["f1"] == 1.0
    assert rep["per_entity"]["DEPART"]["support"] == 2
    assert rep["per_entity"]["VIA"]["support"] == 1
    assert rep["exact_match"] == 1.0
    assert rep["no_trip"] == {"n": 0, "clean": None}


def test_partial_boundary_is_a_miss_in_strict_mode():
    gold = [parse_markup("de [Saint-Malo|D] à [Le Havre|A]")]
    # "Havre" alone: wrong left boundary -> one false positive and one false negative for ARRIVEE
    pred = [_ents("de [Saint-Malo|D] à Le [Havre|A]")]
    rep = evaluate_predictions(gold, pred)
    assert rep["micro"]["precision"] == pytest.approx(1 / 2)
    assert rep["micro"]["recall"] == pytest.approx(1 / 2)
    assert rep["per_entity"]["DEPART"]["f1"] == 1.0
    assert rep["per_entity"]["ARRIVEE"]["f1"] == 0.0
    assert rep["macro"]["f1"] == pytest.approx(0.5)  # DEPART 1.0, ARRIVEE 0.0; VIA absent everywhere
    assert rep["exact_match"] == 0.0


def test_swapped_labels_score_zero():
    gold = [parse_markup("de [Paris|D] à [Lyon|A]")]
    pred = [_ents("de [Paris|A] à [Lyon|D]")]
    rep = evaluate_predictions(gold, pred)
    assert rep["micro"]["f1"] == 0.0
    assert rep["per_entity"]["DEPART"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_empty_predictions_and_counts():
    gold = [
        parse_markup("de [Paris|D] à [Lyon|A] via [Dijon|V]"),
        parse_markup("de [Brest|D] à [Rennes|A]"),
    ]
    pred = [_ents("de [Paris|D] à [Lyon|A] via Dijon"), []]
    rep = evaluate_predictions(gold, pred)
    # 2 true positives of 2 predicted, 5 gold
    assert rep["micro"]["precision"] == 1.0
    assert rep["micro"]["recall"] == pytest.approx(2 / 5)
    assert rep["micro"]["f1"] == pytest.approx(2 * 1.0 * 0.4 / 1.4)
    assert rep["per_entity"]["VIA"]["recall"] == 0.0
    # macro over the three types: DEPART P1 R.5, ARRIVEE P1 R.5, VIA P0 R0
    assert rep["macro"]["recall"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert rep["macro"]["f1"] == pytest.approx((2 / 3 + 2 / 3 + 0.0) / 3)
    assert rep["exact_match"] == 0.0


def test_no_trip_sentences_and_groups():
    gold = [
        Phrase("Il fait beau à Nice.", (), {"group": "negative"}),
        Phrase("J'habite à Lyon.", (), {"group": "negative"}),
        parse_markup("de [Paris|D] à [Lyon|A]", group="order"),
        parse_markup("à [Lyon|A] depuis [Paris|D]", group="order"),
    ]
    pred = [
        [],
        _ents("J'habite à [Lyon|A]."),
        _ents("de [Paris|D] à [Lyon|A]"),
        _ents("à [Lyon|D] depuis [Paris|A]"),
    ]
    rep = evaluate_predictions(gold, pred)
    assert rep["no_trip"] == {"n": 2, "clean": 0.5}
    # no gold entity in the group: its score is the share of its sentences left clean, not a 0/1 "F1"
    assert rep["groups"]["negative"] == {"n": 2, "micro_f1": 0.5, "exact_match": 0.5}
    assert rep["groups"]["order"]["n"] == 2
    assert rep["groups"]["order"]["micro_f1"] == pytest.approx(0.5)  # 2 TP of 4 predicted, 4 gold
    assert rep["groups"]["order"]["exact_match"] == 0.5
    assert rep["exact_match"] == pytest.approx(2 / 4)


def test_a_clean_no_trip_group_scores_one():
    gold = [Phrase("Bonjour.", (), {"group": "negative"})]
    rep = evaluate_predictions(gold, [[]])
    assert rep["groups"]["negative"] == {"n": 1, "micro_f1": 1.0, "exact_match": 1.0}
    assert rep["no_trip"]["clean"] == 1.0


def test_scores_agree_with_seqeval_classification_report():
    y_true = [["B-DEPART", "I-DEPART", "O", "B-ARRIVEE"], ["O", "B-VIA", "O", "B-ARRIVEE"], ["B-DEPART", "O"]]
    y_pred = [["B-DEPART", "O", "O", "B-ARRIVEE"], ["O", "B-VIA", "O", "B-DEPART"], ["B-DEPART", "O"]]
    ours = scores_from_tags(y_true, y_pred)
    ref = classification_report(y_true, y_pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    for ent in ("DEPART", "ARRIVEE", "VIA"):
        assert ours["per_entity"][ent]["f1"] == pytest.approx(ref[ent]["f1-score"])
        assert ours["per_entity"][ent]["support"] == ref[ent]["support"]
    assert ours["micro"]["f1"] == pytest.approx(ref["micro avg"]["f1-score"])
    assert ours["macro"]["f1"] == pytest.approx(ref["macro avg"]["f1-score"])


def test_strict_mode_rejects_an_i_tag_without_its_b():
    # strict IOB2: an I- that starts a chunk is not an entity at all (lenient modes would count it)
    ours = scores_from_tags([["B-DEPART", "O"]], [["I-DEPART", "O"]])
    assert ours["micro"]["precision"] == 0.0 and ours["micro"]["recall"] == 0.0


def test_mismatched_lengths_are_a_clear_error():
    from trajet.errors import TrajetError

    with pytest.raises(TrajetError, match="2 gold phrases but 1 predictions"):
        evaluate_predictions([parse_markup("[Paris|D]"), parse_markup("[Lyon|D]")], [[]])


def test_report_table_renders():
    from rich.console import Console

    gold = [parse_markup("de [Paris|D] à [Lyon|A]", group="basic")]
    rep = evaluate_predictions(gold, [list(gold[0].entities)])
    console = Console(record=True, width=120)
    console.print(report_table(rep))
    text = console.export_text()
    assert "DEPART" in text and "group basic" in text and "1.0000" in text
