"""Ingestion: read a file, a folder or an S3 inbox; validate every row; store good rows, quarantine bad ones.

Parsing is tolerant on purpose: a bad line never raises, it becomes a row with derived columns that the GX
suite (trajet.validate) fails, so it lands in quarantine with every reason it has. Every row read ends up
either stored, counted as a duplicate of a stored phrase, or quarantined -- nothing is dropped.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import json
import os
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.engine import Engine

from trajet import config, store
from trajet import validate as v
from trajet.errors import TrajetError
from trajet.labels import ENTITY_TYPES, LABEL2ID
from trajet.phrases import (
    DataFileError,
    bio_to_spans,
    detokenize,
    is_token_end,
    is_token_start,
    iter_conll_blocks,
    iter_lines,
    tokenize,
)

CONLL_SUFFIXES = frozenset({".conll", ".conllu", ".tsv", ".bio"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
# `noise` is written by the phrase generator (which perturbations it applied).
ALLOWED_FIELDS = frozenset({"text", "entities", "split", "group", "pattern", "id", "source", "meta", "noise"})
REQUIRED_FIELDS = ("text", "entities")
_REASON_ORDER = {
    reason: i
    for i, reason in enumerate(
        [r for _, _, r in v.ROW_RULES] + [r for _, _, r in v.STORE_RULES] + [v.NOT_UTF8, v.NOT_FORMAT, v.HELD]
    )
}
_CHUNK = 2000


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


# -------------------------------------------------------------------------------------------- row parsing


@dataclass
class Row:
    """One input row (a JSONL line or a CoNLL sentence) and the columns the suite checks."""

    line: int
    raw: bytes
    text: str | None = None
    entities: list[tuple[int, int, str]] = field(default_factory=list)
    split: Any = None
    group: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    extras_json: str = "{}"  # serialised once: checked for NUL/surrogates here, stored as is later
    counts: Counter[str] = field(default_factory=Counter)


def _bad_edge(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in "PZSC"


def derive_spans(row: Row) -> None:
    """Count span problems against the shared tokenizer; counts feed the suite's thresholds."""
    text = row.text
    if text is None:
        return
    c = row.counts
    if not row.entities:
        return
    # With start < end, a span starting on a token start and ending on a token end covers whole tokens. The
    # boundary checks look only at the words around them: tokenizing every whole text was the largest cost.
    size = len(text)
    inside: list[tuple[int, int]] = []
    for start, end, label in row.entities:
        if label in ENTITY_TYPES:
            c["n_" + label.lower()] += 1
        else:
            c["n_unknown_label"] += 1
        if not (0 <= start < end <= size):
            c["n_out_of_bounds"] += 1
            continue
        if _bad_edge(text[start]) or _bad_edge(text[end - 1]):
            c["n_untrimmed"] += 1
        if not (is_token_start(text, start) and is_token_end(text, end)):
            c["n_off_boundary"] += 1
        inside.append((start, end))
    inside.sort()
    reach = -1
    for start, end in inside:
        if start < reach:
            c["n_overlap"] += 1
        reach = max(reach, end)


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def parse_jsonl_row(line: int, raw_line: str) -> Row:
    row = Row(line, raw_line.encode("utf-8", "surrogatepass"))
    c = row.counts
    try:
        obj = orjson.loads(raw_line)
    except orjson.JSONDecodeError:
        # orjson (3x faster) refuses a few things the json module reads: NaN, integers over 64 bits, lone
        # surrogate escapes. Those rows take the slow path, so their reasons stay what the json module says.
        try:
            obj = json.loads(raw_line)
        except (ValueError, RecursionError):
            c["unparseable"] = 1
            return row
    if not isinstance(obj, dict):
        c["unparseable"] = 1
        return row
    c["n_missing"] = sum(1 for k in REQUIRED_FIELDS if k not in obj)
    c["n_extra"] = sum(1 for k in obj if k not in ALLOWED_FIELDS)
    text = obj.get("text")
    if isinstance(text, str):
        row.text = text
    elif "text" in obj:
        c["n_wrong_type"] += 1
    ents = obj.get("entities", [])
    if not isinstance(ents, list):
        c["n_wrong_type"] += 1
        ents = []
    for ent in ents:
        if not isinstance(ent, dict) or not {"start", "end", "label"} <= ent.keys():
            c["n_wrong_type"] += 1
            continue
        start, end, label = ent["start"], ent["end"], ent["label"]
        if type(start) is not int or type(end) is not int or not isinstance(label, str) or len(ent) != 3:
            c["n_wrong_type"] += 1
            continue
        row.entities.append((start, end, label))
    if "split" in obj:
        split = obj["split"]
        row.split = split if isinstance(split, str) else json.dumps(split)
    group = obj.get("group")
    if group is not None and not isinstance(group, str):
        c["n_wrong_type"] += 1
    else:
        row.group = group
    if "meta" in obj and not isinstance(obj["meta"], dict):
        c["n_wrong_type"] += 1
    row.extras = {k: val for k, val in obj.items() if k in ALLOWED_FIELDS and k not in ("text", "entities")}
    bad_extras = False
    if row.extras:
        try:
            row.extras_json = orjson.dumps(row.extras).decode("utf-8")
            bad_extras = "\\u0000" in row.extras_json
        except (TypeError, orjson.JSONEncodeError):  # lone surrogates, NaN-free but odd values: slow path
            row.extras_json = json.dumps(row.extras, ensure_ascii=False)
            bad_extras = "\\u0000" in row.extras_json or not _utf8_ok(row.extras_json)
    if bad_extras or (row.text is not None and not _utf8_ok(row.text)):
        c["n_unencodable"] = 1
    derive_spans(row)
    return row


