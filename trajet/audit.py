"""Annotation audit: where the champion confidently disagrees with an annotated row, per span.

A new batch is read by the champion before it reaches any snapshot. Each annotated span and each span the model
finds are matched by the words they cover; a group of overlapping spans that do not agree is one finding:

- `missing_entity`: the model finds a place the annotation leaves untagged;
- `unlikely_span`: the annotation tags words the model reads as no place at all;
- `role_swap`: the same words, another role (DEPART / ARRIVEE swapped, a stop tagged as the arrival);
- `boundary`: overlapping spans whose edges differ (a word too many or too few), whatever their roles.

**Confidence** of a finding is `wrong x sure`, both read from the model's per-word distributions
(`WordTags.label_probs`). `wrong = 1 - mean P(annotated tag)` over the words where the annotation's BIO tag and
the model's decoded tag differ: the model's belief that the annotation is wrong *there* (an annotator's slip is a
tag it gives almost nothing: the `de` of `de Paris` as a departure, below 0.01; words where both agree are left
out, so a long sentence does not dilute one wrong word). `sure` is the probability of the model's own decoded tag
on its least sure other word (punctuation aside, as in trajet.suggest): a model that hesitates anywhere else in
a sentence has often misread the whole of it, and its confident disagreements there are then mostly its own
errors (a no-trip sentence read as a trip, a long message's roles). On hand-written requests a model never
trained on, with injected slips (bench/audit_noise.py), `wrong` alone reached 0.9 on 11-14 % of the clean rows;
the product on 2-3 %, for three quarters of the slips instead of nearly all: the slips it lets go are mostly in
sentences the model misreads anyway.

A row goes to the review queue when its strongest finding reaches `min_confidence`; whether it is kept out of
snapshots until a person decides follows the policy (trajet.review reads and decides the queue).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from trajet.errors import PhraseError, TrajetError
from trajet.suggest import judged_words
from trajet.tags import Entity, bio_to_spans, spans_to_tags

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trajet.predictor import Predictor, WordTags

KINDS = ("missing_entity", "unlikely_span", "role_swap", "boundary")
POLICIES = ("train", "hold_confident", "hold_all")
ENV_PREFIX = "TRAJET_AUDIT_"


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class AuditConfig:
    """What the audit queues and holds. Env overrides: TRAJET_AUDIT_POLICY, TRAJET_AUDIT_MIN_CONFIDENCE,
    TRAJET_AUDIT_HOLD_CONFIDENCE."""

    policy: str = _f("hold_confident", "train: queue for review but train on every row; hold_confident: keep a "
                     "row out of snapshots while its item is open if its confidence reaches hold_confidence; "
                     "hold_all: keep every queued row out until reviewed.")
    min_confidence: float = _f(0.9, "Queue a row when a finding's confidence (the model's belief that the annotated "
                               "tags are wrong there, times its sureness on the rest of the sentence) reaches "
                               "this. Below it, disagreements are mostly the model's own errors on clean rows.")
    hold_confidence: float = _f(0.98, "Under hold_confident, hold a queued row from this confidence up: a "
                                "wrong row held out costs one sentence of training, a wrong row trained on "
                                "teaches the error; only near-certain disagreements pay for that trade.")

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise TrajetError(f"audit policy {self.policy!r}: expected one of {', '.join(POLICIES)}")
        for name in ("min_confidence", "hold_confidence"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise TrajetError(f"audit setting {name}={value!r}: expected a number between 0 and 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AuditConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key not in env:
                continue
            if f.name == "policy":
                values[f.name] = env[key]
                continue
            try:
                values[f.name] = float(env[key])
            except ValueError:
                raise TrajetError(f"{key}={env[key]!r}: not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def queued(self, confidence: float) -> bool:
        return confidence >= self.min_confidence

    def held(self, confidence: float) -> bool:
        """Whether a queued row with this confidence stays out of snapshots until a person decides."""
        if self.policy == "hold_all":
            return True
        return self.policy == "hold_confident" and confidence >= self.hold_confidence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """One disagreement: its kind, the spans on each side (character offsets, label, text), and its confidence
    with the two factors it is made of (see the module's docstring)."""

    kind: str
    wrong: float
    sure: float
    annotated: list[dict[str, Any]]
    model: list[dict[str, Any]]

    @property
    def confidence(self) -> float:
        return self.wrong * self.sure

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "confidence": round(self.confidence, 4), "wrong": round(self.wrong, 4),
                "sure": round(self.sure, 4), "annotated": self.annotated, "model": self.model}

    def describe(self) -> str:
        """One line a reviewer reads: `role_swap 0.99: annotated ARRIVEE 'Dijon' / model VIA 'Dijon'`."""
        def side(spans: list[dict[str, Any]]) -> str:
            return ", ".join(f"{s['label']} {s['text']!r}" for s in spans) or "nothing"

        return f"{self.kind} {self.confidence:.2f}: annotated {side(self.annotated)} / model {side(self.model)}"


