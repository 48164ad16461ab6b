"""Words as people type them: glued prepositions and place pairs joined by a hyphen are split (only around
places the gazetteer knows), names and French words stay whole, case and accents change nothing."""

from __future__ import annotations

import json
import unicodedata

import pytest

from trajet import validate as v
from trajet.ingest import ingest_source
from trajet.ingest_sql import quarantine_rows
from trajet.phrases import (
    Entity,
    is_token_end,
    is_token_start,
    parse_markup,
    read_jsonl,
    spans_to_bio,
    to_markup,
    tokenize,
)
from trajet.places import abroad, hubs
from trajet.words import NO_SPLIT

pytest_plugins = ["dbfixtures"]


def words(text: str) -> list[str]:
    return [t.text for t in tokenize(text)]


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


@pytest.mark.parametrize(("text", "expected"), [
    ("deLyon", ["de", "Lyon"]),
    ("aParis", ["a", "Paris"]),
    ("àCherbourg", ["à", "Cherbourg"]),
    ("auHavre", ["au", "Havre"]),
    ("duMans", ["du", "Mans"]),
    ("auxSables-d'Olonne", ["aux", "Sables-d'Olonne"]),
    ("jusqu'àNice", ["jusqu'", "à", "Nice"]),
    ("pourNantes versLille viaDijon parTours depuisMetz enAvignon",
     ["pour", "Nantes", "vers", "Lille", "via", "Dijon", "par", "Tours", "depuis", "Metz", "en", "Avignon"]),
    ("deSaint-Étienne", ["de", "Saint-Étienne"]),
    ("aGenève", ["a", "Genève"]),
    ("aSaint-Jean-Pied-de-Port", ["a", "Saint-Jean-Pied-de-Port"]),  # a village, but no word ends like that
    ("Lyon-Paris", ["Lyon", "-", "Paris"]),
    ("Lyon/Paris", ["Lyon", "/", "Paris"]),
    ("Lyon>Paris", ["Lyon", ">", "Paris"]),
    ("Lyon->Paris", ["Lyon", "->", "Paris"]),
    ("Lyon=>Paris", ["Lyon", "=>", "Paris"]),
    ("Lyon→Paris", ["Lyon", "→", "Paris"]),
    ("Aix-en-Provence-Marseille", ["Aix-en-Provence", "-", "Marseille"]),
    ("Bruxelles-Genève", ["Bruxelles", "-", "Genève"]),
])
def test_glued_and_joined_words_are_split(text, expected):
    assert words(text) == expected


@pytest.mark.parametrize("word", [
    # names the gazetteer holds whole
    "Saint-Étienne", "Aix-en-Provence", "Bar-le-Duc", "Avignon", "Deauville", "Auxerre", "Versailles",
    "Parthenay", "Aix-la-Chapelle", "Marne-la-Vallée",
    # French words that a split would break (data/places/whole_words.txt) and words around hamlets' names
    "pardon", "avion", "autour", "envers", "descendre", "aller-retour", "Dupont", "Parris", "asap", "demain",
    "depuis", "pourquoi", "aujourd'hui",
    # a place the gazetteer does not know is not a reason to split
    "deZzyzx", "Lyon-Zzyzx",
])
def test_names_and_words_stay_whole(word):
    assert words(word) == [word]


@pytest.mark.parametrize("text", [
    "un billet deRouen aCaen svp", "Bonjour, un billet Lyon-Paris pour demain", "àCherbourg auHavre",
    "je pars deSaint-Étienne versGenève", "pardon, un avion autour de Orléans-Nîmes",
])
def test_case_and_accents_do_not_change_the_split(text):
    spans = [(t.start, t.end) for t in tokenize(text)]
    for variant in (text.lower(), text.upper(), text.title(), strip_accents(text)):
        assert len(variant) == len(text)
        assert [(t.start, t.end) for t in tokenize(variant)] == spans, variant


