"""The review queue the audit fills (trajet.audit): list it, show an item, export it for annotators.

An export is what an annotator edits: rows in the ingestion JSONL format whose `entities` are the annotation
as it is stored (the model's version, the findings and the item id ride under `meta`, which ingestion accepts),
or Label Studio tasks with the stored annotation under `annotations` and the model's spans under
`predictions`. Either comes back through `trajet review accept` (trajet.review_accept), which reads it with
ingestion's own parsers and row rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trajet import labelstudio, store
from trajet.errors import TrajetError
from trajet.feedback import REVIEW_STATUSES, PhraseRevision, ReviewItem

ITEM_KEY = "review_item"  # the item id: `meta.review_item` in JSONL rows, `data.review_item` in Label Studio tasks
EXPORT_FORMATS = ("jsonl", "labelstudio")


@dataclass(frozen=True)
class Entry:
    """A review item with the phrase it is about, as it is stored now."""

    item: ReviewItem
    phrase: store.PhraseRow


def check_status(status: str | None) -> str | None:
    if status is not None and status not in REVIEW_STATUSES:
        raise TrajetError(f"unknown review status {status!r} (expected one of {', '.join(REVIEW_STATUSES)})")
    return status


def entries(engine: Engine, *, status: str | None = "open", batch: int | None = None,
            ids: Sequence[int] | None = None) -> list[Entry]:
    """Review items (strongest first: held, then by confidence) with their phrases; filters are ANDed."""
    check_status(status)
    store.ensure_schema(engine)
    R, P = ReviewItem, store.PhraseRow
    stmt = sa.select(R, P).join(P, P.id == R.phrase_id)
    if status is not None:
        stmt = stmt.where(R.status == status)
    if batch is not None:
        stmt = stmt.where(R.batch_id == batch)
    if ids is not None:
        stmt = stmt.where(R.id.in_(list(ids)))
    stmt = stmt.order_by(R.held.desc(), R.confidence.desc(), R.id)
    with store.session(engine) as s:
        return [Entry(item, phrase) for item, phrase in s.execute(stmt).all()]


def entry(engine: Engine, item_id: int) -> Entry:
    found = entries(engine, status=None, ids=[item_id])
    if not found:
        raise TrajetError(f"no review item {item_id} (see `trajet review list`)")
    return found[0]


def revisions(engine: Engine, phrase_id: int) -> list[PhraseRevision]:
    """Every annotation a review replaced for this phrase, oldest first."""
    with store.session(engine) as s:
        return list(s.scalars(sa.select(PhraseRevision).where(PhraseRevision.phrase_id == phrase_id)
                              .order_by(PhraseRevision.revised_at, PhraseRevision.id)))


def spans_text(text: str, spans: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans as a reviewer reads them: offsets, label and the words they cover, in text order."""
    return [{"start": int(e["start"]), "end": int(e["end"]), "label": str(e["label"]),
             "text": text[int(e["start"]):int(e["end"])]} for e in sorted(spans, key=lambda e: (e["start"], e["end"]))]


def side_by_side(e: Entry) -> list[tuple[str, str, str]]:
    """(words, annotated label, model label) for every span either side has, in text order: `show`'s table."""
    text = e.phrase.text
    keyed: dict[tuple[int, int], list[str]] = {}
    for k, spans in enumerate((e.phrase.entities, e.item.model_entities)):
        for s in spans:
            keyed.setdefault((int(s["start"]), int(s["end"])), ["", ""])[k] = str(s["label"])
    return [(text[a:b], ann or "-", mod or "-") for (a, b), (ann, mod) in sorted(keyed.items())]


def _meta(e: Entry) -> dict[str, Any]:
    item = e.item
    return {
        ITEM_KEY: item.id,
        "phrase_id": e.phrase.id,
        "batch_id": item.batch_id,
        "reason": item.reason,
        "confidence": round(item.confidence, 4),
        "champion_version": item.champion_version,
        "model_entities": spans_text(e.phrase.text, item.model_entities),
        "findings": [f"{f['kind']} {f['confidence']:.2f}: annotated "
                     f"{', '.join(s['label'] + ' ' + repr(s['text']) for s in f['annotated']) or 'nothing'} / model "
                     f"{', '.join(s['label'] + ' ' + repr(s['text']) for s in f['model']) or 'nothing'}"
                     for f in item.findings],
    }


def export_rows(found: Sequence[Entry]) -> list[dict[str, Any]]:
    """JSONL rows an annotator corrects: `entities` is the stored annotation; to take the model's version, copy
    `meta.model_entities` (less `text`) into `entities`."""
    rows = []
    for e in found:
        row: dict[str, Any] = {"text": e.phrase.text,
                               "entities": [{k: s[k] for k in ("start", "end", "label")}
                                            for s in spans_text(e.phrase.text, e.phrase.entities)]}
        if e.phrase.group:
            row["group"] = e.phrase.group
        row["meta"] = _meta(e)
        rows.append(row)
    return rows


def export_tasks(found: Sequence[Entry]) -> list[dict[str, Any]]:
    """Label Studio tasks: the stored annotation as a submitted annotation (the reviewer corrects it or submits
    it as it is), the model's spans as a prediction of the champion version that audited the row, and the item
    id in `data` (Label Studio keeps `data` through import and export; task ids are its own)."""
    datas = []
    for e in found:
        meta = _meta(e)
        datas.append({ITEM_KEY: e.item.id, "phrase_id": e.phrase.id, "reason": e.item.reason,
                      "confidence": meta["confidence"], "findings": "\n".join(meta["findings"])})
    tasks = labelstudio.prediction_tasks([e.phrase.text for e in found], [e.item.model_entities for e in found],
                                         model_version=[e.item.champion_version for e in found],
                                         task_scores=[e.item.confidence for e in found], data=datas)
    for k, (task, e) in enumerate(zip(tasks, found, strict=True)):
        task["annotations"] = [labelstudio.annotation(e.phrase.text, e.phrase.entities, result_prefix=f"t{k + 1}a")]
    return tasks
