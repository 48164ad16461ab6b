"""Ingestion: read a file, a folder or an S3 inbox; validate every row; store good rows, quarantine bad ones.

Parsing is tolerant on purpose (trajet.parsers): a bad line never raises, it becomes a row with derived columns
that the GX suite (trajet.validate) fails, so it lands in quarantine with every reason it has. Every row read
ends up either stored, counted as a duplicate of a stored phrase, or quarantined -- nothing is dropped. The
queries and the batch transaction live in trajet.ingest_sql.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import os
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from trajet import config, store
from trajet import ingest_sql as sql
from trajet import validate as v
from trajet.errors import TrajetError
from trajet.labels import ENTITY_TYPES
from trajet.parsers import (
    LABELSTUDIO,
    Row,
    content_format,
    is_data_name,
    parse_file,
    raw_rows,
    suffix_format,
    utf8_ok,
)
from trajet.phrases import DataFileError

_REASON_ORDER = {
    reason: i
    for i, reason in enumerate(
        [r for _, _, r in v.ROW_RULES] + [r for _, _, r in v.STORE_RULES] + [v.NOT_UTF8, v.NOT_FORMAT, v.HELD]
    )
}


@dataclass
class BatchReport:
    batch_id: int | None
    source: str
    sha256: str
    status: str  # accepted | held | already_ingested | rejected | skipped (never read: see message)
    rows_read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def failed(self) -> bool:
        """Held, rejected or skipped: nothing of it was stored and a person must look."""
        return self.status in ("held", "rejected", "skipped")


# ------------------------------------------------------------------------------------------ normalisation


_COMBINING: dict[int, None] | None = None


def fast_normalise(text: str) -> str:
    """Same result as phrases.normalise_text (a test holds them equal), with the per-character Python loop
    replaced by str.translate: it was the largest single cost of ingesting 100k phrases."""
    global _COMBINING
    if not text.isascii():
        if _COMBINING is None:
            # Every combining mark Unicode defines lies below U+20000 (the last is U+1E94A): scanning the
            # 1.1M code points cost 0.6 s per process, a twentieth of a 100k-phrase batch.
            _COMBINING = {cp: None for cp in range(0x20000) if unicodedata.combining(chr(cp))}
        text = unicodedata.normalize("NFKD", text).translate(_COMBINING).replace("’", "'")
    return " ".join(text.lower().split())


# Place names repeat across a batch: normalise each distinct surface once.
_normalise_surface = functools.lru_cache(maxsize=1 << 16)(fast_normalise)



# --------------------------------------------------------------------------------------------- the frame

_ROW_INT_COLUMNS = tuple(col for col in v.ROW_COLUMNS if col not in ("text", "split"))


def _encodable(text: str | None) -> str | None:
    """Text as pandas/pyarrow can hold it: lone surrogates become U+FFFD (they are counted separately)."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def rows_frame(rows: Sequence[Row]) -> Any:
    import pandas as pd

    data: dict[str, Any] = {"row_id": range(len(rows))}
    for col in _ROW_INT_COLUMNS:
        data[col] = [r.counts.get(col, 0) for r in rows]
    frame = pd.DataFrame(data)
    # object dtype: texts may hold lone surrogates that a string dtype would refuse.
    frame["text"] = pd.Series([_encodable(r.text) for r in rows], dtype=object)
    frame["split"] = pd.Series([r.split for r in rows], dtype=object)
    return frame


def entity_key(text: str, entities: Iterable[tuple[int, int, str]]) -> tuple[tuple[str, str], ...]:
    """What two annotations of the same normalised text must agree on: labels and normalised surfaces."""
    return tuple((label, _normalise_surface(text[s:e])) for s, e, label in sorted(entities))


# ---------------------------------------------------------------------------------------------- sources


@dataclass
class SourceItem:
    """One batch to ingest: a name for people, a format, and a way to get its bytes."""

    name: str
    fmt: str
    path: Path | None = None
    s3: tuple[Any, str, str] | None = None  # (client, bucket, key)
    skip: str = ""  # why this item cannot be ingested as it is (it is reported, never read)

    def read(self) -> bytes:
        if self.path is not None:
            try:
                return self.path.read_bytes()
            except OSError as exc:
                raise TrajetError(f"{self.name}: cannot read ({exc.strerror})") from None
        client, bucket, key = self.s3  # type: ignore[misc]
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore raises many types; all mean "unreadable"
            raise TrajetError(f"{self.name}: cannot read ({exc})") from None


def s3_client() -> Any:
    """The project's S3 client (trajet.s3): same endpoint, credentials, timeouts and retries as the registry."""
    from trajet import s3

    return s3.client()