@dataclass(frozen=True)
class RowAudit:
    """The model's reading of one annotated row: its spans (with their mean tag probability) and every finding,
    strongest first."""

    model_entities: list[dict[str, Any]]
    findings: list[Finding]

    @property
    def confidence(self) -> float:
        return self.findings[0].confidence if self.findings else 0.0

    @property
    def reason(self) -> str:
        return self.findings[0].kind if self.findings else ""


def _word_spans(tokens: Sequence[Any], entities: Sequence[Entity]) -> list[tuple[int, int, Entity]]:
    """(first word, last word, entity) per entity."""
    at_start = {t.start: k for k, t in enumerate(tokens)}
    at_end = {t.end: k for k, t in enumerate(tokens)}
    return [(at_start[e.start], at_end[e.end], e) for e in entities]


def _span_dict(text: str, e: Entity) -> dict[str, Any]:
    return {"start": e.start, "end": e.end, "label": e.label, "text": text[e.start:e.end]}


def compare(text: str, annotated: Sequence[Entity], tagged: WordTags) -> RowAudit:
    """Findings of one row: the annotation against the model's decoded spans, with each finding's confidence
    from the model's probability of the annotated tags. Raises PhraseError for an annotation off the words."""
    tokens = tagged.tokens
    gold_tags = spans_to_tags(text, tokens, annotated)
    gold = _word_spans(tokens, sorted(annotated))
    found = _word_spans(tokens, bio_to_spans(tokens, tagged.tags, strict=False))
    model_entities = [{**_span_dict(text, e), "score": round(sum(tagged.probs[a:b + 1]) / (b - a + 1), 4)}
                      for a, b, e in found]
    # groups of overlapping spans (annotated and model), in text order; spans never overlap on one side
    groups: list[tuple[list[tuple[int, int, Entity]], list[tuple[int, int, Entity]]]] = []
    reach = -1
    for a, b, e, side in sorted([(*s, 0) for s in gold] + [(*s, 1) for s in found], key=lambda s: (s[0], s[3])):
        if not groups or a > reach:
            groups.append(([], []))
        groups[-1][side].append((a, b, e))
        reach = max(reach, b) if a <= reach else b
    judged = judged_words(tokens)
    findings = []
    for ann, mod in groups:
        if len(ann) == 1 and len(mod) == 1 and ann[0][:2] == mod[0][:2] and ann[0][2].label == mod[0][2].label:
            continue  # agreement
        first = min(s[0] for s in ann + mod)
        last = max(s[1] for s in ann + mod)
        differ = [w for w in range(first, last + 1) if gold_tags[w] != tagged.tags[w]]
        if not differ:
            continue
        belief = sum(tagged.prob_of(w, gold_tags[w]) for w in differ) / len(differ)
        sure = min((tagged.probs[w] for w in judged if not first <= w <= last), default=1.0)
        if not mod:
            kind = "unlikely_span"
        elif not ann:
            kind = "missing_entity"
        elif len(ann) == 1 and len(mod) == 1 and ann[0][:2] == mod[0][:2]:
            kind = "role_swap"
        else:
            kind = "boundary"
        findings.append(Finding(kind, 1.0 - belief, sure, [_span_dict(text, s[2]) for s in ann],
                                [_span_dict(text, s[2]) for s in mod]))
    findings.sort(key=lambda f: -f.confidence)
    return RowAudit(model_entities, findings)


