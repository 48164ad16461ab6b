"""The hand-written challenge set: the committed JSONL is exactly the build of its markup source, and
every sentence obeys the annotation conventions the team measures real-world quality against."""

from __future__ import annotations

import importlib.util
import json
import unicodedata
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from trajet.phrases import DataFileError, Phrase, normalise_text, read_jsonl, spans_to_bio, to_markup

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "data" / "challenge.src.tsv"
JSONL = ROOT / "data" / "challenge.jsonl"


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_challenge", ROOT / "data" / "build_challenge.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


@pytest.fixture(scope="module")
def phrases() -> list[Phrase]:
    return read_jsonl(JSONL)


def _source_lines() -> list[tuple[str, str]]:
    lines = SRC.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines if line.strip() and not line.startswith("#")]


def test_committed_jsonl_is_the_build_of_the_source(tmp_path):
    fresh = tmp_path / "challenge.jsonl"
    n = builder.build(SRC, fresh)
    assert fresh.read_bytes() == JSONL.read_bytes()
    assert n == len(JSONL.read_text(encoding="utf-8").splitlines())
    assert builder.main(["--check"]) == 0
    stale = tmp_path / "stale.jsonl"
    stale.write_bytes(JSONL.read_bytes()[:-200])
    assert builder.main(["--check", "--out", str(stale)]) == 1


def test_markup_round_trips_line_by_line(phrases):
    source = _source_lines()
    assert len(source) == len(phrases)
    for (group, marked), phrase in zip(source, phrases, strict=True):
        assert phrase.meta["group"] == group
        assert to_markup(phrase) == marked


def test_size_and_groups(phrases):
    counts = Counter(p.meta["group"] for p in phrases)
    assert len(phrases) >= 240
    assert set(counts) == set(builder.GROUPS)
    small = {g: n for g, n in counts.items() if n < 15}
    assert not small, f"groups under 15 sentences: {small}"


def test_fields_and_alignment(phrases):
    for line in JSONL.read_text(encoding="utf-8").splitlines():
        assert list(json.loads(line)) == ["text", "entities", "group"]
    for p in phrases:
        tokens, tags = spans_to_bio(p.text, p.entities)
        assert sum(t.startswith("B-") for t in tags) == len(p.entities)


def test_no_duplicate_normalised_texts(phrases):
    keys = Counter(normalise_text(p.text) for p in phrases)
    assert [k for k, n in keys.items() if n > 1] == []


def test_trip_structure(phrases):
    for p in phrases:
        labels = Counter(e.label for e in p.entities)
        assert labels["DEPART"] <= 1 and labels["ARRIVEE"] <= 1 and labels["VIA"] <= 5, p.text
        group = p.meta["group"]
        if group == "no_trip":
            assert p.entities == (), p.text
        elif group != "person_names":  # people-only sentences may hold no trip at all
            assert p.entities, f"{group}: {p.text}"
        if group == "multi_via":
            assert labels["VIA"] >= 1 and labels["DEPART"] == 1 and labels["ARRIVEE"] == 1, p.text
    with_trip = Counter(p.meta["group"] for p in phrases if p.entities)
    assert set(with_trip) == set(builder.GROUPS) - {"no_trip"}
    assert sum(len(p.entities) == 0 for p in phrases if p.meta["group"] == "person_names") >= 1


def test_group_specific_surface(phrases):
    for p in phrases:
        if p.meta["group"] == "lowercase_noaccent":
            assert p.text == p.text.lower()
            assert not any(unicodedata.combining(c) for c in unicodedata.normalize("NFKD", p.text))
    # Prepositions and contracted articles stay outside the entity.
    for p in phrases:
        for _, surface in p.spans_text():
            first = surface.split()[0].lower()
            assert first not in {"de", "du", "des", "au", "aux", "à", "a", "d'", "jusqu'à"}, (surface, p.text)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("standard\tde [Paris|D] à [Lyon|X]", "unbalanced or unknown markup"),
        ("standard de [Paris|D] à [Lyon|A]", "expected 'group<TAB>marked sentence'"),
        ("nowhere\tde [Paris|D] à [Lyon|A]", "unknown group 'nowhere'"),
        ("standard\tde [Par|D]is à [Lyon|A]", "does not fall on word boundaries"),
        ("standard\tde [Paris|D] à [Lyon|D]", "2 DEPART entities"),
        ("no_trip\tIl fait beau à [Nice|A].", "no_trip sentence must carry no entity"),
        ("lowercase_noaccent\tde [paris|D] à [lyon|A]", "all lowercase without accents"),
        ("standard\t", "empty sentence"),
    ],
)
def test_bad_lines_name_file_line_and_reason(tmp_path, line, reason):
    src = tmp_path / "bad.tsv"
    src.write_text(f"# header\nstandard\tde [Nantes|D] à [Rennes|A]\n{line}\n", encoding="utf-8")
    with pytest.raises(DataFileError) as err:
        builder.read_source(src)
    assert err.value.line == 3
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{src}:3: ")


def test_duplicate_after_normalisation_is_refused(tmp_path):
    src = tmp_path / "dup.tsv"
    src.write_text(
        "standard\tde [Orléans|D] à [Tours|A]\n\nstandard\tDe [ORLEANS|D]  à [Tours|A]\n", encoding="utf-8"
    )
    with pytest.raises(DataFileError, match=r"dup\.tsv:3: duplicate of line 1"):
        builder.read_source(src)


def test_cli_reports_error_without_traceback(tmp_path, capsys):
    src = tmp_path / "bad.tsv"
    src.write_text("standard\tde [Paris|D] à [Lyon|A] à [Nice|A]\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert builder.main(["--src", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{src}:1: 2 ARRIVEE entities" in err and "Traceback" not in err
    assert not out.exists()


# ------------------------------------------------------------------------------------- blind set

BLIND_SRC = ROOT / "data" / "challenge_blind.src.tsv"
BLIND = ROOT / "data" / "challenge_blind.jsonl"


def test_blind_set_is_the_build_of_its_source_and_follows_the_conventions(tmp_path):
    fresh = tmp_path / "blind.jsonl"
    n = builder.build(BLIND_SRC, fresh)
    assert fresh.read_bytes() == BLIND.read_bytes() and n == 78
    blind = read_jsonl(BLIND)
    counts = Counter(p.meta["group"] for p in blind)
    assert set(counts) == set(builder.GROUPS) and min(counts.values()) >= 6
    for p in blind:
        labels = Counter(e.label for e in p.entities)
        assert labels["DEPART"] <= 1 and labels["ARRIVEE"] <= 1, p.text
        assert (p.meta["group"] == "no_trip") == (not p.entities), p.text
        if p.meta["group"] == "multi_via":
            assert labels["VIA"] >= 1, p.text


def test_blind_set_shares_no_sentence_with_the_other_data(phrases):
    """Blind means unseen: not in the first challenge set, nor in the generated train and test splits."""
    blind = {normalise_text(p.text) for p in read_jsonl(BLIND)}
    assert len(blind) == 78
    others = {normalise_text(p.text) for p in phrases}
    for split in ("train", "test"):
        others |= {normalise_text(p.text) for p in read_jsonl(ROOT / "data" / "phrases" / f"{split}.jsonl")}
    assert blind.isdisjoint(others)
