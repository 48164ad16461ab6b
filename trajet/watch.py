"""The champion watch: the serving model scored on each accepted batch's own annotations, before the batch
reaches any snapshot, so the live quality trend is known night after night and not only when a retrain runs.

The test split says how the champion did on the data it was chosen on; a new batch says how it does on what
people send now. One row per (batch, champion version) in `batch_watch` (trajet.feedback): strict micro F1,
per-entity F1, sentence exact match, the no-trip rows left clean, and the surface-form invariance checks run on
the batch's own rows (trajet.behaviour.rows). Scoring a pair again replaces its row. A row alerts when its F1
falls under a floor, or drops too far under the running average of the same champion's earlier batches.
`trend` reads the rows back; trajet/watch_report.py draws them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from trajet import store
from trajet.errors import TrajetError
from trajet.feedback import BatchWatch
from trajet.phrases import Entity, Phrase

ENV_PREFIX = "TRAJET_WATCH_"
#: Float noise allowance, as in the gate: an F1 exactly at the floor is not under it.
EPSILON = 1e-9


def _f(default: float | int, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class WatchConfig:
    """When a batch alerts. Env overrides: TRAJET_WATCH_<FIELD> (TRAJET_WATCH_MIN_F1, ...).

    The floor is set from measured numbers: the `make demo` night-1 champion scored 0.88 micro F1 on hand-written
    batch 09, which it never saw (2026-12-05), and the CPU default scores 0.92-0.95 on the hand-written test part
    (bench/RESULTS.md). Under 0.80 the error rate is 1.7 times the demo champion's and 2.5-4 times the default's:
    broken, not a harder night. The drop is the sensitive rule: a 240-row batch (~400 entities) at F1 0.9 has a
    binomial spread of about 0.015, so 0.05 under the running average is three spreads, a shift rather than
    noise. Five batches is about a week of nightly batches: one odd batch does not move the average much, and a
    stream that really got harder becomes the new normal within a week. Under 30 rows (~50 entities) one wrong
    sentence moves F1 by 0.02-0.04, so smaller batches are scored and shown but never alert."""

    min_f1: float = _f(0.80, "Alert when the batch's strict micro F1 is under this floor.")
    max_drop: float = _f(0.05, "Alert when the batch's micro F1 is more than this under the running average of "
                         "the same champion's earlier batches.")
    window: int = _f(5, "Earlier judged batches (same champion version) in the running average.")
    min_rows: int = _f(30, "Batches with fewer rows are scored and shown but never alert, nor enter the average.")
    behaviour_rows: int = _f(200, "Rows of a batch put through the invariance checks (a hash-picked sample): "
                             "each costs seven more sentences to predict.")

    def __post_init__(self) -> None:
        for name in ("min_f1", "max_drop"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or math.isnan(value) or not 0.0 <= value <= 1.0:
                raise TrajetError(f"watch setting {name}={value!r}: expected a number between 0 and 1")
        for name in ("window", "min_rows", "behaviour_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "window" else 0):
                raise TrajetError(f"watch setting {name}={value!r}: expected a whole number"
                                  + (" of at least 1" if name == "window" else " of 0 or more"))

    @classmethod
    def from_env(cls, **overrides: Any) -> WatchConfig:
        values: dict[str, Any] = {}
        for f in fields(cls):
            env = ENV_PREFIX + f.name.upper()
            if env in os.environ:
                kind = float if f.name in ("min_f1", "max_drop") else int
                try:
                    values[f.name] = kind(os.environ[env])
                except ValueError:
                    raise TrajetError(f"{env}={os.environ[env]!r}: not a {'number' if kind is float else 'whole number'}") from None
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise TrajetError(f"unknown watch setting(s) {', '.join(unknown)}: expected {', '.join(f.name for f in fields(cls))}")
        for name, value in overrides.items():  # a JSON parameter may carry 5.0 for a window of 5
            integral = isinstance(value, float) and value.is_integer() and name in ("window", "min_rows", "behaviour_rows")
            values[name] = int(value) if integral else value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EntityPredictor(Protocol):
    """What the watch needs of a loaded model (trajet.predict.Predictor and every backend)."""

    def predict_entities(self, texts: Sequence[str]) -> list[list[Entity]]: ...


@dataclass(frozen=True)
class BatchScore:
    rows: int
    micro_f1: float | None  # None: the batch annotates no entity (F1 is undefined there)
    exact_match: float
    no_trip_rows: int
    no_trip_clean: float | None
    per_entity: dict[str, Any]
    behaviour: dict[str, Any]


@dataclass(frozen=True)
class WatchRow:
    """A stored row, with the batch's source; `running_average` is the mean F1 of the same champion's earlier
    judged batches (over the window), `history` how many went into it."""

    batch_id: int
    source: str
    champion_version: str
    scored_at: datetime
    rows: int
    micro_f1: float | None
    exact_match: float | None
    no_trip_rows: int
    no_trip_clean: float | None
    per_entity: dict[str, Any]
    behaviour: dict[str, Any]
    alert: bool
    alert_reason: str
    running_average: float | None = None
    history: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scored_at"] = self.scored_at.isoformat()
        return out


def score_batch(predictor: EntityPredictor, phrases: Sequence[Phrase], config: WatchConfig | None = None) -> BatchScore:
    """The champion on one batch's rows: the evaluation report's numbers and the invariance checks."""
    from trajet.behaviour.rows import row_checks
    from trajet.evaluate import evaluate_predictions

    if not phrases:
        raise TrajetError("no stored rows to score")
    config = config or WatchConfig()
    report = evaluate_predictions(phrases, predictor.predict_entities([p.text for p in phrases]))
    has_entities = any(p.entities for p in phrases)
    return BatchScore(
        rows=len(phrases),
        micro_f1=report["micro"]["f1"] if has_entities else None,
        exact_match=report["exact_match"],
        no_trip_rows=report["no_trip"]["n"],
        no_trip_clean=report["no_trip"]["clean"],
        per_entity=report["per_entity"],
        behaviour=row_checks(predictor.predict_entities, phrases, config.behaviour_rows),
    )


def judged(rows: int, micro_f1: float | None, config: WatchConfig) -> bool:
    """Whether a row counts: enough rows, and an F1 to judge (a batch of no-trip rows only has none)."""
    return micro_f1 is not None and rows >= config.min_rows


def decide(score: BatchScore, history: Sequence[float], config: WatchConfig) -> tuple[bool, str, float | None]:
    """(alert, one-line reason, running average). `history`: the earlier judged F1s, newest first."""
    recent = list(history)[: config.window]
    average = sum(recent) / len(recent) if recent else None
    if score.micro_f1 is None:
        return False, "not judged: the batch annotates no entity, so F1 is undefined", average
    f1 = score.micro_f1
    if score.rows < config.min_rows:
        return False, f"not judged: {score.rows} rows, fewer than min_rows {config.min_rows}", average
    problems = []
    if f1 < config.min_f1 - EPSILON:
        problems.append(f"micro F1 {f1:.4f} < min_f1 {config.min_f1:.2f}")
    if average is not None and average - f1 > config.max_drop + EPSILON:
        problems.append(f"micro F1 {f1:.4f} is {average - f1:.4f} under its running average {average:.4f} "
                        f"over {len(recent)} batch(es) (max_drop {config.max_drop:.2f})")
    if problems:
        return True, "; ".join(problems), average
    against = (f"{f1 - average:+.4f} vs running average {average:.4f} over {len(recent)} batch(es)"
               if average is not None else "first judged batch of this champion")
    return False, f"ok: micro F1 {f1:.4f} >= {config.min_f1:.2f}, {against}", average


def batch_phrases(engine: Engine, batch_id: int) -> list[Phrase]:
    """The rows a batch stored, in their order; a batch that stored none cannot be scored."""
    with engine.connect() as conn:
        batch = conn.execute(sa.select(store.Batch).where(store.Batch.id == batch_id)).first()
        if batch is None:
            raise TrajetError(f"batch {batch_id}: no such batch")
        rows = conn.execute(sa.select(store.PhraseRow).where(store.PhraseRow.batch_id == batch_id)
                            .order_by(store.PhraseRow.id)).all()
    if not rows:
        raise TrajetError(f"batch {batch_id} ({batch.status}) stored no rows: nothing to score")
    return [store.row_to_phrase(r) for r in rows]


def _history(session: Any, batch_id: int, champion_version: str, config: WatchConfig) -> list[float]:
    """Judged F1s of the same champion on earlier batches (by batch id, so re-scoring an old batch compares
    it with what came before it, not after), newest first, at most `window`."""
    W = BatchWatch
    query = (sa.select(W.micro_f1)
             .where(W.champion_version == champion_version, W.batch_id < batch_id, W.micro_f1.is_not(None),
                    W.rows >= config.min_rows)
             .order_by(W.batch_id.desc()).limit(config.window))
    return [float(v) for v in session.scalars(query)]


def record(engine: Engine, batch_id: int, champion_version: str, score: BatchScore,
           config: WatchConfig | None = None) -> WatchRow:
    """Store (or replace) the row of (batch, champion version) with its alert decided against the history."""
    config = config or WatchConfig()
    for attempt in (1, 2):  # a concurrent first insert of the same pair wins the unique key: update it then
        try:
            with store.session(engine) as s:
                batch = s.get(store.Batch, batch_id)
                if batch is None:
                    raise TrajetError(f"batch {batch_id}: no such batch")
                history = _history(s, batch_id, champion_version, config)
                alert, reason, average = decide(score, history, config)
                values = {**_score_columns(score), "scored_at": datetime.now(UTC), "alert": alert,
                          "alert_reason": reason}
                row = s.scalars(sa.select(BatchWatch).where(BatchWatch.batch_id == batch_id,
                                                            BatchWatch.champion_version == champion_version)).first()
                if row is None:
                    row = BatchWatch(batch_id=batch_id, champion_version=champion_version, **values)
                    s.add(row)
                else:
                    for key, value in values.items():
                        setattr(row, key, value)
                source = batch.source
            break
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise
    return _watch_row(row, source, average, len(history[: config.window]))


def _score_columns(score: BatchScore) -> dict[str, Any]:
    return {"rows": score.rows, "micro_f1": score.micro_f1, "exact_match": score.exact_match,
            "no_trip_rows": score.no_trip_rows, "no_trip_clean": score.no_trip_clean,
            "per_entity": score.per_entity, "behaviour": score.behaviour}


def _watch_row(row: Any, source: str, average: float | None, history: int) -> WatchRow:
    return WatchRow(
        batch_id=row.batch_id, source=source, champion_version=row.champion_version, scored_at=row.scored_at,
        rows=row.rows, micro_f1=row.micro_f1, exact_match=row.exact_match, no_trip_rows=row.no_trip_rows,
        no_trip_clean=row.no_trip_clean, per_entity=dict(row.per_entity or {}), behaviour=dict(row.behaviour or {}),
        alert=bool(row.alert), alert_reason=row.alert_reason, running_average=average, history=history,
    )


def watch_batch(engine: Engine, predictor: EntityPredictor, champion_version: str, batch_id: int,
                config: WatchConfig | None = None) -> WatchRow:
    """One batch, start to end: its stored rows, scored by an already loaded model, recorded and judged."""
    config = config or WatchConfig()
    return record(engine, batch_id, champion_version, score_batch(predictor, batch_phrases(engine, batch_id), config),
                  config)


def trend(engine: Engine, *, champion: str | None = None, last: int | None = None,
          config: WatchConfig | None = None) -> list[WatchRow]:
    """Stored rows with their batch's source, oldest batch first (a batch's rows by scoring time); `last`
    keeps the newest N batches. Running averages are recomputed with `config`'s window, as `record` does."""
    config = config or WatchConfig()
    W, B = BatchWatch, store.Batch
    query = sa.select(W, B.source).join(B, B.id == W.batch_id).order_by(W.batch_id, W.scored_at, W.id)
    if champion:
        query = query.where(W.champion_version == champion)
    with store.session(engine) as s:
        found = [(row, source) for row, source in s.execute(query).all()]
    earlier: dict[str, list[float]] = {}
    out = []
    for row, source in found:
        history = earlier.setdefault(row.champion_version, [])
        recent = history[-config.window:]
        average = sum(recent) / len(recent) if recent else None
        out.append(_watch_row(row, source, average, len(recent)))
        if judged(row.rows, row.micro_f1, config):
            history.append(float(row.micro_f1))
    if last is not None:
        keep = set(sorted({r.batch_id for r in out})[-last:]) if last > 0 else set()
        out = [r for r in out if r.batch_id in keep]
    return out


def _utc(moment: datetime) -> datetime:
    """SQLite hands back the UTC time it was given without its zone; PostgreSQL an aware one."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def latest(rows: Sequence[WatchRow]) -> WatchRow | None:
    """The newest batch's most recently scored row: what `trajet monitor --check` judges. The newest batch,
    not the newest scoring: a person re-scoring an old batch by hand must not hide tonight's alert."""
    return max(rows, key=lambda r: (r.batch_id, _utc(r.scored_at)), default=None)