def audit_rows(predictor: Predictor, rows: Sequence[tuple[str, Sequence[Entity]]]) -> list[RowAudit | str]:
    """Per (text, annotated entities): the model's findings, or the reason the model cannot read the text (an
    over-long one). The model reads the whole list in its own batches."""
    out: list[RowAudit | str] = []
    for (text, entities), tagged in zip(rows, predictor.tag_words([t for t, _ in rows]), strict=True):
        if isinstance(tagged, str):
            out.append(tagged)
            continue
        try:
            out.append(compare(text, entities, tagged))
        except PhraseError as exc:  # stored rows passed validation: only a tokenizer change gets here
            out.append(f"annotation does not fit the words: {exc}")
    return out


@dataclass
class AuditReport:
    """What one audit of a stored batch did; `items` and `held` count the review items it wrote."""

    batch_id: int
    champion_version: str
    config: AuditConfig
    phrases: int = 0  # stored phrases of the batch
    audited: int = 0  # read by the model this time
    skipped: int = 0  # phrases that already have a review item (queued before, or decided by a person)
    unreadable: list[str] = field(default_factory=list)  # "phrase ID: reason"
    items: int = 0
    held: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = self.config.to_dict()
        return out


def audit_batch(engine: Engine, batch_id: int, predictor: Predictor, *, champion_version: str,
                config: AuditConfig | None = None) -> AuditReport:
    """Audit a stored batch with the champion and write its review items (status open, held per policy).

    A phrase that already has a review item, of this champion or another, open or decided, is not read again:
    re-running after a crash adds nothing, a row waiting for a person is not queued twice, and a row a person
    has decided is not put back in front of people by the next champion."""
    import sqlalchemy as sa

    from trajet import store
    from trajet.feedback import ReviewItem

    config = config or AuditConfig.from_env()
    report = AuditReport(batch_id, champion_version, config)
    store.ensure_schema(engine)
    P, R = store.PhraseRow, ReviewItem
    with store.session(engine) as s:
        if s.get(store.Batch, batch_id) is None:
            raise TrajetError(f"no batch {batch_id} (see `trajet quarantine list` or the ingest report)")
        phrases = s.execute(sa.select(P.id, P.text, P.entities).where(P.batch_id == batch_id).order_by(P.id)).all()
        done = set(s.scalars(sa.select(R.phrase_id).join(P, P.id == R.phrase_id).where(P.batch_id == batch_id)))
    report.phrases = len(phrases)
    todo = [p for p in phrases if p.id not in done]
    report.skipped = len(phrases) - len(todo)
    report.audited = len(todo)
    rows = [(p.text, [Entity(int(e["start"]), int(e["end"]), str(e["label"])) for e in p.entities]) for p in todo]
    items = []
    for p, result in zip(todo, audit_rows(predictor, rows), strict=True):
        if isinstance(result, str):
            report.unreadable.append(f"phrase {p.id}: {result}")
            continue
        if not result.findings or not config.queued(result.confidence):
            continue
        held = config.held(result.confidence)
        items.append(R(batch_id=batch_id, phrase_id=p.id, champion_version=champion_version, reason=result.reason,
                       confidence=round(result.confidence, 6), findings=[f.to_dict() for f in result.findings],
                       annotation=list(p.entities), model_entities=result.model_entities, held=held,
                       status="open", resolution=""))
        report.held += held
        report.reasons[result.reason] = report.reasons.get(result.reason, 0) + 1
    if items:
        with store.session(engine) as s:
            s.add_all(items)
    report.items = len(items)
    return report
