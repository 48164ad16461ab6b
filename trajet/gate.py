"""Promotion gate: decides whether a candidate may replace the champion.

Both models are evaluated in the same run on the same test split (and challenge set): the champion's
stored numbers are never trusted for the comparison, because the test split grows with every snapshot.
Every rule is reported with its value, its threshold and its outcome, so a refusal explains itself.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from trajet.errors import TrajetError

# Comparisons allow for float noise: 0.96 - 0.01 must not fail against 0.95.
EPSILON = 1e-9


@dataclass(frozen=True)
class GateConfig:
    """Thresholds, all on F1 in [0, 1]. Env overrides: TRAJET_GATE_MIN_F1, TRAJET_GATE_TOLERANCE,
    TRAJET_GATE_MAX_ENTITY_DROP, TRAJET_GATE_MAX_GROUP_DROP."""

    min_f1: float = 0.95
    tolerance: float = 0.0
    max_entity_drop: float = 0.01
    max_group_drop: float = 0.03

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or math.isnan(value) or not 0.0 <= value <= 1.0:
                raise TrajetError(f"gate setting {f.name}={value!r}: expected a number between 0 and 1")

    @classmethod
    def from_env(cls, **overrides: float) -> GateConfig:
        values: dict[str, float] = {}
        for f in fields(cls):
            env = f"TRAJET_GATE_{f.name.upper()}"
            if env in os.environ:
                try:
                    values[f.name] = float(os.environ[env])
                except ValueError:
                    raise TrajetError(f"{env}={os.environ[env]!r}: not a number") from None
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class GateRule:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str


@dataclass
class GateDecision:
    passed: bool
    rules: list[GateRule]
    config: GateConfig = field(default_factory=GateConfig)
    has_champion: bool = False

    @property
    def failed_rules(self) -> list[GateRule]:
        return [r for r in self.rules if not r.passed]

    def summary(self) -> str:
        if self.passed:
            scope = "all rules" if self.has_champion else "absolute rules (no champion yet)"
            return f"passed: {len(self.rules)}/{len(self.rules)} {scope}"
        return "failed: " + "; ".join(r.detail for r in self.failed_rules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "has_champion": self.has_champion,
            "config": self.config.to_dict(),
            "rules": [asdict(r) for r in self.rules],
            "failed": [r.name for r in self.failed_rules],
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateDecision:
        return cls(
            passed=bool(data["passed"]),
            rules=[GateRule(**r) for r in data["rules"]],
            config=GateConfig(**data.get("config", {})),
            has_champion=bool(data.get("has_champion")),
        )

    def table(self) -> Any:
        from rich.table import Table

        verdict = "[bold green]PASSED[/]" if self.passed else "[bold red]FAILED[/]"
        table = Table(title=f"Promotion gate: {verdict}", title_justify="left")
        table.add_column("rule")
        table.add_column("value", justify="right")
        table.add_column("threshold", justify="right")
        table.add_column("result", justify="center")
        table.add_column("detail", overflow="fold")
        for rule in self.rules:
            table.add_row(
                rule.name,
                _fmt(rule.value),
                _fmt(rule.threshold),
                "[green]pass[/]" if rule.passed else "[red]FAIL[/]",
                rule.detail,
            )
        return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _at_least(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold - EPSILON


def _report(evaluation: dict[str, Any] | None, who: str, part: str = "test") -> dict[str, Any] | None:
    if evaluation is None:
        return None
    if not isinstance(evaluation, dict) or part not in evaluation:
        raise TrajetError(f"gate: the {who}'s evaluation has no {part!r} report")
    report = evaluation[part]
    if report is None:
        return None
    if not isinstance(report, dict):
        raise TrajetError(f"gate: the {who}'s {part} report is not a mapping")
    return report


def _macro_f1(report: dict[str, Any], who: str) -> float:
    try:
        return float(report["macro"]["f1"])
    except (KeyError, TypeError, ValueError):
        raise TrajetError(f"gate: the {who}'s test report has no macro F1") from None


def _entity_f1(report: dict[str, Any], entity: str) -> float | None:
    value = (report.get("per_entity") or {}).get(entity)
    return float(value["f1"]) if isinstance(value, dict) and "f1" in value else None


def decide(
    candidate: dict[str, Any], champion: dict[str, Any] | None, config: GateConfig | None = None
) -> GateDecision:
    """Applies the rules to two `evaluate.full_evaluation` outputs ({"test": report, "challenge": report|None})
    computed in the same run. With no champion only the absolute rule applies."""
    config = config or GateConfig()
    cand_test = _report(candidate, "candidate")
    if cand_test is None:
        raise TrajetError("gate: the candidate has no test report")
    cand_f1 = _macro_f1(cand_test, "candidate")
    rules = [
        GateRule(
            "min_macro_f1",
            cand_f1,
            config.min_f1,
            _at_least(cand_f1, config.min_f1),
            f"candidate macro F1 {cand_f1:.4f} vs minimum {config.min_f1:.4f}",
        )
    ]
    champ_test = _report(champion, "champion")
    if champ_test is not None:
        rules.extend(_relative_rules(candidate, champion or {}, cand_test, champ_test, config))
    return GateDecision(
        passed=all(r.passed for r in rules), rules=rules, config=config, has_champion=champ_test is not None
    )


def _relative_rules(
    candidate: dict[str, Any],
    champion: dict[str, Any],
    cand_test: dict[str, Any],
    champ_test: dict[str, Any],
    config: GateConfig,
) -> list[GateRule]:
    rules: list[GateRule] = []
    n_cand, n_champ = cand_test.get("n_sentences"), champ_test.get("n_sentences")
    if n_cand is not None and n_champ is not None:
        rules.append(
            GateRule(
                "same_test_set",
                float(n_cand),
                float(n_champ),
                n_cand == n_champ,
                f"candidate scored on {n_cand} test sentences, champion on {n_champ}"
                + ("" if n_cand == n_champ else ": not the same test split, comparison refused"),
            )
        )
    cand_f1, champ_f1 = _macro_f1(cand_test, "candidate"), _macro_f1(champ_test, "champion")
    threshold = champ_f1 - config.tolerance
    rules.append(
        GateRule(
            "macro_f1_vs_champion",
            cand_f1,
            threshold,
            _at_least(cand_f1, threshold),
            f"candidate macro F1 {cand_f1:.4f} vs champion {champ_f1:.4f} - tolerance {config.tolerance:.4f}",
        )
    )
    for entity in sorted(champ_test.get("per_entity") or {}):
        before = _entity_f1(champ_test, entity)
        if before is None:
            continue
        after = _entity_f1(cand_test, entity)
        limit = before - config.max_entity_drop
        shown = "missing" if after is None else f"{after:.4f}"
        rules.append(
            GateRule(
                f"entity_f1:{entity}",
                after,
                limit,
                _at_least(after, limit),
                f"{entity} F1 {shown} vs champion {before:.4f} (max drop {config.max_entity_drop:.4f})",
            )
        )
    rules.extend(_group_rules(candidate, champion, config))
    return rules


def _group_rules(candidate: dict[str, Any], champion: dict[str, Any], config: GateConfig) -> list[GateRule]:
    champ_challenge = _report(champion, "champion", "challenge") if "challenge" in champion else None
    if champ_challenge is None:
        return []
    cand_challenge = _report(candidate, "candidate", "challenge") if "challenge" in candidate else None
    if cand_challenge is None:
        return [
            GateRule(
                "challenge_present",
                None,
                None,
                False,
                "champion was scored on the challenge set, candidate was not",
            )
        ]
    rules = []
    cand_groups = cand_challenge.get("groups") or {}
    for group, stats in sorted((champ_challenge.get("groups") or {}).items()):
        before = float(stats["micro_f1"])
        after_stats = cand_groups.get(group)
        after = float(after_stats["micro_f1"]) if after_stats else None
        limit = before - config.max_group_drop
        shown = "missing" if after is None else f"{after:.4f}"
        rules.append(
            GateRule(
                f"challenge_group_f1:{group}",
                after,
                limit,
                _at_least(after, limit),
                f"challenge group {group!r} ({stats.get('n', '?')} sentences) F1 {shown} vs champion "
                f"{before:.4f} (max drop {config.max_group_drop:.4f})",
            )
        )
    return rules