def list_source(source: str) -> list[SourceItem]:
    """The batches a SOURCE stands for; an unreadable source is a TrajetError."""
    if source.startswith("s3://"):
        bucket, _, prefix = source[5:].partition("/")
        if not bucket:
            raise TrajetError(f"{source}: expected s3://bucket/prefix")
        client = s3_client()
        items = []
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if is_data_name(key):
                        items.append(SourceItem(f"s3://{bucket}/{key}", suffix_format(key), s3=(client, bucket, key)))
        except Exception as exc:
            raise TrajetError(f"{source}: cannot list the inbox ({exc})") from None
        return sorted(items, key=lambda i: i.name)
    path = Path(source)
    if path.is_file():
        return [_file_item(path)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and is_data_name(p.name))
        return [_file_item(p) for p in files]
    raise TrajetError(f"{safe_name(source)}: no such file, folder or s3:// inbox")


def source_item(name: str) -> SourceItem:
    """The one batch a name from `list_source` stands for (a file path or an s3:// object URI), rebuilt where
    it is ingested: the ingest flow hands names, not clients, to its parallel tasks and processes."""
    if name.startswith("s3://"):
        bucket, _, key = name[5:].partition("/")
        return SourceItem(name, suffix_format(key), s3=(s3_client(), bucket, key))
    return _file_item(Path(name))


