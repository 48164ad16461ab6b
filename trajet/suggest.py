"""What to annotate next: rank unlabeled requests by the model's uncertainty, keep the list diverse, and write
them pre-annotated (the model's spans as a starting point) for annotators to correct and ingest.

**Uncertainty.** A request's uncertainty is `1 - min` over its words (punctuation aside: `judged_words`) of the
probability of the tag the decoder chose for that word (`Predictor.tag_words`: the softmax of the word's first
sub-token, read at the decoded tag).
The least sure word, not the product or the mean over words: a product falls with every word, so long messages
would fill the list whatever the model knows; a mean dilutes one hard word among many easy `de`/`à`/`le`. One
word the model cannot decide is what makes a request worth an annotator's time, and the decoded tag's own
probability also catches the case where the trip's rules (trajet.decode) overrode the model's first choice:
that tag then has a low probability. The mean of `1 - p` breaks ties (several requests whose hardest word is
equally hard: the one with more hard words first), then the input order.

**Diversity.** Taken in that order, a request is skipped when its set of normalised words (case, accents and
punctuation folded) has a Jaccard similarity of `max_similarity` (0.7) or more with one already chosen. Two
requests of one template with other towns (`de Paris à Lyon` / `de Metz à Dijon`, 7 words) score 0.56 and are
both kept, since the towns are often what the model is unsure of; the same request retyped with one word changed
in ten scores 0.82 and is not, so a pool full of copies cannot fill the list.

**Rows written.** `{"text", "entities": [{"start", "end", "label"}], "meta": {"suggested": true, "uncertainty",
"model", "rank", "least_sure_word", "pool_line"}}` plus the request's own `id` and `group`. Ingestion refuses
unknown top-level keys (`extra field`) and entity objects with more than start/end/label, so the suggestion's
facts live under `meta`, which ingestion accepts and stores with the phrase: a corrected file is ingested as it is,
and the store keeps that each phrase started as a suggestion.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trajet.errors import TrajetError
from trajet.phrases import iter_lines, normalise_text
from trajet.tags import bio_to_spans

if TYPE_CHECKING:
    from trajet.predictor import Predictor
    from trajet.tags import Entity
    from trajet.words import Token

DEFAULT_MAX_SIMILARITY = 0.7
TEXT_SUFFIXES = frozenset({".txt", ".text"})  # one request a line; anything else is read as JSONL
CARRIED = ("id", "group")  # the request's own keys that ingestion accepts, kept on its suggestion row


@dataclass(frozen=True)
class Request:
    line: int
    text: str
    carried: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scored:
    request: Request
    entities: list[Entity]
    uncertainty: float
    mean_uncertainty: float
    least_sure_word: str
    words: frozenset[str]


@dataclass
class Suggestions:
    """The chosen rows, in rank order, and what happened to every other line of the pool."""

    rows: list[dict[str, Any]]
    read: int  # non-blank lines
    problems: list[str]  # "file:line: reason", one per line skipped
    near_duplicates: int  # readable requests skipped as too similar to one chosen before them


def read_pool(path: Path) -> tuple[list[Request], list[tuple[int, str]]]:
    """The requests of a pool file and, per line that is not one, its number and `file:line: reason`.

    `.txt` files hold one request a line; any other file is JSONL with a string `text` per object (an `entities`
    key, if any, is ignored: the pool is what nobody has annotated yet). A file that is not UTF-8 raises."""
    if not path.is_file():
        raise TrajetError(f"input file not found: {path}")
    as_text = path.suffix.lower() in TEXT_SUFFIXES
    requests: list[Request] = []
    problems: list[tuple[int, str]] = []
    for n, raw in iter_lines(path):
        if as_text:
            requests.append(Request(n, raw.strip()))
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append((n, f"{path}:{n}: not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except RecursionError:
            problems.append((n, f"{path}:{n}: not valid JSON (nested too deep)"))
            continue
        if not isinstance(obj, dict):
            problems.append((n, f"{path}:{n}: a line must be a JSON object with a 'text' field"))
        elif not isinstance(obj.get("text"), str):
            problems.append((n, f"{path}:{n}: missing string field 'text'"))
        else:
            carried = {k: obj[k] for k in CARRIED if isinstance(obj.get(k), str | int) and not isinstance(obj[k], bool)}
            meta = obj["meta"] if isinstance(obj.get("meta"), dict) else {}
            requests.append(Request(n, obj["text"], carried, meta))
    return requests, problems


def word_set(tokens: Iterable[Token]) -> frozenset[str]:
    """The request's words as the diversity test compares them: normalised, punctuation left out."""
    return frozenset(w for w in (normalise_text(t.text) for t in tokens) if any(c.isalnum() for c in w))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def judged_words(tokens: Sequence[Token]) -> list[int]:
    """The positions of the words whose tags measure the model's doubt: all but punctuation, unless the text is
    nothing else. A punctuation word's tag follows the words around it: the decoder puts the `-` of
    `Dijon-Ville` inside the station's span while the model reads it as the glue of `Lyon-Paris` (probability
    0.002 for the decoded tag), which made that request, whose places the model was sure of, the first
    suggestion among hand-written batches 01-09 for the default model (4 of its top 200 change)."""
    words = [k for k, t in enumerate(tokens) if any(c.isalnum() for c in t.text)]
    return words or list(range(len(tokens)))