def parse_conll_row(block: Sequence[tuple[int, str]]) -> Row:
    row = Row(block[0][0], "\n".join(line for _, line in block).encode("utf-8", "surrogatepass"))
    c = row.counts
    toks: list[str] = []
    tags: list[str] = []
    for _, line in block:
        cols = line.split("\t")
        if len(cols) == 1 or (len(cols) == 2 and not cols[1].strip()):
            c["n_tag_mismatch"] += 1
        elif len(cols) > 2 or not cols[0]:
            c["unparseable"] += 1
        else:
            toks.append(cols[0])
            tags.append(cols[1].strip())
    if not toks:
        return row
    clean: list[str] = []
    previous = "O"
    for tag in tags:
        if tag not in LABEL2ID:
            c["n_unknown_label"] += 1
            tag = "O"
        elif tag.startswith("I-") and previous[2:] != tag[2:]:
            c["n_malformed_bio"] += 1
        clean.append(tag)
        previous = tag
    text, offsets = detokenize(toks)
    row.text = text
    retok = tokenize(text)
    if [(t.start, t.end) for t in retok] != offsets:
        c["n_retokenize"] = 1
        return row
    row.entities = [(e.start, e.end, e.label) for e in bio_to_spans(retok, clean, strict=False)]
    derive_spans(row)
    return row


def _suffix_format(name: str) -> str:
    return "conll" if Path(name).suffix.lower() in CONLL_SUFFIXES else "jsonl"


def parse_file(path: Path, fmt: str) -> list[Row]:
    """All rows of a UTF-8 file; raises DataFileError only for a file that is not UTF-8."""
    if fmt == "conll":
        return [parse_conll_row(block) for _, block in iter_conll_blocks(path)]
    return [parse_jsonl_row(n, line) for n, line in iter_lines(path)]


def raw_rows(data: bytes, fmt: str) -> list[tuple[int, bytes]]:
    """Rows cut from undecodable bytes, so a non-UTF-8 file is still quarantined row by row, verbatim."""
    rows: list[tuple[int, bytes]] = []
    block: list[bytes] = []
    first = 0
    for n, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            if block:
                rows.append((first, b"\n".join(block)))
                block = []
            continue
        if fmt == "jsonl":
            rows.append((n, line))
            continue
        if not block:
            first = n
        block.append(line)
    if block:
        rows.append((first, b"\n".join(block)))
    return rows


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