def safe_name(name: str) -> str:
    """A path as it can be printed and stored: bytes that are not UTF-8 (kept by the OS as surrogate escapes)
    are shown as \\xNN, so one odd file name cannot stop a whole ingestion."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _file_item(path: Path) -> SourceItem:
    name = str(path)
    if utf8_ok(name):
        return SourceItem(name, suffix_format(path.name), path=path)
    return SourceItem(safe_name(name), suffix_format(path.name), path=path,
                      skip="skipped: the file name is not UTF-8; rename it (e.g. `convmv -f latin1 -t utf8`) "
                           "and ingest again")


# ---------------------------------------------------------------------------------------------- ingestion


def ingest_source(source: str, *, engine: Engine | None = None, max_bad_ratio: float | None = None) -> list[BatchReport]:
    """Ingest every file/object of SOURCE (one report each). The schema must be current."""
    if engine is None:
        engine = store.get_engine()
    store.ensure_schema(engine)
    ratio = config.max_bad_ratio() if max_bad_ratio is None else max_bad_ratio
    return [ingest_item(item, engine, ratio) for item in list_source(source)]


def ingest_item(item: SourceItem, engine: Engine, max_bad_ratio: float) -> BatchReport:
    if item.skip:
        return BatchReport(None, item.name, "", "skipped", message=item.skip)
    data = item.read()
    sha = hashlib.sha256(data).hexdigest()
    previous = sql.accepted_batch(engine, sha)
    if previous is not None:
        return _already(previous, item, sha)
    item.fmt = content_format(item.name, item.fmt, data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raws = raw_rows(data.removeprefix(codecs.BOM_UTF8), item.fmt)
        message = f"not UTF-8 text (byte {exc.start}, line {line}): every row quarantined"
        return _retrying(item, sha, lambda: _store_rejected(engine, item, sha, raws, [v.NOT_UTF8], message))
    rows = _parse_item(item, data)
    row_reasons = _check_rows(rows)  # the row rules need no store: run once, whatever happens below
    return _retrying(item, sha, lambda: _validate_and_store(
        engine, item, sha, rows, {i: list(r) for i, r in row_reasons.items()}, max_bad_ratio))


RACE_RETRIES = 5


def _already(batch_id: int, item: SourceItem, sha: str) -> BatchReport:
    return BatchReport(batch_id, item.name, sha, "already_ingested",
                       message=f"same bytes already ingested as batch {batch_id}: nothing added")


def _retrying(item: SourceItem, sha: str, attempt: Callable[[], BatchReport]) -> BatchReport:
    """Run the store's part again when a concurrent ingestion changed the store under it: the second look
    sees the other batch's phrases as stored, so a row that lost the race is a duplicate (or a conflict),
    never an error nor a second copy."""
    for _ in range(RACE_RETRIES):
        try:
            return attempt()
        except sql.AlreadyIngested as exc:
            return _already(exc.batch_id, item, sha)
        except sql.StoreRaced as exc:
            raced = exc
    raise TrajetError(f"{item.name}: the store kept changing under this batch ({raced}, {RACE_RETRIES} tries); "
                      "run it again")


def _parse_item(item: SourceItem, data: bytes) -> list[Row]:
    try:
        if item.path is not None:
            return parse_file(item.path, item.fmt)
        with tempfile.TemporaryDirectory(prefix="trajet-ingest-") as tmp:
            path = Path(tmp) / ("batch" + Path(item.name).suffix)
            path.write_bytes(data)
            return parse_file(path, item.fmt)
    except DataFileError as exc:  # the file changed under us between the two reads
        raise TrajetError(f"{item.name}: {exc.reason}") from None


def _store_rejected(engine: Engine, item: SourceItem, sha: str, raws: list[tuple[int, bytes]],
                    reasons: list[str], message: str) -> BatchReport:
    report = BatchReport(None, item.name, sha, "rejected", rows_read=len(raws), quarantined=len(raws),
                         reasons=dict.fromkeys(reasons, len(raws)) if raws else {}, message=message)
    quarantine = [{"line": n, "raw": raw, "reasons": list(reasons)} for n, raw in raws]
    _write_batch(engine, item, report, [], quarantine, set())
    return report


def _order(reasons: Iterable[str]) -> list[str]:
    return sorted(set(reasons), key=lambda r: _REASON_ORDER.get(r, len(_REASON_ORDER)))


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(n / total, 4) if total else 0.0 for k, n in counts.items()}


# ------------------------------------------------------------------------------------- validate and store


def _validate_and_store(engine: Engine, item: SourceItem, sha: str, rows: list[Row], reasons: dict[int, list[str]],
                        max_bad_ratio: float) -> BatchReport:
    """Given the row rules' `reasons`: batch and store rules on the rows that passed, then the batch's fate, its
    quarantine, its batch-level checks, and one write."""
    passing = [i for i in range(len(rows)) if i not in reasons]
    norm, store_dup = _check_against_batch_and_store(engine, rows, passing, reasons)
    good = [i for i in passing if i not in reasons and i not in store_dup]
    valid = [i for i in passing if i not in reasons]  # good + duplicates of stored phrases

    report = BatchReport(None, item.name, sha, "accepted", rows_read=len(rows))
    bad_ratio = len(reasons) / len(rows) if rows else 0.0
    _decide_status(report, item, rows, reasons, good, store_dup, bad_ratio, max_bad_ratio)
    to_store = good if report.status == "accepted" else []
    duplicates = store_dup if report.status == "accepted" else set()

    quarantine, report.reasons = _quarantine(rows, reasons)
    report.stored, report.duplicates, report.quarantined = len(to_store), len(duplicates), len(quarantine)
    report.checks, names, known = _batch_checks(engine, rows, valid, reasons, store_dup, bad_ratio, max_bad_ratio)

    if report.status == "accepted":
        report.message = f"stored {report.stored}, {report.duplicates} already stored, {report.quarantined} quarantined"
    new_places = (names - known) if report.status == "accepted" else set()
    phrase_rows = [sql.phrase_record(rows[i], norm[i]) for i in to_store]
    _write_batch(engine, item, report, phrase_rows, quarantine, new_places)
    return report


def _check_rows(rows: Sequence[Row]) -> dict[int, list[str]]:
    """Row index -> reasons, for the rows the row rules (one row at a time) fail."""
    return v.run_suite(rows_frame(rows), "rows") if rows else {}


def _check_against_batch_and_store(engine: Engine, rows: Sequence[Row], passing: Sequence[int],
                                   reasons: dict[int, list[str]]) -> tuple[dict[int, str], set[int]]:
    """Duplicates within the batch and conflicts with the store, on the rows that passed the row rules; their
    reasons are added to `reasons`. Returns each passing row's normalised-text hash and the rows that are
    exact duplicates of a stored phrase (counted, never stored twice)."""
    norm = {i: store.norm_hash(fast_normalise(rows[i].text or "")) for i in passing}
    stored = {nh: entity_key(text, ents) for nh, (text, ents) in sql.stored_annotations(engine, list(norm.values())).items()}
    seen: Counter[str] = Counter()
    store_dup: set[int] = set()
    conflict_col, dup_col = [], []
    for i in passing:
        nh = norm[i]
        dup_col.append(seen[nh])
        seen[nh] += 1
        conflict = nh in stored and stored[nh] != entity_key(rows[i].text or "", rows[i].entities)
        conflict_col.append(int(conflict))
        if nh in stored and not conflict:
            store_dup.add(i)
    if passing:
        import pandas as pd

        frame = pd.DataFrame({"row_id": passing, "conflict": conflict_col, "dup_rank": dup_col})
        for row_id, extra in v.run_suite(frame, "store").items():
            reasons[row_id] = extra
    return norm, store_dup - reasons.keys()


_FORMAT_NAMES = {"conll": "CoNLL", "jsonl": "JSONL", LABELSTUDIO: "Label Studio JSON (an array of tasks)"}


def _decide_status(report: BatchReport, item: SourceItem, rows: Sequence[Row], reasons: dict[int, list[str]],
                   good: Sequence[int], store_dup: set[int], bad_ratio: float, max_bad_ratio: float) -> None:
    """Accepted, rejected (no row could be read in the declared format) or held (too many bad rows: then the
    good rows are quarantined too, so nothing of a suspicious batch reaches the store)."""
    not_format = bool(rows) and all(r.counts.get("unparseable") or r.counts.get("n_tag_mismatch") for r in rows) \
        and (item.fmt != "conll" or all(r.text is None for r in rows))
    if not_format:
        report.status = "rejected"
        for i in range(len(rows)):
            reasons[i] = reasons.get(i, []) + [v.NOT_FORMAT]
        kind = _FORMAT_NAMES.get(item.fmt, "JSONL")
        report.message = f"not a {kind} file: no row could be read as one"
    elif bad_ratio > max_bad_ratio:
        report.status = "held"
        for i in [*good, *sorted(store_dup)]:
            reasons[i] = [v.HELD]
        report.message = (f"held: {len(reasons) - len(good) - len(store_dup)} of {len(rows)} rows are bad "
                          f"({bad_ratio:.0%} > TRAJET_MAX_BAD_RATIO {max_bad_ratio:.0%}); nothing stored")


def _quarantine(rows: Sequence[Row], reasons: dict[int, list[str]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The quarantine records (raw bytes and ordered reasons) and the count of each reason, commonest first."""
    counts: Counter[str] = Counter()
    quarantine = []
    for i in sorted(reasons):
        ordered = _order(reasons[i])
        counts.update(ordered)
        quarantine.append({"line": rows[i].line, "raw": rows[i].raw, "reasons": ordered})
    return quarantine, dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _batch_checks(engine: Engine, rows: Sequence[Row], valid: Sequence[int], reasons: dict[int, list[str]],
                  store_dup: set[int], bad_ratio: float, max_bad_ratio: float) -> tuple[dict[str, Any], set[str], set[str]]:
    """Batch-level checks, reported and never row failures; with the batch's place names and those known."""
    label_counts = Counter({t: 0 for t in ENTITY_TYPES})
    names: set[str] = set()
    for i in valid:
        r = rows[i]
        for s, e, label in r.entities:
            label_counts[label] += 1
            names.add(_normalise_surface(r.text[s:e]))  # type: ignore[index]
    known = sql.known_places(engine, names)
    store_shares = _shares(sql.store_label_counts(engine))
    batch_shares = _shares(dict(label_counts))
    in_batch_dups = sum(1 for i in range(len(rows)) if v.DUPLICATE_IN_BATCH in reasons.get(i, []))
    checks = {
        "bad_ratio": round(bad_ratio, 4),
        "max_bad_ratio": max_bad_ratio,
        "duplicate_rate": round((len(store_dup) + in_batch_dups) / len(rows), 4) if rows else 0.0,
        "label_distribution": {
            "batch": batch_shares,
            "store": store_shares,
            "max_shift": round(max(abs(batch_shares[k] - store_shares[k]) for k in ENTITY_TYPES), 4)
            if any(store_shares.values()) and any(batch_shares.values()) else None,
        },
        "unseen_place_share": round(len(names - known) / len(names), 4) if names else 0.0,
        "unseen_places": len(names - known),
    }
    return checks, names, known


