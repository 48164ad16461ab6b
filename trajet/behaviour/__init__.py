"""Behavioural tests for models (`trajet check`): minimum functionality, invariance and directional tests
on hand-written French requests filled with gazetteer places. Never imported by training."""

from trajet.behaviour.report import report_table
from trajet.behaviour.suite import (
    DEFAULT_N_PER_TEST,
    SUITE_VERSION,
    BehaviourTest,
    Case,
    build_suite,
    check_model,
    run_suite,
)

__all__ = [
    "DEFAULT_N_PER_TEST", "SUITE_VERSION", "BehaviourTest", "Case", "build_suite", "check_model", "report_table",
    "run_suite",
]