def test_markup_of_glued_words_parses_with_offsets():
    phrase = parse_markup("un billet de[Rouen|D] a[Caen|A] svp")
    assert phrase.text == "un billet deRouen aCaen svp"
    assert phrase.entities == (Entity(12, 17, "DEPART"), Entity(19, 23, "ARRIVEE"))
    assert phrase.spans_text() == [("DEPART", "Rouen"), ("ARRIVEE", "Caen")]
    tokens, tags = phrase.tokens_and_tags()
    assert list(zip([t.text for t in tokens], tags, strict=True)) == [
        ("un", "O"), ("billet", "O"), ("de", "O"), ("Rouen", "B-DEPART"), ("a", "O"), ("Caen", "B-ARRIVEE"),
        ("svp", "O")]
    assert to_markup(phrase) == "un billet de[Rouen|D] a[Caen|A] svp"
    pair = parse_markup("un billet [Lyon|D]-[Paris|A] pour demain")
    assert pair.spans_text() == [("DEPART", "Lyon"), ("ARRIVEE", "Paris")]
    # with the bare pattern there is no boundary there: the split is what makes these spans valid
    assert 12 not in {t.start for t in tokenize(phrase.text, NO_SPLIT)}


def test_a_span_inside_a_real_word_is_still_refused():
    with pytest.raises(ValueError, match="word boundaries"):
        parse_markup("je demande par[don|A] à Lyon")
    with pytest.raises(ValueError, match="word boundaries"):
        parse_markup("c'est yves du[pont|D] pour Nice")


def test_boundary_checks_agree_with_tokenize():
    for text in ("un billet deRouen aCaen svp", "Lyon-Paris, puis Nantes→Brest", "pardon Dupont auHavre"):
        starts = {t.start for t in tokenize(text)}
        ends = {t.end for t in tokenize(text)}
        for i in range(len(text) + 1):
            assert is_token_start(text, i) == (i in starts), (text, i)
            assert is_token_end(text, i) == (i in ends), (text, i)


def test_ingestion_accepts_glued_spans_and_refuses_spans_inside_words(sqlite_engine, tmp_path):
    good = parse_markup("un billet de[Rouen|D] a[Caen|A] svp")
    pair = parse_markup("Bonjour, un billet [Lyon|D]-[Paris|A] pour demain")
    rows = [
        json.dumps(good.to_dict(), ensure_ascii=False),
        json.dumps(pair.to_dict(), ensure_ascii=False),
        # `don` inside `pardon` and `pont` inside `Dupont` are no places of the trip
        json.dumps({"text": "je demande pardon, pour Lyon", "entities": [{"start": 14, "end": 17, "label": "ARRIVEE"}]}),
        json.dumps({"text": "yves dupont pour Nice", "entities": [{"start": 7, "end": 11, "label": "DEPART"}]}),
    ]
    path = tmp_path / "glued.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    [report] = ingest_source(str(path), engine=sqlite_engine)
    assert report.stored == 2
    _, quarantined = quarantine_rows(sqlite_engine, report.batch_id)
    assert {r.line: r.reasons for r in quarantined} == {3: [v.OFF_BOUNDARY], 4: [v.OFF_BOUNDARY]}


def test_gazetteer_knows_places_abroad_and_hubs():
    names = {a.name for a in abroad()}
    assert {"Genève", "Bâle", "Lausanne", "Liège", "Namur", "Bruxelles", "Anvers", "Francfort", "Cologne",
            "Turin", "Milan", "Barcelone", "Londres", "Luxembourg", "Aix-la-Chapelle", "Saint-Sébastien"} <= names
    # quarters of Luxembourg and words that are also Belgian towns are left out
    assert not {"Gare", "Hollerich", "Ans", "Jambes", "Geneva", "Basel"} & names
    hub_names = {h.name for h in hubs()}
    assert {"La Défense", "Marne-la-Vallée", "Aéroport Charles-de-Gaulle 2", "Lyon Saint-Exupéry"} <= hub_names
    for place in [*abroad(), *hubs()]:
        text = f"de {place.name} ."
        spans_to_bio(text, [Entity(3, 3 + len(place.name), "DEPART")])


