"""Tolerant parsers: every JSONL line, CoNLL sentence or Label Studio task becomes a `Row`, however broken.

A bad line never raises here: it becomes a row whose derived columns (counts of missing fields, wrong types,
spans off word boundaries, malformed tags...) the GX suite (trajet.validate) then fails, so it lands in
quarantine with every reason it has. Only a file that is not UTF-8 at all raises (DataFileError).
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from trajet.labels import ENTITY_TYPES
from trajet.labelstudio import RESULT_TYPE
from trajet.phrases import (
    BOM,
    DataFileError,
    detokenize,
    is_token_end,
    is_token_start,
    iter_conll_blocks,
    iter_lines,
    tokenize,
)
from trajet.tags import bio_to_spans, check_bio

CONLL_SUFFIXES = frozenset({".conll", ".conllu", ".tsv", ".bio"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
LABELSTUDIO = "labelstudio"  # a Label Studio JSON export: a `.json` file whose top level is an array of tasks
# `noise` is written by the phrase generator (which perturbations it applied).
ALLOWED_FIELDS = frozenset({"text", "entities", "split", "group", "pattern", "id", "source", "meta", "noise"})
REQUIRED_FIELDS = ("text", "entities")


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


def utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
            bad_extras = "\\u0000" in row.extras_json or not utf8_ok(row.extras_json)
    if bad_extras or (row.text is not None and not utf8_ok(row.text)):
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
    check = check_bio(tags)
    if check.unknown:
        c["n_unknown_label"] += check.unknown
    if check.malformed:
        c["n_malformed_bio"] += check.malformed
    text, offsets = detokenize(toks)
    row.text = text
    retok = tokenize(text)
    if [(t.start, t.end) for t in retok] != offsets:
        c["n_retokenize"] = 1
        return row
    row.entities = [(e.start, e.end, e.label) for e in bio_to_spans(retok, check.tags)]
    derive_spans(row)
    return row


def _utf16_to_code_points(text: str, start: int, end: int) -> tuple[int, int] | None:
    """UTF-16 offsets (what Label Studio versions before the emoji fix wrote: JavaScript string indices) as
    code-point offsets; None when they do not fall between code points."""
    units = 0
    found: dict[int, int] = {}
    for i, ch in enumerate(text):
        found[units] = i
        units += 2 if ord(ch) > 0xFFFF else 1
    found[units] = len(text)
    if start in found and end in found:
        return found[start], found[end]
    return None


def _latest_annotation(annotations: list[Any]) -> dict[str, Any] | None:
    """The annotation that counts: the latest one not cancelled (skipped), by updated_at or created_at (ISO
    strings), ties and missing dates going to the later one in the list, as Label Studio lists them."""
    live = [(str(a.get("updated_at") or a.get("created_at") or ""), i, a) for i, a in enumerate(annotations)
            if isinstance(a, dict) and a.get("was_cancelled") is not True]
    return max(live, key=lambda t: (t[0], t[1]))[2] if live else None


def parse_labelstudio_task(position: int, task: Any) -> Row:
    """One task of a Label Studio export as a Row. `line` is the task's position in the array (1-based); its
    raw bytes (kept for quarantine) begin with its `id`, so a quarantined row names both."""
    try:
        raw = orjson.dumps(task)
    except (TypeError, orjson.JSONEncodeError):  # NaN-free odd values, lone surrogates: the slow path
        raw = json.dumps(task, ensure_ascii=False).encode("utf-8", "surrogatepass")
    row = Row(position, raw)
    c = row.counts
    if not isinstance(task, dict):
        c["unparseable"] = 1
        return row
    data = task.get("data")
    if not isinstance(data, dict) or "text" not in data:
        c["n_missing"] += 1
    elif isinstance(data["text"], str):
        row.text = data["text"]
    else:
        c["n_wrong_type"] += 1
    annotations = task.get("annotations", [])
    if not isinstance(annotations, list):
        c["n_wrong_type"] += 1
        annotations = []
    annotation = _latest_annotation(annotations)
    if annotation is None:
        c["n_not_annotated"] = 1
    else:
        results = annotation.get("result", [])
        if not isinstance(results, list):
            c["n_wrong_type"] += 1
            results = []
        for result in results:
            _add_result(row, result)
    if "id" in task:
        row.extras = {"id": task["id"], "source": LABELSTUDIO}
        try:
            row.extras_json = orjson.dumps(row.extras).decode("utf-8")
        except (TypeError, orjson.JSONEncodeError):
            row.extras_json = json.dumps(row.extras, ensure_ascii=False)
            c["n_unencodable"] = int(not utf8_ok(row.extras_json))
    if row.text is not None and not utf8_ok(row.text):
        c["n_unencodable"] = 1
    derive_spans(row)
    return row


def _add_result(row: Row, result: Any) -> None:
    """One `labels` result as an entity; anything Trajet cannot represent as one counts against the row."""
    c = row.counts
    value = result.get("value") if isinstance(result, dict) else None
    if not isinstance(value, dict) or result.get("type") != RESULT_TYPE:  # choices, relations, text areas
        c["n_wrong_type"] += 1
        return
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    if (type(start) is not int or type(end) is not int or not isinstance(labels, list) or len(labels) != 1
            or not isinstance(labels[0], str)):
        c["n_wrong_type"] += 1
        return
    shown = value.get("text")
    text = row.text
    if isinstance(shown, str) and text is not None and text[max(start, 0):max(end, 0)] != shown:
        fixed = _utf16_to_code_points(text, start, end)
        if fixed is not None and text[fixed[0]:fixed[1]] == shown:
            start, end = fixed
        else:
            c["n_span_text"] += 1
    row.entities.append((start, end, labels[0]))


def parse_labelstudio(path: Path) -> list[Row]:
    """Every task of a Label Studio JSON export; a file that is not a JSON array is one unparseable row."""
    try:
        content = path.read_text(encoding="utf-8").removeprefix(BOM)
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataFileError(path, line, f"not UTF-8 text (byte {exc.start})") from None
    try:
        tasks = orjson.loads(content)
    except orjson.JSONDecodeError:
        try:
            tasks = json.loads(content)
        except (ValueError, RecursionError):
            tasks = None
    if not isinstance(tasks, list):
        row = Row(1, content.encode("utf-8", "surrogatepass"))
        row.counts["unparseable"] = 1
        return [row]
    return [parse_labelstudio_task(n, task) for n, task in enumerate(tasks, start=1)]


def suffix_format(name: str) -> str:
    return "conll" if Path(name).suffix.lower() in CONLL_SUFFIXES else "jsonl"


def content_format(name: str, fmt: str, data: bytes) -> str:
    """The format of a file once its bytes are known: a `.json` file whose first character is `[` is a Label
    Studio export (a JSONL row is an object, never an array); every other file keeps its suffix's format."""
    if fmt == "jsonl" and Path(name).suffix.lower() == ".json" and \
            data.removeprefix(BOM.encode("utf-8")).lstrip().startswith(b"["):
        return LABELSTUDIO
    return fmt


def parse_file(path: Path, fmt: str) -> list[Row]:
    """All rows of a UTF-8 file; raises DataFileError only for a file that is not UTF-8."""
    if fmt == "conll":
        return [parse_conll_row(block) for _, block in iter_conll_blocks(path)]
    if fmt == LABELSTUDIO:
        return parse_labelstudio(path)
    return [parse_jsonl_row(n, line) for n, line in iter_lines(path)]


def raw_rows(data: bytes, fmt: str) -> list[tuple[int, bytes]]:
    """Rows cut from undecodable bytes, so a non-UTF-8 file is still quarantined row by row, verbatim."""
    if fmt == LABELSTUDIO:  # tasks cannot be cut from undecodable JSON: the file is one row
        return [(1, data)] if data.strip() else []
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




def is_data_name(name: str) -> bool:
    suffix = Path(name).suffix.lower()
    return suffix in CONLL_SUFFIXES or suffix in JSONL_SUFFIXES