def uncertainty(tokens: Sequence[Token], probs: Sequence[float]) -> float:
    """1 - the probability of the least sure word's decoded tag (see the module's docstring for why)."""
    return max((1.0 - probs[k] for k in judged_words(tokens)), default=0.0)


def score_pool(predictor: Predictor, requests: Sequence[Request],
               source: str) -> tuple[list[Scored], list[tuple[int, str]]]:
    """Each readable request with the model's spans and uncertainty; the line and a `file:line: reason` for
    each the model refuses (empty, over-long, no words)."""
    scored: list[Scored] = []
    problems: list[tuple[int, str]] = []
    for req, tagged in zip(requests, predictor.tag_words([r.text for r in requests]), strict=True):
        if isinstance(tagged, str):
            problems.append((req.line, f"{source}:{req.line}: {tagged}"))
            continue
        judged = judged_words(tagged.tokens)
        doubts = [1.0 - tagged.probs[k] for k in judged]
        least = judged[max(range(len(doubts)), key=doubts.__getitem__)] if doubts else None
        scored.append(Scored(
            request=req,
            entities=bio_to_spans(tagged.tokens, tagged.tags, strict=False),
            uncertainty=max(doubts, default=0.0),
            mean_uncertainty=sum(doubts) / len(doubts) if doubts else 0.0,
            least_sure_word=tagged.tokens[least].text if least is not None else "",
            words=word_set(tagged.tokens),
        ))
    return scored, problems


def select(scored: Sequence[Scored], n: int, max_similarity: float = DEFAULT_MAX_SIMILARITY) -> tuple[list[Scored], int]:
    """The `n` most uncertain requests, greedily, skipping any too similar to one already chosen; also the number
    skipped that way before the list was full."""
    ranked = sorted(scored, key=lambda s: (-s.uncertainty, -s.mean_uncertainty, s.request.line))
    chosen: list[Scored] = []
    skipped = 0
    for cand in ranked:
        if len(chosen) >= n:
            break
        if any(jaccard(cand.words, c.words) >= max_similarity for c in chosen):
            skipped += 1
            continue
        chosen.append(cand)
    return chosen, skipped


def suggestion_row(s: Scored, *, rank: int, model: str) -> dict[str, Any]:
    """One pre-annotated row, in the JSONL form `trajet ingest` reads once an annotator has corrected it."""
    meta = {
        **s.request.meta,
        "suggested": True,
        "uncertainty": round(s.uncertainty, 4),
        "model": model,
        "rank": rank,
        "least_sure_word": s.least_sure_word,
        "pool_line": s.request.line,
    }
    return {
        "text": s.request.text,
        "entities": [{"start": e.start, "end": e.end, "label": e.label} for e in s.entities],
        **s.request.carried,
        "meta": meta,
    }


def suggest(predictor: Predictor, path: Path, *, n: int, model: str,
            max_similarity: float = DEFAULT_MAX_SIMILARITY) -> Suggestions:
    """Read the pool, score it, choose `n` diverse uncertain requests; raises only when nothing is readable."""
    if n < 1:
        raise TrajetError(f"-n {n}: expected at least 1")
    if not 0.0 < max_similarity <= 1.0:
        raise TrajetError(f"--max-similarity {max_similarity}: expected a value in (0, 1]")
    requests, bad = read_pool(path)
    scored, refused = score_pool(predictor, requests, str(path))
    read = len(requests) + len(bad)
    problems = [msg for _, msg in sorted(bad + refused)]
    if not scored:
        first = f"; first: {problems[0]}" if problems else ""
        raise TrajetError(f"{path}: no readable request ({len(problems)} bad lines{first})")
    chosen, near = select(scored, n, max_similarity)
    rows = [suggestion_row(s, rank=k, model=model) for k, s in enumerate(chosen, start=1)]
    return Suggestions(rows=rows, read=read, problems=problems, near_duplicates=near)


SUGGESTION_DATA = ("rank", "uncertainty", "least_sure_word", "pool_line")


def suggestion_tasks(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same suggestions as Label Studio pre-annotation tasks (`trajet suggest --format labelstudio`): the
    model's spans as a prediction of the model that ranked them, the rank and the doubt in `data`. The
    prediction's score is the probability of the least sure word's tag (1 - uncertainty), so Label Studio's sort
    by prediction score puts the requests the model doubts most first, as the JSONL's order does. Annotate them
    there, export the project as JSON and `trajet ingest` the export."""
    from trajet.labelstudio import prediction_tasks

    data = [{**{k: r[k] for k in CARRIED if k in r}, **{k: r["meta"][k] for k in SUGGESTION_DATA}} for r in rows]
    return prediction_tasks([r["text"] for r in rows], [r["entities"] for r in rows],
                            model_version=[str(r["meta"]["model"]) for r in rows],
                            task_scores=[1.0 - float(r["meta"]["uncertainty"]) for r in rows], data=data)


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
