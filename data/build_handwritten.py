"""Build the hand-written request batches and the frozen blind set from their markup sources.

Training data written by hand (`data/handwritten/batch_NN.src.tsv`) and the blind set
(`data/blind/blind.src.tsv`) use the challenge set's markup (`de [Paris|D] à [Lyon|A]`) and its rules,
with kinds of request of their own. Each source becomes an ingestible JSONL beside it
(`batch_NN.jsonl`, `blind.jsonl`). A line that cannot become a valid phrase stops the build with
`file:line: reason`, and a sentence that appears in two files (once normalised) is refused: the blind
set must share nothing with what training may read.

Usage (from the repository root):
    python data/build_handwritten.py                 # rewrite every JSONL
    python data/build_handwritten.py --check         # exit 1 when a committed JSONL is stale
    python data/build_handwritten.py FILE.src.tsv    # validate one source (prints its counts)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

_DATA = Path(__file__).resolve().parent
if str(_DATA.parent) not in sys.path:
    sys.path.insert(0, str(_DATA.parent))

from build_challenge import read_source  # noqa: E402

from trajet.errors import TrajetError  # noqa: E402
from trajet.phrases import DataFileError, Phrase, normalise_text, write_jsonl  # noqa: E402

# Kinds of request people write to a booking chatbot; a sentence is filed under the one it shows most.
GROUPS: tuple[str, ...] = (
    "question",
    "order",
    "state_departure",
    "tutoiement",
    "vouvoiement",
    "oral",
    "sms",
    "voice_assistant",
    "long_message",
    "departure_only",
    "arrival_only",
    "stops",
    "stations",
    "person_names",
    "outside_places",
    "no_trip",
    "glued_terse",
    "case_noise",
    "cross_border",
)
HANDWRITTEN_DIR = _DATA / "handwritten"
BLIND_DIR = _DATA / "blind"


def sources() -> list[Path]:
    return sorted(HANDWRITTEN_DIR.glob("*.src.tsv")) + sorted(BLIND_DIR.glob("*.src.tsv"))


def output_of(src: Path) -> Path:
    return src.with_name(src.name.removesuffix(".src.tsv") + ".jsonl")


def read(src: Path) -> list[Phrase]:
    source = f"{src.parent.name}/{src.name.removesuffix('.src.tsv')}"
    return [Phrase(p.text, p.entities, {**p.meta, "source": source}) for p in read_source(src, GROUPS)]


def _cross_check(built: dict[Path, list[Phrase]]) -> None:
    """No sentence twice across files: a repeat would leak the blind set or double-count a batch."""
    first: dict[str, Path] = {}
    for src, phrases in built.items():
        for i, phrase in enumerate(phrases):
            key = normalise_text(phrase.text)
            if key in first and first[key] != src:
                raise DataFileError(src, i + 1, f"sentence also in {first[key].name} (same text once normalised)")
            first.setdefault(key, src)


def build_all(out_dir: Path | None = None) -> dict[Path, int]:
    built = {src: read(src) for src in sources()}
    _cross_check(built)
    counts = {}
    for src, phrases in built.items():
        out = output_of(src) if out_dir is None else out_dir / output_of(src).name
        counts[out] = write_jsonl(out, phrases)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the hand-written batches and the blind set.")
    parser.add_argument("files", nargs="*", type=Path, help="validate these sources only")
    parser.add_argument("--check", action="store_true", help="only verify that every JSONL matches its source")
    args = parser.parse_args(argv)
    try:
        if args.files:
            for src in args.files:
                phrases = read(src)
                groups = Counter(p.meta["group"] for p in phrases)
                labels = Counter(e.label for p in phrases for e in p.entities)
                print(f"{src}: {len(phrases)} sentences, {dict(labels)}, groups {dict(sorted(groups.items()))}")
            return 0
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                fresh = build_all(Path(tmp))
                stale = [src for src in sources() if not output_of(src).is_file()
                         or output_of(src).read_bytes() != (Path(tmp) / output_of(src).name).read_bytes()]
            for src in stale:
                print(f"{output_of(src)} is stale: run python data/build_handwritten.py", file=sys.stderr)
            if not stale:
                print(f"{len(fresh)} files up to date")
            return 1 if stale else 0
        for out, n in build_all().items():
            print(f"wrote {n} sentences to {out}")
    except TrajetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