def _is_data_name(name: str) -> bool:
    suffix = Path(name).suffix.lower()
    return suffix in CONLL_SUFFIXES or suffix in JSONL_SUFFIXES


def s3_client() -> Any:
    """boto3 S3 client; boto3 itself honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 (MinIO, moto)."""
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))


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
                    if _is_data_name(key):
                        items.append(SourceItem(f"s3://{bucket}/{key}", _suffix_format(key), s3=(client, bucket, key)))
        except Exception as exc:
            raise TrajetError(f"{source}: cannot list the inbox ({exc})") from None
        return sorted(items, key=lambda i: i.name)
    path = Path(source)
    if path.is_file():
        return [_file_item(path)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_data_name(p.name))
        return [_file_item(p) for p in files]
    raise TrajetError(f"{safe_name(source)}: no such file, folder or s3:// inbox")


def safe_name(name: str) -> str:
    """A path as it can be printed and stored: bytes that are not UTF-8 (kept by the OS as surrogate escapes)
    are shown as \\xNN, so one odd file name cannot stop a whole ingestion."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _file_item(path: Path) -> SourceItem:
    name = str(path)
    if _utf8_ok(name):
        return SourceItem(name, _suffix_format(path.name), path=path)
    return SourceItem(safe_name(name), _suffix_format(path.name), path=path,
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


def _accepted_batch(engine: Engine, sha: str) -> int | None:
    with engine.connect() as conn:
        return conn.scalar(
            select(store.Batch.id).where(store.Batch.sha256 == sha, store.Batch.status == "accepted").limit(1)
        )


def ingest_item(item: SourceItem, engine: Engine, max_bad_ratio: float) -> BatchReport:
    if item.skip:
        return BatchReport(None, item.name, "", "skipped", message=item.skip)
    data = item.read()
    sha = hashlib.sha256(data).hexdigest()
    previous = _accepted_batch(engine, sha)
    if previous is not None:
        return BatchReport(previous, item.name, sha, "already_ingested",
                           message=f"same bytes already ingested as batch {previous}: nothing added")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raws = raw_rows(data.removeprefix(codecs.BOM_UTF8), item.fmt)
        return _store_rejected(engine, item, sha, raws, [v.NOT_UTF8],
                               f"not UTF-8 text (byte {exc.start}, line {line}): every row quarantined")
    rows = _parse_item(item, data)
    return _validate_and_store(engine, item, sha, rows, max_bad_ratio)


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


def _chunks(seq: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _stored_keys(engine: Engine, hashes: Sequence[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    found: dict[str, tuple[tuple[str, str], ...]] = {}
    P = store.PhraseRow
    with engine.connect() as conn:
        for part in _chunks(sorted(set(hashes))):
            for nh, text, ents in conn.execute(select(P.norm_hash, P.text, P.entities).where(P.norm_hash.in_(part))):
                found[nh] = entity_key(text, [(e["start"], e["end"], e["label"]) for e in ents])
    return found


def _known_places(engine: Engine, names: Iterable[str]) -> set[str]:
    known: set[str] = set()
    with engine.connect() as conn:
        for part in _chunks(sorted(set(names))):
            known.update(conn.scalars(select(store.PlaceName.name).where(store.PlaceName.name.in_(part))))
    return known


def _store_label_shares(engine: Engine) -> dict[str, float]:
    P = store.PhraseRow
    with engine.connect() as conn:
        dep, arr, via = conn.execute(
            select(sa.func.coalesce(sa.func.sum(P.n_depart), 0), sa.func.coalesce(sa.func.sum(P.n_arrivee), 0),
                   sa.func.coalesce(sa.func.sum(P.n_via), 0))
        ).one()
    return _shares({"DEPART": int(dep), "ARRIVEE": int(arr), "VIA": int(via)})


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(n / total, 4) if total else 0.0 for k, n in counts.items()}


def _validate_and_store(engine: Engine, item: SourceItem, sha: str, rows: list[Row], max_bad_ratio: float) -> BatchReport:
    reasons: dict[int, list[str]] = v.run_suite(rows_frame(rows), "rows") if rows else {}
    passing = [i for i in range(len(rows)) if i not in reasons]

    # Second pass on rows that passed: duplicates within the batch and conflicts with the store.
    norm = {i: store.norm_hash(fast_normalise(rows[i].text or "")) for i in passing}
    stored = _stored_keys(engine, list(norm.values()))
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
    store_dup -= reasons.keys()
    good = [i for i in passing if i not in reasons and i not in store_dup]
    valid = [i for i in passing if i not in reasons]  # good + duplicates of stored phrases

    report = BatchReport(None, item.name, sha, "accepted", rows_read=len(rows))
    bad_ratio = len(reasons) / len(rows) if rows else 0.0
    not_format = bool(rows) and all(r.counts.get("unparseable") or r.counts.get("n_tag_mismatch") for r in rows) \
        and (item.fmt == "jsonl" or all(r.text is None for r in rows))
    if not_format:
        report.status = "rejected"
        for i in range(len(rows)):
            reasons[i] = reasons.get(i, []) + [v.NOT_FORMAT]
        report.message = f"not a {'CoNLL' if item.fmt == 'conll' else 'JSONL'} file: no row could be read as one"
    elif bad_ratio > max_bad_ratio:
        report.status = "held"
        for i in good + sorted(store_dup):
            reasons[i] = [v.HELD]
        report.message = (f"held: {len(reasons) - len(good) - len(store_dup)} of {len(rows)} rows are bad "
                          f"({bad_ratio:.0%} > TRAJET_MAX_BAD_RATIO {max_bad_ratio:.0%}); nothing stored")
    to_store = good if report.status == "accepted" else []
    duplicates = store_dup if report.status == "accepted" else set()

    counts: Counter[str] = Counter()
    quarantine = []
    for i in sorted(reasons):
        ordered = _order(reasons[i])
        counts.update(ordered)
        quarantine.append({"line": rows[i].line, "raw": rows[i].raw, "reasons": ordered})
    report.stored, report.duplicates, report.quarantined = len(to_store), len(duplicates), len(quarantine)
    report.reasons = dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    # Batch-level checks: reported, never row failures.
    label_counts = Counter({t: 0 for t in ENTITY_TYPES})
    names: set[str] = set()
    for i in valid:
        r = rows[i]
        for s, e, label in r.entities:
            label_counts[label] += 1
            names.add(_normalise_surface(r.text[s:e]))  # type: ignore[index]
    known = _known_places(engine, names)
    store_shares = _store_label_shares(engine)
    batch_shares = _shares(dict(label_counts))
    in_batch_dups = sum(1 for i in range(len(rows)) if v.DUPLICATE_IN_BATCH in reasons.get(i, []))
    report.checks = {
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

    if report.status == "accepted":
        summary = f"stored {report.stored}, {report.duplicates} already stored, {report.quarantined} quarantined"
        report.message = summary
    new_places = (names - known) if report.status == "accepted" else set()
    phrase_rows = [_phrase_record(rows[i], norm[i]) for i in to_store]
    _write_batch(engine, item, report, phrase_rows, quarantine, new_places)
    return report


def _phrase_record(row: Row, nhash: str) -> dict[str, Any]:
    """Split fixed now, once: an explicit train/test wins, else the normalised-text hash decides."""
    split = row.split if row.split in ("train", "test") else store.hash_split(nhash)
    return {
        "text": row.text,
        "norm_hash": nhash,
        "entities": [{"start": s, "end": e, "label": label} for s, e, label in sorted(row.entities)],
        "split": split,
        "is_validation": split == "train" and store.hash_is_validation(nhash),
        "group": row.group[:100] if row.group else None,
        "meta": row.extras,
        "meta_json": row.extras_json,
        "n_depart": row.counts.get("n_depart", 0),
        "n_arrivee": row.counts.get("n_arrivee", 0),
        "n_via": row.counts.get("n_via", 0),
    }


_PHRASE_COLUMNS = ("text", "norm_hash", "entities", "split", "is_validation", "group", "meta", "n_depart",
                   "n_arrivee", "n_via", "batch_id")


def _insert_phrases(conn: sa.Connection, phrases: list[dict[str, Any]], batch_id: int) -> None:
    """Driver-level executemany with JSON serialised here: per-row ORM/Core parameter processing was the
    largest cost of a 100k-phrase batch, and the rows are plain values already checked by the suite."""
    if not phrases:
        return
    dialect = conn.dialect
    mark = {"qmark": "?", "numeric": None, "named": None}.get(dialect.paramstyle, "%s")
    if mark is None:  # a driver with another style: let SQLAlchemy bind
        for part in _chunks(phrases, 10_000):
            conn.execute(sa.insert(store.PhraseRow.__table__),
                         [{**{k: v for k, v in p.items() if k != "meta_json"}, "batch_id": batch_id} for p in part])
        return
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote('phrases')} ({', '.join(quote(c) for c in _PHRASE_COLUMNS)}) "
           f"VALUES ({', '.join([mark] * len(_PHRASE_COLUMNS))})")
    for part in _chunks(phrases, 10_000):
        conn.exec_driver_sql(sql, [(p["text"], p["norm_hash"], entities_json(p["entities"]), p["split"],
                                    p["is_validation"], p["group"], p["meta_json"], p["n_depart"], p["n_arrivee"],
                                    p["n_via"], batch_id)
                                   for p in part])


def entities_json(entities: list[dict[str, Any]]) -> str:
    """json.dumps's exact output for validated spans (int offsets, a known label), without its per-call cost."""
    return "[" + ", ".join(
        f'{{"start": {e["start"]}, "end": {e["end"]}, "label": "{e["label"]}"}}' for e in entities
    ) + "]"


