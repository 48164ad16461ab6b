"""Label Studio tasks: the JSON that annotation teams import into, and export from, Label Studio.

Annotators work in Label Studio rather than in a text editor, so Trajet speaks its documented task format
(https://labelstud.io/guide/task_format, https://labelstud.io/guide/predictions) instead of asking for a
hand conversion. A task is `{"id", "data": {"text"}, "annotations": [...], "predictions": [...]}`; an NER span
is a result `{"id", "from_name": "label", "to_name": "text", "type": "labels", "value": {"start", "end",
"text", "labels": [LABEL]}}` with character offsets into `data.text`.

This module writes pre-annotation tasks (the model's spans under `predictions`, which Label Studio shows as a
starting point and never counts as a human annotation), annotations a task is imported with (a review queue's
current labels), and the labeling config those tasks expect. Reading an
export back is ingestion's job (`trajet.parsers.parse_labelstudio`), so it gets the same validation and
quarantine as every other input format. Only the standard library and the label set are imported here, so
any command may call it without loading a model or the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trajet.labels import ENTITY_TYPES

# The control and object names of LABEL_CONFIG: results must name them or Label Studio ignores the region.
FROM_NAME = "label"
TO_NAME = "text"
RESULT_TYPE = "labels"

LABEL_CONFIG = (
    "<View>\n"
    f'  <Labels name="{FROM_NAME}" toName="{TO_NAME}">\n'
    + "".join(f'    <Label value="{label}"/>\n' for label in ENTITY_TYPES)
    + "  </Labels>\n"
    f'  <Text name="{TO_NAME}" value="${TO_NAME}" granularity="word"/>\n'
    "</View>\n"
)
"""The project's labeling config: word granularity, so annotators' selections snap to whole words (the
token-boundary rule ingestion enforces)."""


def span_result(text: str, start: int, end: int, label: str, *, result_id: str,
                score: float | None = None) -> dict[str, Any]:
    """One `labels` result; `value.text` is written so that a reader can check the offsets against it."""
    result: dict[str, Any] = {
        "id": result_id, "from_name": FROM_NAME, "to_name": TO_NAME, "type": RESULT_TYPE,
        "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]},
    }
    if score is not None:
        result["score"] = round(float(score), 4)
    return result


def annotation(text: str, spans: Sequence[Mapping[str, Any]], *, result_prefix: str = "a") -> dict[str, Any]:
    """A submitted annotation of `spans` (`{"start", "end", "label"}`), as Label Studio imports one with a task:
    a reviewer sees it as the current labels, corrects or submits it, and the export gives it back."""
    ordered = sorted(spans, key=lambda e: (e["start"], e["end"]))
    return {"result": [span_result(text, int(e["start"]), int(e["end"]), str(e["label"]),
                                   result_id=f"{result_prefix}{k + 1}") for k, e in enumerate(ordered)],
            "was_cancelled": False, "ground_truth": False}


def prediction_tasks(texts: Sequence[str], spans: Sequence[Sequence[Mapping[str, Any]]], *,
                     model_version: str | Sequence[str],
                     task_scores: Sequence[float | None] | None = None,
                     data: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Pre-annotation tasks: per text, the model's spans (`{"start", "end", "label"[, "score"]}`, as
    `Predictor.predict` returns them in `entities`) as one prediction of `model_version` (one for all, or one
    per text).

    `task_scores` sets each prediction's `score`, by which Label Studio's Data Manager sorts tasks (a suggester
    passes its uncertainty ranking there); without it the score is the least confident span's, so the tasks
    the model is least sure of sort first. `data` adds fields to each task's `data` (a review reason, a
    group); `text` stays the text. Tasks carry no `annotations`: nothing here is a human label, so ingesting
    this file unchanged quarantines every task as "not annotated".
    """
    if len(spans) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
    if task_scores is not None and len(task_scores) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(task_scores)} task scores")
    if data is not None and len(data) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(data)} data records")
    versions = [model_version] * len(texts) if isinstance(model_version, str) else list(model_version)
    if len(versions) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(versions)} model versions")
    tasks = []
    for i, (text, ents) in enumerate(zip(texts, spans, strict=True)):
        results = [
            span_result(text, int(e["start"]), int(e["end"]), str(e["label"]), result_id=f"t{i + 1}r{k + 1}",
                        score=e.get("score"))
            for k, e in enumerate(sorted(ents, key=lambda e: (e["start"], e["end"])))
        ]
        prediction: dict[str, Any] = {"model_version": versions[i], "result": results}
        score = task_scores[i] if task_scores is not None else None
        if score is None:
            span_scores = [r["score"] for r in results if "score" in r]
            score = min(span_scores) if span_scores else None
        if score is not None:
            prediction["score"] = round(float(score), 4)
        tasks.append({"data": {**(data[i] if data is not None else {}), "text": text}, "predictions": [prediction]})
    return tasks


def write_tasks(path: str | Path, tasks: Sequence[Mapping[str, Any]]) -> int:
    """Write tasks as the JSON array Label Studio imports (UTF-8, accents kept); returns how many."""
    Path(path).write_text(json.dumps(list(tasks), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return len(tasks)
