"""`trajet review accept FILE`: reviewed rows back into the store, through ingestion's parsers and row rules.

A reviewed file is a `trajet review export` (JSONL, or a Label Studio export of its tasks) that a person has
corrected. Each row names its review item (`meta.review_item`, `data.review_item` in a task) and must pass every
rule ingestion applies to a row; it must also carry its item's phrase's text unchanged (offsets refer to it), and
its item must still be open and its phrase still annotated as when the item was written: otherwise the row is
refused with `file:line: reason` and the rest go on. Nothing is silently overwritten: a corrected row replaces
its phrase's entities and writes a `phrase_revisions` row with the old and new ones; a row whose entities are
the stored ones marks its item `accepted`. Either way the phrase's open items are decided, so a held phrase is
back in the next snapshot.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trajet import store
from trajet import validate as v
from trajet.errors import TrajetError
from trajet.feedback import PhraseRevision, ReviewItem
from trajet.ingest import rows_frame
from trajet.parsers import LABELSTUDIO, Row, content_format, parse_file, suffix_format
from trajet.phrases import BOM
from trajet.review import ITEM_KEY


@dataclass
class AcceptReport:
    source: str
    read: int = 0
    corrected: int = 0
    accepted: int = 0
    released: int = 0  # held phrases back in the next snapshot
    problems: list[str] = field(default_factory=list)  # "file:line: reason", one per refused row


def _entity_key(entities: Any) -> list[tuple[int, int, str]]:
    return sorted((int(e["start"]), int(e["end"]), str(e["label"])) for e in entities)


def _item_ids(path: Path, fmt: str, rows: list[Row]) -> list[Any]:
    """Per row, the review item id it names (None when it names none)."""
    if fmt != LABELSTUDIO:
        return [(r.extras.get("meta") or {}).get(ITEM_KEY) if isinstance(r.extras.get("meta"), dict) else None
                for r in rows]
    try:
        tasks = json.loads(path.read_text(encoding="utf-8").removeprefix(BOM))
    except ValueError:
        return [None] * len(rows)
    if not isinstance(tasks, list) or len(tasks) != len(rows):
        return [None] * len(rows)
    return [(t.get("data") or {}).get(ITEM_KEY) if isinstance(t, dict) and isinstance(t.get("data"), dict) else None
            for t in tasks]


def read_reviewed(path: Path) -> tuple[str, list[Row], dict[int, list[str]], list[Any]]:
    """The file's format, its rows, ingestion's row reasons by row index, and the item id each row names."""
    if not path.is_file():
        raise TrajetError(f"{path}: no such file")
    fmt = content_format(path.name, suffix_format(path.name), path.read_bytes())
    if fmt == "conll":
        raise TrajetError(f"{path}: a review comes back as JSONL or a Label Studio JSON export (a CoNLL file has no "
                          "place for the review item id)")
    rows = parse_file(path, fmt)
    reasons = v.run_suite(rows_frame(rows), "rows") if rows else {}
    return fmt, rows, reasons, _item_ids(path, fmt, rows)


def accept_file(engine: Engine, path: Path) -> AcceptReport:
    """Apply every good row of a reviewed file; report each refused one. One transaction for the good rows."""
    store.ensure_schema(engine)
    fmt, rows, reasons, ids = read_reviewed(path)
    report = AcceptReport(str(path), read=len(rows))
    seen: Counter[int] = Counter(i for i in ids if type(i) is int)
    now = datetime.now(UTC)
    with store.session(engine) as s:
        for k, (row, item_id) in enumerate(zip(rows, ids, strict=True)):
            where = f"{path}:{row.line}"
            if k in reasons:
                report.problems.append(f"{where}: {', '.join(reasons[k])}")
                continue
            problem = _apply(s, row, item_id, seen, where, now, report)
            if problem:
                report.problems.append(f"{where}: {problem}")
    return report


def _apply(s: Any, row: Row, item_id: Any, seen: Counter[int], where: str, now: datetime,
           report: AcceptReport) -> str:
    """Decide one row's item; the reason it is refused, or "" when applied."""
    if type(item_id) is not int:
        return f"no review item id (`{ITEM_KEY}`): rows come from `trajet review export`"
    if seen[item_id] > 1:
        return f"review item {item_id} appears {seen[item_id]} times in the file: keep one"
    item = s.scalar(sa.select(ReviewItem).where(ReviewItem.id == item_id).with_for_update())
    if item is None:
        return f"no review item {item_id}"
    phrase = s.scalar(sa.select(store.PhraseRow).where(store.PhraseRow.id == item.phrase_id).with_for_update())
    if item.status != "open":
        return f"review item {item_id} was already {item.status} ({item.resolution}); nothing changed"
    if row.text != phrase.text:
        return f"the text differs from review item {item_id}'s phrase {phrase.id}: {phrase.text!r}"
    if _entity_key(phrase.entities) != _entity_key(item.annotation):
        return f"phrase {phrase.id} was annotated otherwise since review item {item_id} was written; export it again"
    old = [dict(e) for e in phrase.entities]
    new = [{"start": a, "end": b, "label": label} for a, b, label in sorted(row.entities)]
    status = "accepted" if _entity_key(old) == _entity_key(new) else "corrected"
    if status == "corrected":
        phrase.entities = new
        labels = Counter(e["label"] for e in new)
        phrase.n_depart, phrase.n_arrivee, phrase.n_via = labels["DEPART"], labels["ARRIVEE"], labels["VIA"]
        s.add(PhraseRevision(phrase_id=phrase.id, review_item_id=item.id, revised_at=now, old_entities=old,
                             new_entities=new, source=where))
        report.corrected += 1
    else:
        report.accepted += 1
    decided = s.scalars(sa.select(ReviewItem).where(ReviewItem.phrase_id == phrase.id, ReviewItem.status == "open"))
    released = False
    for other in decided:
        released = released or other.held
        other.status, other.resolved_at = status, now
        other.resolution = (f"{'annotation replaced' if status == 'corrected' else 'annotation kept'} from {where}"
                            + ("" if other.id == item.id else f" (review item {item.id})"))
    report.released += released
    s.flush()
    return ""
