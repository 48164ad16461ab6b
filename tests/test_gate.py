"""The promotion gate on hand-built `full_evaluation` outputs (the shape contracts.md fixes)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tests.registry_helpers import evaluation
from trajet.errors import TrajetError
from trajet.gate import GateConfig, GateDecision, decide

CHAMPION = evaluation(0.960, 0.97, 0.96, 0.95, groups={"terse": 0.90, "stations": 0.85, "no_trip": 1.0})


def by_name(decision: GateDecision) -> dict:
    return {r.name: r for r in decision.rules}


def test_candidate_better_everywhere_passes_every_rule():
    cand = evaluation(0.970, 0.975, 0.965, 0.97, groups={"terse": 0.92, "stations": 0.86, "no_trip": 1.0})
    decision = decide(cand, CHAMPION, GateConfig())
    assert decision.passed
    names = set(by_name(decision))
    assert names == {
        "min_macro_f1",
        "same_test_set",
        "macro_f1_vs_champion",
        "entity_f1:ARRIVEE",
        "entity_f1:DEPART",
        "entity_f1:VIA",
        "challenge_group_f1:no_trip",
        "challenge_group_f1:stations",
        "challenge_group_f1:terse",
        "behaviour_pass_rate",
    }
    assert by_name(decision)["behaviour_pass_rate"].skipped  # these evaluations ran no behavioural suite
    rule = by_name(decision)["macro_f1_vs_champion"]
    assert rule.value == pytest.approx(0.97) and rule.threshold == pytest.approx(0.96) and rule.passed
    assert decision.summary().startswith("passed: 9/9")


def test_fails_on_absolute_threshold_even_when_better_than_champion():
    weak_champion = evaluation(0.90, 0.9, 0.9, 0.9)
    decision = decide(evaluation(0.94, 0.95, 0.95, 0.92), weak_champion, GateConfig(min_f1=0.95))
    assert not decision.passed
    assert [r.name for r in decision.failed_rules] == ["min_macro_f1"]
    rule = by_name(decision)["min_macro_f1"]
    assert (rule.value, rule.threshold) == (pytest.approx(0.94), 0.95)


def test_fails_on_relative_rule_and_tolerance_lets_it_through():
    cand = evaluation(0.955, 0.97, 0.96, 0.95, groups={"terse": 0.90, "stations": 0.85, "no_trip": 1.0})
    decision = decide(cand, CHAMPION, GateConfig())
    assert [r.name for r in decision.failed_rules] == ["macro_f1_vs_champion"]
    assert decide(cand, CHAMPION, GateConfig(tolerance=0.01)).passed


def test_fails_when_one_entity_drops_more_than_allowed():
    # macro F1 improves, but VIA loses 0.02 (> 0.01 allowed): the gate refuses it.
    cand = evaluation(0.965, 0.99, 0.99, 0.93, groups={"terse": 0.90, "stations": 0.85, "no_trip": 1.0})
    decision = decide(cand, CHAMPION, GateConfig())
    assert [r.name for r in decision.failed_rules] == ["entity_f1:VIA"]
    via = by_name(decision)["entity_f1:VIA"]
    assert via.value == pytest.approx(0.93) and via.threshold == pytest.approx(0.94)
    # A drop of exactly the allowed amount passes (float noise does not flip it).
    cand_ok = evaluation(0.965, 0.99, 0.99, 0.94, groups={"terse": 0.90, "stations": 0.85, "no_trip": 1.0})
    assert decide(cand_ok, CHAMPION, GateConfig()).passed


def test_fails_when_one_challenge_group_drops():
    cand = evaluation(0.97, 0.98, 0.97, 0.96, groups={"terse": 0.86, "stations": 0.85, "no_trip": 1.0})
    decision = decide(cand, CHAMPION, GateConfig())
    assert [r.name for r in decision.failed_rules] == ["challenge_group_f1:terse"]
    assert "terse" in decision.summary()
    assert decide(cand, CHAMPION, GateConfig(max_group_drop=0.05)).passed


def test_missing_group_or_missing_challenge_fails():
    cand = evaluation(0.97, 0.98, 0.97, 0.96, groups={"terse": 0.95, "stations": 0.9})
    assert [r.name for r in decide(cand, CHAMPION).failed_rules] == ["challenge_group_f1:no_trip"]
    no_challenge = evaluation(0.97, 0.98, 0.97, 0.96)
    assert [r.name for r in decide(no_challenge, CHAMPION).failed_rules] == ["challenge_present"]


def test_no_champion_applies_absolute_rules_only():
    cand = evaluation(0.951, 0.5, 0.99, 0.99, groups={"terse": 0.1})
    decision = decide(cand, None, GateConfig())
    assert decision.passed and not decision.has_champion
    assert [r.name for r in decision.rules] == ["min_macro_f1", "behaviour_pass_rate"]
    assert decision.rules[1].skipped and "without the behavioural suite" in decision.rules[1].detail
    assert not decide(evaluation(0.949, 0.99, 0.99, 0.99), None).passed


def test_different_test_split_is_refused():
    cand = evaluation(0.99, 0.99, 0.99, 0.99, n=210, groups={"terse": 0.95, "stations": 0.9, "no_trip": 1.0})
    assert [r.name for r in decide(cand, CHAMPION).failed_rules] == ["same_test_set"]


def test_decision_round_trips_and_renders_a_table():
    cand = evaluation(0.955, 0.97, 0.96, 0.95, groups={"terse": 0.90, "stations": 0.85, "no_trip": 1.0})
    decision = decide(cand, CHAMPION, GateConfig(min_f1=0.9))
    data = decision.to_dict()
    assert data["failed"] == ["macro_f1_vs_champion"] and data["config"]["min_f1"] == 0.9
    again = GateDecision.from_dict(data)
    assert again.rules == decision.rules and again.passed is False
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(decision.table())
    text = out.getvalue()
    assert "FAILED" in text and "macro_f1_vs_champion" in text and "0.9550" in text and "FAIL" in text


def test_config_validation_and_env(monkeypatch):
    with pytest.raises(TrajetError, match="min_f1"):
        GateConfig(min_f1=1.5)
    monkeypatch.setenv("TRAJET_GATE_MIN_F1", "0.8")
    monkeypatch.setenv("TRAJET_GATE_MAX_GROUP_DROP", "0.1")
    cfg = GateConfig.from_env(tolerance=0.02)
    assert (cfg.min_f1, cfg.tolerance, cfg.max_entity_drop, cfg.max_group_drop) == (0.8, 0.02, 0.01, 0.1)
    monkeypatch.setenv("TRAJET_GATE_TOLERANCE", "abc")
    with pytest.raises(TrajetError, match="TRAJET_GATE_TOLERANCE"):
        GateConfig.from_env()


def test_malformed_report_is_a_clear_error():
    with pytest.raises(TrajetError, match="macro F1"):
        decide({"test": {"micro": {}}, "challenge": None}, None)


# ------------------------------------------------------------------------------ behavioural-suite rules


def behaviour(rates: dict[str, float], fingerprint: str = "f00d") -> dict:
    """A trajet.behaviour report reduced to what the gate reads."""
    tests = {name: {"kind": name.split("_")[0].upper(), "n": 100, "passed": round(r * 100), "pass_rate": r}
             for name, r in rates.items()}
    return {"fingerprint": fingerprint, "overall": {"pass_rate": sum(rates.values()) / len(rates)}, "tests": tests}


def with_behaviour(report: dict, rates: dict[str, float], fingerprint: str = "f00d") -> dict:
    return {**report, "behaviour": behaviour(rates, fingerprint)}


GOOD = evaluation(0.970, 0.975, 0.965, 0.97, groups={"terse": 0.92, "stations": 0.86, "no_trip": 1.0})


def test_behaviour_floor_without_a_champion():
    ok = decide(with_behaviour(GOOD, {"mft_question": 0.9, "inv_uppercase": 0.96}), None, GateConfig())
    assert ok.passed and by_name(ok)["behaviour_pass_rate"].value == pytest.approx(0.93)
    low = decide(with_behaviour(GOOD, {"mft_question": 0.6, "inv_uppercase": 0.96}), None, GateConfig())
    assert [r.name for r in low.failed_rules] == ["behaviour_pass_rate"]
    assert decide(with_behaviour(GOOD, {"mft_question": 0.4, "inv_uppercase": 0.7}), None,
                  GateConfig(min_behaviour_pass_rate=0.5)).passed


def test_a_test_dropping_more_than_the_tolerance_fails_against_the_champion():
    champion = with_behaviour(CHAMPION, {"mft_question": 0.90, "inv_uppercase": 0.80, "dir_add_via": 0.70})
    cand = with_behaviour(GOOD, {"mft_question": 0.95, "inv_uppercase": 0.69, "dir_add_via": 0.61})
    cand = {**cand, "behaviour": {**cand["behaviour"], "overall": {**cand["behaviour"]["overall"], "pass_rate": 0.9}}}
    decision = decide(cand, champion, GateConfig())
    assert [r.name for r in decision.failed_rules] == ["behaviour:inv_uppercase"]
    rule = by_name(decision)["behaviour:inv_uppercase"]
    assert rule.value == pytest.approx(0.69) and rule.threshold == pytest.approx(0.70)
    assert by_name(decision)["behaviour:dir_add_via"].passed  # 0.09 drop, within 0.1
    assert by_name(decision)["same_behaviour_suite"].passed
    assert decide(cand, champion, GateConfig(max_behaviour_drop=0.15)).passed


def test_an_old_champion_without_a_behaviour_report_skips_the_relative_rule():
    cand = with_behaviour(GOOD, {"mft_question": 0.95, "inv_uppercase": 0.94})
    decision = decide(cand, CHAMPION, GateConfig())
    assert decision.passed
    skipped = by_name(decision)["behaviour_vs_champion"]
    assert skipped.skipped and skipped.passed and "champion was evaluated without" in skipped.detail
    assert not any(r.name.startswith("behaviour:") for r in decision.rules)
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(decision.table())
    assert "skip" in out.getvalue() and "behaviour_pass_rate" in out.getvalue()
    assert "1 skipped" in decision.summary()
    assert GateDecision.from_dict(decision.to_dict()).rules == decision.rules


def test_a_different_behaviour_suite_refuses_the_comparison():
    champion = with_behaviour(CHAMPION, {"mft_question": 0.90}, fingerprint="aaaa")
    cand = with_behaviour(GOOD, {"mft_question": 0.99}, fingerprint="bbbb")
    decision = decide(cand, champion, GateConfig())
    assert [r.name for r in decision.failed_rules] == ["same_behaviour_suite"]


def test_a_malformed_behaviour_report_is_a_clear_error():
    with pytest.raises(TrajetError, match="candidate's behaviour report"):
        decide({**GOOD, "behaviour": {"overall": {}}}, None)


def test_the_gate_table_shows_counts_as_integers_and_scores_with_decimals():
    from rich.console import Console

    decision = decide(GOOD, CHAMPION)
    console = Console(record=True, width=200)
    console.print(decision.table())
    text = console.export_text()
    n = int(by_name(decision)["same_test_set"].value)
    assert f" {n} " in text and f"{n}.0000" not in text
    assert "0.9700" in text or "0.9750" in text
