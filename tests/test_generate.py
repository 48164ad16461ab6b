"""The generated dataset: reproducible byte for byte, aligned, varied, and built to the conventions."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from trajet import generate as G
from trajet import patterns as P
from trajet.cli import app
from trajet.datastats import dataset_stats, surface_key
from trajet.errors import TrajetError
from trajet.phrases import bio_to_spans, normalise_text, read_jsonl, spans_to_bio
from trajet.places import stations

DATA = Path(__file__).resolve().parent.parent / "data" / "phrases"
runner = CliRunner()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def committed():
    return {split: read_jsonl(DATA / f"{split}.jsonl") for split in ("train", "test")}


@pytest.fixture(scope="session")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("phrases")
    result = runner.invoke(app, ["generate", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def vocab():
    return G.build_vocabularies()


def test_default_generate_reproduces_committed_files(regenerated):
    for split in ("train", "test"):
        assert sha256(regenerated / f"{split}.jsonl") == sha256(DATA / f"{split}.jsonl"), split


def test_same_seed_same_phrases_other_seed_other_phrases():
    counts = {"train": 60, "test": 20}
    a, b, c = G.generate(5, counts), G.generate(5, counts), G.generate(6, counts)
    assert [p.to_dict() for p in a["train"]] == [p.to_dict() for p in b["train"]]
    assert [p.text for p in a["train"]] != [p.text for p in c["train"]]


def test_counts_and_fields(committed):
    assert len(committed["train"]) == 8000
    assert len(committed["test"]) == 2000
    families = {f.name for f in G.families()}
    for split, phrases in committed.items():
        assert {p.meta["split"] for p in phrases} == {split}
        assert {p.meta["pattern"] for p in phrases} <= families


def test_no_text_repeats_within_or_across_splits(committed):
    from trajet.phrases import normalise_text

    keys = [normalise_text(p.text) for ph in committed.values() for p in ph]
    assert len(keys) == len(set(keys)) == 10000


def test_at_least_80_pattern_families_in_each_split(committed):
    for phrases in committed.values():
        assert len({p.meta["pattern"] for p in phrases}) >= 80


def test_unseen_place_rate_in_test(committed):
    stats = dataset_stats(committed)
    # Streamed (each split read once, as `trajet data stats` reads its files) gives the same numbers.
    assert dataset_stats({name: iter(phrases) for name, phrases in committed.items()}) == stats
    assert stats["unseen"]["rate"] >= 0.30
    # ...and the big cities are still seen: the test is about generalisation, not only about rare names.
    train_surfaces = {surface_key(p.text[e.start : e.end]) for p in committed["train"] for e in p.entities}
    assert {"paris", "lyon", "marseille", "bordeaux", "le havre"} <= train_surfaces


def test_no_trip_share_and_no_trip_rows_have_no_entity(committed):
    for phrases in committed.values():
        no_trip = [p for p in phrases if p.meta["group"] == "no_trip"]
        assert abs(len(no_trip) / len(phrases) - G.NO_TRIP_SHARE) < 0.005 and G.NO_TRIP_SHARE == 0.15
        assert all(not p.entities for p in no_trip)
        others = [p for p in phrases if p.meta["group"] != "no_trip"]
        assert all(p.entities for p in others)
        no_trip_with_place = [p for p in no_trip if re.search(r"\b[A-ZÉ][a-zé]+", p.text[1:])]
        assert len(no_trip_with_place) > len(no_trip) / 2  # most name a city (or a person)


def test_every_phrase_aligns_and_round_trips(committed):
    for phrases in committed.values():
        for p in phrases:
            tokens, tags = spans_to_bio(p.text, p.entities)
            assert bio_to_spans(tokens, tags) == list(p.entities)


_PREFIXES = ("de ", "du ", "des ", "d'", "d’", "à ", "a ", "au ", "aux ", "jusqu", "la gare ", "pour ", "depuis ")


def test_entities_are_the_place_name_only(committed):
    for phrases in committed.values():
        for p in phrases:
            for e in p.entities:
                surface = p.text[e.start : e.end]
                assert not surface.lower().startswith(_PREFIXES), (surface, p.text)
                assert surface[0].isalnum() and surface[-1].isalnum(), (surface, p.text)
                # A hyphen is never glued between two places (Paris-Lyon would be one token).
                assert p.text[e.end : e.end + 1] != "-" or p.text[e.end : e.end + 2] == "->"
                assert p.text[e.start - 1 : e.start] != "-" if e.start else True


def test_conventions_show_up(committed):
    train = committed["train"]
    before: Counter[str] = Counter()
    for p in train:
        for e in p.entities:
            before[p.text[max(0, e.start - 4) : e.start].lower()] += 1
    for lead in ("du ", " au ", "aux ", "d'"):
        assert sum(n for k, n in before.items() if k.endswith(lead)) >= 20, lead
    labels = Counter(e.label for p in train for e in p.entities)
    assert labels["VIA"] > 1500
    via_counts = Counter(sum(e.label == "VIA" for e in p.entities) for p in train)
    assert via_counts[2] > 100 and via_counts[3] > 30
    only_arrival = [p for p in train if {e.label for e in p.entities} == {"ARRIVEE"}]
    only_departure = [p for p in train if {e.label for e in p.entities} == {"DEPART"}]
    assert len(only_arrival) > 300 and len(only_departure) > 150
    arrival_first = [p for p in train if p.entities and p.entities[0].label == "ARRIVEE" and
                     any(e.label == "DEPART" for e in p.entities)]
    assert len(arrival_first) > 500
    station_names = {surface_key(s.name) for s in stations()}
    station_hits = sum(surface_key(p.text[e.start : e.end]) in station_names for p in train for e in p.entities)
    assert station_hits > 500


def test_terse_forms_present(committed):
    texts = [p.text for p in committed["train"]]
    assert sum("->" in t for t in texts) > 50
    assert sum(" - " in t for t in texts) > 100
    assert sum(t.lower().startswith("entre ") or " entre " in t.lower() for t in texts) > 50


def test_people_named_like_towns_are_not_tagged(committed):
    towns_as_people = {"Florence", "Nancy", "Albert", "Lourdes", "Valence", "Margaux"}
    hits = 0
    for p in committed["train"]:
        if p.meta["group"] not in ("person", "no_trip"):
            continue
        spans = [(e.start, e.end) for e in p.entities]
        for m in re.finditer(r"\b(" + "|".join(towns_as_people) + r")\b", p.text, flags=re.I):
            if not any(s <= m.start() < e for s, e in spans):
                hits += 1
    assert hits > 50
    # the same names are real trip places elsewhere, so the model must read the context
    as_place = sum(p.text[e.start : e.end] in towns_as_people for p in committed["train"] for e in p.entities)
    assert as_place > 30


def test_distractor_places_stay_untagged(committed):
    rows = [p for p in committed["train"] if p.meta["group"] == "distractor"]
    assert len(rows) > 300
    for p in rows:
        for m in re.finditer(r"(j'habite|je suis née?|je vis) (à|a) ", p.text, flags=re.I):
            assert all(e.start != m.end() for e in p.entities), p.text


def test_noise_and_endings_are_varied(committed):
    train = committed["train"]
    noise = Counter(n for p in train for n in p.meta.get("noise", []))
    for kind, minimum in (("lower", 1200), ("caps", 150), ("no_accents", 600), ("typo", 300),
                          ("typo_place", 400), ("no_space", 500)):
        assert noise[kind] >= minimum, (kind, noise[kind])
    endings = Counter()
    for p in train:
        t = p.text.rstrip()
        if p.entities and max(e.end for e in p.entities) == len(t):
            endings["place"] += 1
        elif t.endswith("."):
            endings["stop"] += 1
        elif t.endswith("?"):
            endings["question"] += 1
        else:
            endings["other"] += 1
    assert all(endings[k] > 500 for k in ("place", "stop", "question", "other")), endings
    assert endings["place"] / len(train) < 0.35


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_any_seed_gives_aligned_phrases(vocab, seed):
    seen: set[str] = set()
    for p in G.generate_split("train", 15, seed, vocab["train"], seen):
        tokens, tags = spans_to_bio(p.text, p.entities)
        assert bio_to_spans(tokens, tags) == list(p.entities)


def test_template_grammar():
    tree = G.parse_template("je vais [à|vers [Lyon|Dijon]]{end}")
    assert len(tree) == 3
    with pytest.raises(ValueError):
        G.parse_template("je vais [à")
    for family in G.families():  # every family parses and its fillers exist
        for template in family.templates:
            for slot in re.findall(r"\{([^}:]+)\}", template):
                assert slot in P.FILLERS or slot in G.ROLE_LABEL or slot in ("X", "Y", "Z", "VIAS"), slot
            G.parse_template(template)


def test_contractions_and_typos():
    import random

    rng = random.Random(1)
    place = G.Place("Le Mans", "commune", city="Le Mans")

    def render(prep):
        b = G.Builder(rng, None)
        b.lower_article = False
        b._contracted(prep, place, place.name, "ARRIVEE")
        return b.segments

    assert render("de") == [("du ", None), ("Mans", "ARRIVEE")]
    assert render("a") == [("au ", None), ("Mans", "ARRIVEE")]
    assert render("jusqua") == [("jusqu'au ", None), ("Mans", "ARRIVEE")]
    for _ in range(50):
        word = G.typo(rng, "Bordeaux")
        assert word != "Bordeaux" and abs(len(word) - 8) <= 1


def test_stats_command_prints_expected_numbers(committed):
    result = runner.invoke(app, ["data", "stats", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["splits"]["train"]["sentences"] == 8000
    assert stats["splits"]["test"]["sentences"] == 2000
    assert stats["splits"]["train"]["no_trip"] == 1200
    assert stats["pattern_families"] >= 80
    assert stats["unseen"]["rate"] == pytest.approx(dataset_stats(committed)["unseen"]["rate"])
    assert sum(stats["splits"]["train"]["tags"].values()) == sum(
        len(p.tokens_and_tags()[0]) for p in committed["train"]
    )
    table = runner.invoke(app, ["data", "stats"], env={"COLUMNS": "160"})
    assert table.exit_code == 0
    assert "Places in test never seen in train" in table.output and "B-ARRIVEE" in table.output


def test_generate_small_and_errors(tmp_path):
    out = tmp_path / "p"
    result = runner.invoke(app, ["generate", "--out-dir", str(out), "--train", "40", "--test", "10", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(out / "train.jsonl")) == 40 and len(read_jsonl(out / "test.jsonl")) == 10
    bad = runner.invoke(app, ["generate", "--out-dir", str(out), "--train", "0"])
    assert isinstance(bad.exception, TrajetError)
    missing = runner.invoke(app, ["data", "stats", "--dir", str(tmp_path / "nowhere")])
    assert isinstance(missing.exception, TrajetError) and "not found" in str(missing.exception)


def test_return_legs_name_the_trip_again_untagged(committed):
    """`{de:A!} {a:D!}`: the same towns as the trip, written again, with no entity (one DEPART, one ARRIVEE)."""
    rows = [p for split in committed.values() for p in split if p.meta.get("pattern") == "long_return"]
    assert len(rows) >= 40
    for p in rows:
        labels = [e.label for e in p.entities if e.label != "VIA"]
        assert sorted(labels) == ["ARRIVEE", "DEPART"], p.text
        # the arrival's name comes again after the tagged one (a typo may hit one copy), outside every entity
        arrival = next(e for e in p.entities if e.label == "ARRIVEE")
        name, rest = normalise_text(p.text[arrival.start : arrival.end]), normalise_text(p.text[arrival.end :])
        assert name[:3] in rest or name[-3:] in rest, p.text
        assert max(e.end for e in p.entities) <= arrival.end or all(e.label == "VIA" for e in p.entities
                                                                     if e.start >= arrival.end), p.text
    no_trip = [p for split in committed.values() for p in split
               if p.meta.get("pattern") in ("nt_of_town", "nt_between", "nt_ticket_done")]
    assert len(no_trip) >= 100 and all(not p.entities for p in no_trip)