def _write_batch(engine: Engine, item: SourceItem, report: BatchReport, phrases: list[dict[str, Any]],
                 quarantine: list[dict[str, Any]], new_places: set[str]) -> None:
    batch = {"source": item.name, "sha256": report.sha256, "format": item.fmt, "status": report.status,
             "rows_read": report.rows_read, "stored": report.stored, "duplicates": report.duplicates,
             "quarantined": report.quarantined, "reasons": report.reasons, "checks": report.checks,
             "message": report.message}
    report.batch_id = sql.write_batch(engine, batch, phrases, quarantine, new_places)


# --------------------------------------------------------------------------------------------- quarantine


def export_quarantine(engine: Engine, batch_id: int) -> bytes:
    """The batch's quarantined rows in their input format, byte for byte, ready to fix and re-ingest."""
    batch, rows = sql.quarantine_rows(engine, batch_id)
    if batch.format == LABELSTUDIO and rows and all(_is_json(r.raw) for r in rows):
        # tasks go back as the array Label Studio imports: fix them there (or here) and ingest the file again;
        # a file that could not be cut into tasks (not UTF-8, not JSON) is one row and goes back verbatim
        return b"[\n" + b",\n".join(r.raw for r in rows) + b"\n]\n"
    sep = b"\n\n" if batch.format == "conll" else b"\n"
    # a byte-order mark is not part of the first row (batches stored before it was stripped on read kept it)
    return b"".join(r.raw.removeprefix(codecs.BOM_UTF8) + sep for r in rows)


def _is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True