def test_training_lexicon_reads_places_abroad_and_hubs():
    from trajet.lexicon import BEGIN, INSIDE, NONE, Lexicon

    lexicon = Lexicon.from_gazetteer()
    text = "un billet Genève-Bâle puis deBruxelles à La Défense"
    ws = words(text)
    feats = dict(zip(ws, lexicon.word_features(ws), strict=True))
    assert feats["Genève"] == feats["Bâle"] == feats["Bruxelles"] == BEGIN
    assert feats["La"] == BEGIN and feats["Défense"] == INSIDE
    assert feats["de"] == feats["-"] == NONE


def test_committed_data_still_parses():
    """Every committed phrase's spans still fall on the new boundaries (the generator's output is unchanged)."""
    from trajet.config import data_dir

    for path in sorted(data_dir().rglob("*.jsonl")):
        assert read_jsonl(path)


def test_new_gazetteer_files_refuse_bad_rows_by_file_and_line(tmp_path):
    from trajet.errors import TrajetError
    from trajet.places import _whole_words, read_abroad, read_hubs

    bad = tmp_path / "abroad.tsv"
    bad.write_text("name\tascii\talternates\tpopulation\tcountry\tgeonameid\n"
                   "Genève\tGeneve\tGeneva\t201741\tSuisse\t2660646\n", encoding="utf-8")
    with pytest.raises(TrajetError, match=r"abroad.tsv:2: country must be a two-letter ISO code, got 'Suisse'"):
        read_abroad(bad)
    hub = tmp_path / "hubs.tsv"
    hub.write_text("name\tcity\tkind\nLa Défense\tPuteaux\ttgv\n", encoding="utf-8")
    with pytest.raises(TrajetError, match=r"hubs.tsv:2: unknown hub kind 'tgv'"):
        read_hubs(hub)
    words_file = tmp_path / "whole_words.txt"
    words_file.write_text("# comment\npardon\nAvion\n", encoding="utf-8")
    with pytest.raises(TrajetError, match=r"whole_words.txt:3: expected one folded"):
        _whole_words(str(words_file))


def test_the_splitter_cache_gives_the_built_splitter_and_survives_a_broken_file(_trajet_home):
    from trajet.lexicon import gazetteer_splitter
    from trajet.phrases import _cached_splitter

    built = gazetteer_splitter()
    first = _cached_splitter()  # builds and writes the cache
    [cache] = (_trajet_home / "cache").glob("word-splitter-*.json")
    again = _cached_splitter()  # reads it
    for s in (first, again):
        assert (s.names, s.glued, s.whole) == (built.names, built.glued, built.whole)
    assert again.split("deLyon") == built.split("deLyon") == [(0, 2), (2, 6)]
    cache.write_text("{not json", encoding="utf-8")
    rebuilt = _cached_splitter()
    assert rebuilt.names == built.names and json.loads(cache.read_text(encoding="utf-8"))["glued"]


def test_a_changed_places_file_gets_a_new_splitter_cache(_trajet_home, tmp_path, monkeypatch):
    import os
    import shutil
    from pathlib import Path

    from trajet.phrases import _cached_splitter

    data = tmp_path / "data"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "places", data / "places")
    monkeypatch.setenv("TRAJET_DATA_DIR", str(data))
    _cached_splitter()
    before = {p.name for p in (_trajet_home / "cache").glob("word-splitter-*.json")}
    stations = data / "places" / "stations.tsv"
    st = stations.stat()
    os.utime(stations, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _cached_splitter()
    after = {p.name for p in (_trajet_home / "cache").glob("word-splitter-*.json")}
    assert len(before) == 1 and len(after) == 2
