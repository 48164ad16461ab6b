"""Build data/challenge.jsonl from the hand-written data/challenge.src.tsv.

The challenge set is written in markup (`de [Paris|D] à [Lyon|A]`) because people annotate far more
reliably that way than with character offsets; the JSONL is what the rest of Trajet reads. Any line
that cannot become a valid phrase stops the build with `file:line: reason`, so a typo in the markup
can never silently drop or mislabel a sentence of the set the team measures real-world quality on.

Usage (from the repository root):
    python data/build_challenge.py            # rewrite data/challenge.jsonl
    python data/build_challenge.py --check    # exit 1 when the committed JSONL is stale
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import unicodedata
from pathlib import Path

# Run as a plain script (`python data/build_challenge.py`), sys.path[0] is data/: make the sibling
# `trajet` package importable without installing it.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from trajet.errors import TrajetError  # noqa: E402
from trajet.phrases import (  # noqa: E402
    DataFileError,
    Phrase,
    PhraseError,
    iter_lines,
    normalise_text,
    parse_markup,
    write_jsonl,
)

GROUPS: tuple[str, ...] = (
    "standard",
    "lowercase_noaccent",
    "typos",
    "person_names",
    "distractors",
    "no_trip",
    "stations",
    "terse",
    "multi_via",
    "arrival_first",
    "long_requests",
    "sms_style",
    "small_towns",
)
MAX_VIA = 5
DEFAULT_SRC = Path(__file__).resolve().with_name("challenge.src.tsv")
DEFAULT_OUT = Path(__file__).resolve().with_name("challenge.jsonl")


def _has_accent(text: str) -> bool:
    return any(unicodedata.combining(c) for c in unicodedata.normalize("NFKD", text))


def _check_phrase(group: str, phrase: Phrase) -> None:
    """Rules of the hand-written sets that the phrase model alone does not enforce."""
    labels = [e.label for e in phrase.entities]
    for label in ("DEPART", "ARRIVEE"):
        if labels.count(label) > 1:
            raise PhraseError(f"{labels.count(label)} {label} entities (at most one per sentence)")
    if labels.count("VIA") > MAX_VIA:
        raise PhraseError(f"{labels.count('VIA')} VIA entities (at most {MAX_VIA})")
    if group == "no_trip" and phrase.entities:
        raise PhraseError("a no_trip sentence must carry no entity")
    if group == "lowercase_noaccent" and (phrase.text != phrase.text.lower() or _has_accent(phrase.text)):
        raise PhraseError("a lowercase_noaccent sentence must be all lowercase without accents")


def parse_line(raw: str, groups: tuple[str, ...] = GROUPS) -> Phrase:
    """One `group<TAB>marked sentence` line -> Phrase with meta {"group": ...}."""
    parts = raw.split("\t")
    if len(parts) != 2:
        raise PhraseError(f"expected 'group<TAB>marked sentence', found {len(parts) - 1} tab(s)")
    group, marked = parts
    if group not in groups:
        raise PhraseError(f"unknown group {group!r} (expected one of {', '.join(groups)})")
    if not marked.strip():
        raise PhraseError("empty sentence")
    if marked != marked.strip():
        raise PhraseError("the sentence starts or ends with whitespace")
    phrase = parse_markup(marked, group=group)
    _check_phrase(group, phrase)
    return phrase


def read_source(path: str | Path, groups: tuple[str, ...] = GROUPS) -> list[Phrase]:
    """Every sentence of the source file in order; comments (#) and blank lines are skipped."""
    phrases: list[Phrase] = []
    seen: dict[str, int] = {}
    for n, raw in iter_lines(path):
        if raw.lstrip().startswith("#"):
            continue
        try:
            phrase = parse_line(raw, groups)
        except PhraseError as exc:
            raise DataFileError(path, n, str(exc)) from None
        key = normalise_text(phrase.text)
        if key in seen:
            raise DataFileError(path, n, f"duplicate of line {seen[key]} (same text once normalised)")
        seen[key] = n
        phrases.append(phrase)
    if not phrases:
        raise DataFileError(path, 1, "no sentence found")
    return phrases


def build(src: str | Path = DEFAULT_SRC, out: str | Path = DEFAULT_OUT) -> int:
    """Write the JSONL (text, entities, group) and return the number of sentences."""
    return write_jsonl(out, read_source(src))


def is_up_to_date(src: str | Path = DEFAULT_SRC, out: str | Path = DEFAULT_OUT) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "challenge.jsonl"
        build(src, fresh)
        return Path(out).is_file() and Path(out).read_bytes() == fresh.read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the challenge JSONL from its hand-written markup.")
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="only verify that --out matches --src")
    args = parser.parse_args(argv)
    try:
        if args.check:
            if not is_up_to_date(args.src, args.out):
                print(f"{args.out} is stale: run python data/build_challenge.py", file=sys.stderr)
                return 1
            print(f"{args.out} is up to date")
            return 0
        n = build(args.src, args.out)
    except TrajetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} sentences to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
