"""What the store keeps about the champion meeting new annotations (migration 0003_watch_and_review).

`BatchWatch`: the champion's scores on each accepted batch, before the batch reaches any snapshot: the live
quality trend (trajet.watch, `trajet monitor`). `ReviewItem`: a row where the champion confidently disagrees
with its annotation (trajet.audit); a held item keeps its phrase out of snapshots until a person decides.
`PhraseRevision`: every annotation a review replaced, old and new, so nothing is silently overwritten.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trajet.store import Base

REVIEW_STATUSES = ("open", "accepted", "corrected")  # open: waiting for a person; the other two: decided


def _now() -> datetime:
    return datetime.now(UTC)


class BatchWatch(Base):
    __tablename__ = "batch_watch"
    __table_args__ = (UniqueConstraint("batch_id", "champion_version", name="uq_batch_watch_batch_champion"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    champion_version: Mapped[str] = mapped_column(String(128))
    scored_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    rows: Mapped[int] = mapped_column()
    micro_f1: Mapped[float | None] = mapped_column(sa.Float)
    exact_match: Mapped[float | None] = mapped_column(sa.Float)
    no_trip_rows: Mapped[int] = mapped_column()
    no_trip_clean: Mapped[float | None] = mapped_column(sa.Float)
    per_entity: Mapped[dict[str, Any]] = mapped_column()
    behaviour: Mapped[dict[str, Any]] = mapped_column()
    alert: Mapped[bool] = mapped_column()
    alert_reason: Mapped[str] = mapped_column(Text)


class ReviewItem(Base):
    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    phrase_id: Mapped[int] = mapped_column(ForeignKey("phrases.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    champion_version: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(40))  # the strongest finding's kind
    confidence: Mapped[float] = mapped_column(sa.Float)  # the strongest finding's confidence
    findings: Mapped[list[Any]] = mapped_column()
    annotation: Mapped[list[Any]] = mapped_column()  # the entities as annotated when audited
    model_entities: Mapped[list[Any]] = mapped_column()
    held: Mapped[bool] = mapped_column()  # kept out of snapshots while open
    status: Mapped[str] = mapped_column(String(20), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    resolution: Mapped[str] = mapped_column(Text, default="")


class PhraseRevision(Base):
    __tablename__ = "phrase_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    phrase_id: Mapped[int] = mapped_column(ForeignKey("phrases.id"), index=True)
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"))
    revised_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    old_entities: Mapped[list[Any]] = mapped_column()
    new_entities: Mapped[list[Any]] = mapped_column()
    source: Mapped[str] = mapped_column(Text)

