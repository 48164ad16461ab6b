"""Row-level validation with a Great Expectations (GX Core 1.x) suite.

Parsing (trajet.parsers) turns every input row into derived columns -- counts of out-of-bounds spans, of
labels per type, the text itself -- and the expectations below hold the rules over those columns. The GX
result, in COMPLETE format keyed by `row_id`, names every failing row of every expectation, so each bad row
is quarantined with all of its reasons. great_expectations costs seconds to import: it is imported inside
`run_suite` only, never at module import, so the rest of the CLI stays fast.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

# Reasons a row is quarantined for. They are stable strings: tests, reports and people key on them.
UNPARSEABLE = "unparseable line"
MISSING_FIELD = "missing field"
EXTRA_FIELD = "extra field"
WRONG_TYPE = "wrong field type"
EMPTY_TEXT = "empty text"
TOO_LONG = "text over 512 characters"
CONTROL_CHARS = "control characters"
OUT_OF_BOUNDS = "span out of bounds"
OFF_BOUNDARY = "span not on token boundaries"
OVERLAP = "overlapping spans"
UNKNOWN_LABEL = "unknown label"
MALFORMED_BIO = "malformed BIO"
COUNT_MISMATCH = "token/tag count mismatch"
RETOKENIZE = "tokens do not match the tokenizer"
MULTI_DEPART = "more than one DEPART"
MULTI_ARRIVEE = "more than one ARRIVEE"
MANY_VIA = "more than 5 VIA"
UNTRIMMED = "span edge is space or punctuation"
BAD_SPLIT = "unknown split"
DUPLICATE_IN_BATCH = "duplicate within the batch"
CONFLICT = "annotation conflict"
# Label Studio exports (trajet.parsers.parse_labelstudio).
NOT_ANNOTATED = "not annotated"
SPAN_TEXT = "span text differs from its offsets"
# Whole-batch reasons.
NOT_UTF8 = "not UTF-8"
NOT_FORMAT = "not the declared format"
HELD = "batch held"

MAX_TEXT_CHARS = 512
MAX_VIA = 5
# C0/C1 controls (tab and newline included: they break CoNLL and one-line JSONL), lone surrogates, and the
# Unicode line/paragraph separators that split lines in some readers.
# Lone surrogates cannot reach pandas/pyarrow at all: they are counted in `n_unencodable` instead.
CONTROL_REGEX = "[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]"

# (expectation class name, kwargs, reason). Count columns are derived in trajet.parsers.
ROW_RULES: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("ExpectColumnValuesToBeBetween", {"column": "unparseable", "max_value": 0}, UNPARSEABLE),
    ("ExpectColumnValuesToBeBetween", {"column": "n_missing", "max_value": 0}, MISSING_FIELD),
    ("ExpectColumnValuesToBeBetween", {"column": "n_extra", "max_value": 0}, EXTRA_FIELD),
    ("ExpectColumnValuesToBeBetween", {"column": "n_wrong_type", "max_value": 0}, WRONG_TYPE),
    ("ExpectColumnValuesToMatchRegex", {"column": "text", "regex": "\\S"}, EMPTY_TEXT),
    ("ExpectColumnValueLengthsToBeBetween", {"column": "text", "max_value": MAX_TEXT_CHARS}, TOO_LONG),
    ("ExpectColumnValuesToNotMatchRegex", {"column": "text", "regex": CONTROL_REGEX}, CONTROL_CHARS),
    ("ExpectColumnValuesToBeBetween", {"column": "n_unencodable", "max_value": 0}, CONTROL_CHARS),
    ("ExpectColumnValuesToBeBetween", {"column": "n_out_of_bounds", "max_value": 0}, OUT_OF_BOUNDS),
    ("ExpectColumnValuesToBeBetween", {"column": "n_off_boundary", "max_value": 0}, OFF_BOUNDARY),
    ("ExpectColumnValuesToBeBetween", {"column": "n_overlap", "max_value": 0}, OVERLAP),
    ("ExpectColumnValuesToBeBetween", {"column": "n_unknown_label", "max_value": 0}, UNKNOWN_LABEL),
    ("ExpectColumnValuesToBeBetween", {"column": "n_malformed_bio", "max_value": 0}, MALFORMED_BIO),
    ("ExpectColumnValuesToBeBetween", {"column": "n_tag_mismatch", "max_value": 0}, COUNT_MISMATCH),
    ("ExpectColumnValuesToBeBetween", {"column": "n_retokenize", "max_value": 0}, RETOKENIZE),
    ("ExpectColumnValuesToBeBetween", {"column": "n_depart", "max_value": 1}, MULTI_DEPART),
    ("ExpectColumnValuesToBeBetween", {"column": "n_arrivee", "max_value": 1}, MULTI_ARRIVEE),
    ("ExpectColumnValuesToBeBetween", {"column": "n_via", "max_value": MAX_VIA}, MANY_VIA),
    ("ExpectColumnValuesToBeBetween", {"column": "n_untrimmed", "max_value": 0}, UNTRIMMED),
    ("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": ["train", "test"]}, BAD_SPLIT),
    ("ExpectColumnValuesToBeBetween", {"column": "n_not_annotated", "max_value": 0}, NOT_ANNOTATED),
    ("ExpectColumnValuesToBeBetween", {"column": "n_span_text", "max_value": 0}, SPAN_TEXT),
)
ROW_COLUMNS: tuple[str, ...] = tuple(sorted({kw["column"] for _, kw, _ in ROW_RULES}))

# Rules that need the rest of the batch and the store; run only on rows that passed ROW_RULES, so a bad
# first copy of a phrase never makes a good later copy a "duplicate".
STORE_RULES: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("ExpectColumnValuesToBeBetween", {"column": "dup_rank", "max_value": 0}, DUPLICATE_IN_BATCH),
    ("ExpectColumnValuesToBeBetween", {"column": "conflict", "max_value": 0}, CONFLICT),
)
STORE_COLUMNS: tuple[str, ...] = ("conflict", "dup_rank")

SUITES = {"rows": ROW_RULES, "store": STORE_RULES}


@dataclass
class _Validator:
    definitions: dict[str, Any]


_lock = threading.Lock()
_validator: _Validator | None = None
# One suite run at a time per process: GX's context is not known to be thread-safe, and batches ingested by
# parallel threads (the ingest flow's fan-out) lose nothing by it, the suite being Python under the GIL anyway.
_run_lock = threading.Lock()


def _build() -> _Validator:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = ctx.data_sources.add_pandas("trajet_ingest").add_dataframe_asset("rows")
    definitions = {}
    for name, rules in SUITES.items():
        batch_def = asset.add_batch_definition_whole_dataframe(f"{name}_frame")
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"trajet_{name}"))
        for cls_name, kwargs, reason in rules:
            suite.add_expectation(getattr(gx.expectations, cls_name)(**kwargs, meta={"reason": reason}))
        definitions[name] = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"trajet_{name}", data=batch_def, suite=suite)
        )
    return _Validator(definitions)


def _get_validator() -> _Validator:
    global _validator
    with _lock:
        if _validator is None:
            _validator = _build()
        return _validator


def run_suite(frame: Any, suite: str = "rows") -> dict[int, list[str]]:
    """Run a suite over `frame` (pandas, a `row_id` column + the suite's columns): row_id -> reasons.

    Every failing row of every expectation is collected; a row that passes everything is absent.
    """
    if len(frame) == 0:
        return {}
    definition = _get_validator().definitions[suite]
    with _run_lock:
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["row_id"]},
        )
    failures: dict[int, list[str]] = {}
    for res in result.results:
        exc = res.exception_info or {}
        if exc.get("raised_exception"):
            raise RuntimeError(f"validation rule {res.expectation_config.type} failed to run: {exc}")
        if res.success:
            continue
        reason = res.expectation_config.meta["reason"]
        for item in res.result.get("unexpected_index_list") or []:
            row_reasons = failures.setdefault(int(item["row_id"]), [])
            if reason not in row_reasons:
                row_reasons.append(reason)
    return failures
