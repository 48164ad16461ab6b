"""Annotation audit against injected label noise: does the champion's audit (trajet.audit) find the rows an
annotator got wrong, and leave the right ones alone?

    python bench/audit_noise.py --model M data/handwritten/batch_09.jsonl [--rate 0.05] [--seed 0]
        [--write-noisy noisy.jsonl] [--write-kept kept.jsonl] [--json results.jsonl]

A share `--rate` of the rows (seeded) gets one realistic annotation slip, the four kinds in turn: `swap` (DEPART and
ARRIVEE exchanged), `boundary` (one span one word too long or too short: `de [Paris]` -> `[de Paris]`), `missed`
(one entity left untagged), `stop_as_arrival` (the stop tagged as the arrival, the arrival as a stop). Every noisy
row still passes ingestion's rules: these are the errors validation cannot see. The noisy batch is ingested into
a scratch SQLite store and audited there by `trajet.audit.audit_batch` at the default config (or the given
thresholds), the path a real batch takes. Printed (one JSON line): precision and recall of the queued rows and
of the held rows on the injected ones, the false-alarm rate on clean rows, recall per noise kind, how often the
item's reason names the slip, and a threshold sweep over every row's confidence.

Score a model that never trained on the batch (a new batch is audited before any snapshot has it). For the
training comparison, `--write-noisy` is the noisy batch and `--write-kept` the same without the rows the audit
held: train once with each in place of the clean batch and compare.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trajet.errors import PhraseError  # noqa: E402
from trajet.phrases import Entity, Phrase, read_phrases, tokenize, write_jsonl  # noqa: E402
from trajet.tags import spans_to_tags  # noqa: E402

NOISE_KINDS = ("swap", "boundary", "missed", "stop_as_arrival")
EXPECTED_REASON = {"swap": "role_swap", "boundary": "boundary", "missed": "missing_entity",
                   "stop_as_arrival": "role_swap"}
SWEEP = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)


def _edge_ok(text: str, start: int, end: int) -> bool:
    """Ingestion's rule: a span's first and last characters are neither space nor punctuation."""
    def bad(ch: str) -> bool:
        return ch.isspace() or unicodedata.category(ch)[0] in "PZSC"
    return 0 <= start < end <= len(text) and not bad(text[start]) and not bad(text[end - 1])


def _valid(text: str, entities: list[Entity]) -> bool:
    try:
        spans_to_tags(text, tokenize(text), entities)
    except PhraseError:
        return False
    labels = Counter(e.label for e in entities)
    return labels["DEPART"] <= 1 and labels["ARRIVEE"] <= 1 and all(_edge_ok(text, e.start, e.end) for e in entities)


def _relabel(entities: tuple[Entity, ...], mapping: dict[str, str]) -> list[Entity]:
    return [Entity(e.start, e.end, mapping.get(e.label, e.label)) for e in entities]


def noisy_versions(phrase: Phrase, kind: str) -> list[list[Entity]]:
    """Every valid annotation of `phrase` with one slip of `kind`; empty when the kind does not apply."""
    text, ents = phrase.text, phrase.entities
    labels = {e.label for e in ents}
    out: list[list[Entity]] = []
    if kind == "swap" and {"DEPART", "ARRIVEE"} <= labels:
        out.append(_relabel(ents, {"DEPART": "ARRIVEE", "ARRIVEE": "DEPART"}))
    elif kind == "stop_as_arrival":
        for k, e in enumerate(ents):
            if e.label == "VIA":
                swapped = [Entity(x.start, x.end, "VIA" if x.label == "ARRIVEE" else x.label) for x in ents]
                swapped[k] = Entity(e.start, e.end, "ARRIVEE")
                out.append(swapped)
    elif kind == "missed":
        out.extend([x for x in ents if x is not e] for e in ents)
    elif kind == "boundary":
        tokens = tokenize(text)
        first = {t.start: i for i, t in enumerate(tokens)}
        last = {t.end: i for i, t in enumerate(tokens)}
        taken = {i for e in ents for i in range(first[e.start], last[e.end] + 1)}
        for k, e in enumerate(ents):
            a, b = first[e.start], last[e.end]
            moves = []
            if a > 0 and a - 1 not in taken:
                moves.append((tokens[a - 1].start, e.end))  # `de Paris`
            if b + 1 < len(tokens) and b + 1 not in taken:
                moves.append((e.start, tokens[b + 1].end))  # `Lyon demain`
            if b > a:
                moves += [(tokens[a + 1].start, e.end), (e.start, tokens[b - 1].end)]  # `Havre`, `Paris Gare de`
            for start, end in moves:
                changed = list(ents)
                changed[k] = Entity(start, end, e.label)
                out.append(changed)
    return [sorted(v) for v in out if _valid(text, v) and sorted(v) != sorted(ents)]


def inject(phrases: list[Phrase], rate: float, seed: int) -> list[tuple[Phrase, str | None]]:
    """The batch with `rate` of its rows given one slip each, the kinds in turn; (phrase, kind or None)."""
    rng = random.Random(seed)
    n = round(rate * len(phrases))
    chosen: dict[int, tuple[str, list[Entity]]] = {}
    for k in range(n):
        kind = NOISE_KINDS[k % len(NOISE_KINDS)]
        eligible = [i for i in range(len(phrases)) if i not in chosen and noisy_versions(phrases[i], kind)]
        if not eligible:
            continue
        i = rng.choice(eligible)
        chosen[i] = (kind, rng.choice(noisy_versions(phrases[i], kind)))
    out: list[tuple[Phrase, str | None]] = []
    for i, p in enumerate(phrases):
        if i in chosen:
            kind, ents = chosen[i]
            out.append((Phrase(p.text, tuple(ents), dict(p.meta)), kind))
        else:
            out.append((p, None))
    return out


def _rates(flagged: set[str], noisy: set[str], clean: set[str]) -> dict[str, float | int | None]:
    hit = len(flagged & noisy)
    return {"flagged": len(flagged), "precision": round(hit / len(flagged), 4) if flagged else None,
            "recall": round(hit / len(noisy), 4) if noisy else None,
            "false_alarm_rate": round(len(flagged & clean) / len(clean), 4) if clean else None}


def run(model: Path, files: list[Path], *, rate: float, seed: int, overrides: dict[str, Any],
        write_noisy: Path | None = None, write_kept: Path | None = None) -> dict[str, Any]:
    import sqlalchemy as sa

    from trajet import store
    from trajet.audit import AuditConfig, audit_batch, audit_rows
    from trajet.feedback import ReviewItem
    from trajet.ingest import ingest_source
    from trajet.predict import load_predictor

    phrases = [p for f in files for p in read_phrases(f)]
    batch = inject(phrases, rate, seed)
    kind_of = {p.text: kind for p, kind in batch}
    noisy = {t for t, k in kind_of.items() if k}
    clean = set(kind_of) - noisy
    config = AuditConfig(**overrides)
    predictor = load_predictor(model)
    with tempfile.TemporaryDirectory(prefix="trajet-audit-") as tmp:
        path = Path(tmp) / "noisy.jsonl"
        write_jsonl(path, [Phrase(p.text, p.entities, {k: v for k, v in p.meta.items() if k != "split"})
                           for p, _ in batch])
        engine = store.get_engine(f"sqlite:///{Path(tmp) / 'store.db'}")
        store.upgrade(engine=engine)
        [report] = ingest_source(str(path), engine=engine)
        if report.stored != len(batch):
            raise SystemExit(f"the noisy batch was not stored whole: {report.status}, {report.reasons}")
        t0 = time.perf_counter()
        audit = audit_batch(engine, report.batch_id, predictor, champion_version=model.name, config=config)
        seconds = time.perf_counter() - t0
        with engine.connect() as conn:
            items = conn.execute(sa.select(store.PhraseRow.text, ReviewItem.reason, ReviewItem.held)
                                 .join(ReviewItem, ReviewItem.phrase_id == store.PhraseRow.id)).all()
        engine.dispose()
    queued = {t for t, _, _ in items}
    held = {t for t, _, h in items if h}
    reason = {t: r for t, r, _ in items}
    per_kind = {}
    for kind in NOISE_KINDS:
        rows = {t for t in noisy if kind_of[t] == kind}
        per_kind[kind] = {"injected": len(rows), "queued": len(rows & queued), "held": len(rows & held),
                          "reason_matches": sum(1 for t in rows & queued if reason[t] == EXPECTED_REASON[kind])}
    scores = audit_rows(predictor, [(p.text, p.entities) for p, _ in batch])
    confidence = {p.text: (s.confidence if not isinstance(s, str) else 0.0) for (p, _), s in zip(batch, scores, strict=True)}
    sweep = {str(th): _rates({t for t, c in confidence.items() if c >= th}, noisy, clean) for th in SWEEP}
    if write_noisy:
        write_jsonl(write_noisy, [p for p, _ in batch])
    if write_kept:
        write_jsonl(write_kept, [p for p, _ in batch if p.text not in held])
    return {
        "model": str(model), "files": [str(f) for f in files], "rows": len(batch), "rate": rate, "seed": seed,
        "config": config.to_dict(), "injected": len(noisy), "clean": len(clean),
        "queued": _rates(queued, noisy, clean), "held": _rates(held, noisy, clean), "per_kind": per_kind,
        "reasons": audit.reasons, "audit_seconds": round(seconds, 2), "sweep": sweep,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, nargs="+", help="Annotated batches (JSONL), e.g. data/handwritten/*.jsonl.")
    parser.add_argument("--model", type=Path, required=True, help="The model directory that audits (the champion).")
    parser.add_argument("--rate", type=float, default=0.05, help="Share of rows given one slip.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-confidence", type=float, default=None, help="Default: AuditConfig's.")
    parser.add_argument("--hold-confidence", type=float, default=None, help="Default: AuditConfig's.")
    parser.add_argument("--write-noisy", type=Path, default=None, help="Write the noisy batch here (JSONL).")
    parser.add_argument("--write-kept", type=Path, default=None,
                        help="Write the noisy batch without the rows the audit held (JSONL).")
    parser.add_argument("--json", type=Path, default=None, help="Append the result line to this file.")
    args = parser.parse_args()
    overrides = {k: v for k, v in (("min_confidence", args.min_confidence), ("hold_confidence", args.hold_confidence))
                 if v is not None}
    result = run(args.model, args.files, rate=args.rate, seed=args.seed, overrides=overrides,
                 write_noisy=args.write_noisy, write_kept=args.write_kept)
    line = json.dumps(result, ensure_ascii=False)
    print(line)
    if args.json:
        with args.json.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