def _write_batch(engine: Engine, item: SourceItem, report: BatchReport, phrases: list[dict[str, Any]],
                 quarantine: list[dict[str, Any]], new_places: set[str]) -> None:
    """One transaction per batch: the batch row, its phrases, its quarantine and new place names."""
    try:
        with store.session(engine) as s:
            batch = store.Batch(source=item.name, sha256=report.sha256, format=item.fmt, status=report.status,
                                rows_read=report.rows_read, stored=report.stored, duplicates=report.duplicates,
                                quarantined=report.quarantined, reasons=report.reasons, checks=report.checks,
                                message=report.message)
            s.add(batch)
            s.flush()
            _insert_phrases(s.connection(), phrases, batch.id)
            for part in _chunks(quarantine, 10_000):
                s.execute(sa.insert(store.QuarantinedRow.__table__), [{**q, "batch_id": batch.id} for q in part])
            places = sorted(n for n in new_places if len(n) <= 512)
            for part in _chunks(places, 10_000):
                s.execute(sa.insert(store.PlaceName.__table__), [{"name": n} for n in part])
            report.batch_id = batch.id
    except sa.exc.IntegrityError as exc:
        raise TrajetError(f"{item.name}: the store changed during ingestion ({exc.orig}); run it again") from None


# --------------------------------------------------------------------------------------------- quarantine


def quarantine_rows(engine: Engine, batch_id: int) -> tuple[store.Batch, list[store.QuarantinedRow]]:
    store.ensure_schema(engine)
    with store.session(engine) as s:
        batch = s.get(store.Batch, batch_id)
        if batch is None:
            raise TrajetError(f"no batch {batch_id} (see `trajet quarantine list`)")
        rows = list(s.scalars(select(store.QuarantinedRow).where(store.QuarantinedRow.batch_id == batch_id)
                              .order_by(store.QuarantinedRow.line, store.QuarantinedRow.id)))
        return batch, rows


def export_quarantine(engine: Engine, batch_id: int) -> bytes:
    """The batch's quarantined rows in their input format, byte for byte, ready to fix and re-ingest."""
    batch, rows = quarantine_rows(engine, batch_id)
    sep = b"\n\n" if batch.format == "conll" else b"\n"
    # a byte-order mark is not part of the first row (batches stored before it was stripped on read kept it)
    return b"".join(r.raw.removeprefix(codecs.BOM_UTF8) + sep for r in rows)
