"""Data at scale on PostgreSQL: ingest rate with 1 and 2 parallel ingests, snapshot and Parquet export (time,
size), peak memory of each step, the training data loaders, and `trajet data stats`, for N = 10k, 100k, 1M.

    python bench/scale.py [--sizes 10000,100000,1000000] [--pg URL] [--file-rows 50000] [--keep-databases] [--tmp DIR]

Prints one JSON line per size. Every step runs in a process of its own (this script, `_step ...`), so each
peak RSS (its own VmHWM) is that step's alone; `base_rss_mb` is the step's RSS after its imports, before
any work. The rows are the generator's data/phrases/*.jsonl repeated with a distinct reference suffix (1% made
bad on purpose, as bench/ingest.py does), cut into an inbox of files of at most --file-rows rows: ingestion
holds one file at a time, so its memory follows the file size, not N. Parallel ingests each take half of the
files; they wait for a common start once their imports are done, and the rate is rows / (last end - start).
The machine is shared: the load average is printed before and after each size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "data" / "phrases"
BAD = '{"text": "cassé", "entities": [{"start": 0, "end": 99, "label": "DEPART"}]}\n'


def rss_mb(field: str = "VmRSS") -> float:
    """This process's RSS now (VmRSS) or its peak (VmHWM). The peak is read here, not from wait4's ru_maxrss:
    Linux carries the parent's peak over into a child's ru_maxrss at exec."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# ----------------------------------------------------------------------------------------------- the data


def generate(folder: Path, n: int, file_rows: int) -> dict:
    """An inbox of ceil(n / file_rows) files (at least 4, an even number), and train.jsonl + test.jsonl for
    `trajet data stats`, all from the same n rows."""
    base = [json.loads(line) for f in sorted(DATA.glob("*.jsonl")) for line in f.read_text("utf-8").splitlines()
            if line.strip()]
    files = max(4, -(-n // file_rows))
    files += files % 2
    inbox, stats = folder / "inbox", folder / "stats"
    inbox.mkdir(parents=True)
    stats.mkdir()
    outs = [open(inbox / f"part-{k:04d}.jsonl", "w", encoding="utf-8") for k in range(files)]
    split_files = {s: open(stats / f"{s}.jsonl", "w", encoding="utf-8") for s in ("train", "test")}
    per_file = -(-n // files)
    for i in range(n):
        out = outs[i // per_file]
        if i % 100 == 99:
            out.write(BAD)
            continue
        obj = dict(base[i % len(base)])
        if i >= len(base):
            obj["text"] += f" (réf {i})"
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        out.write(line)
        split_files[obj.get("split", "train")].write(line)
    for fh in [*outs, *split_files.values()]:
        fh.close()
    return {"files": files, "rows_per_file": per_file}


# ---------------------------------------------------------------------------------- steps (child processes)


def step_ingest(url: str, folder: str, ready: str, go: str) -> dict:
    from trajet import store, validate
    from trajet.ingest import ingest_source

    validate._get_validator()  # GX import + suite build: once per process, not per phrase
    engine = store.get_engine(url)
    base = rss_mb()
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.01)
    reports = ingest_source(folder, engine=engine, max_bad_ratio=0.5)
    return {"end": time.time(), "base_rss_mb": base, "peak_rss_mb": rss_mb("VmHWM"), "rows": sum(r.rows_read for r in reports),
            "stored": sum(r.stored for r in reports), "duplicates": sum(r.duplicates for r in reports),
            "quarantined": sum(r.quarantined for r in reports)}


def step_snapshot(url: str) -> dict:
    from trajet import store

    engine = store.get_engine(url)
    base, t0 = rss_mb(), time.perf_counter()
    snap = store.create_snapshot(engine)
    return {"seconds": round(time.perf_counter() - t0, 2), "base_rss_mb": base, "peak_rss_mb": rss_mb("VmHWM"),
            "snapshot_id": snap.id,
            "counts": snap.counts}


def step_export(url: str, root: str, snapshot_id: int) -> dict:
    from trajet import store
    from trajet.snapshot_export import export_snapshot

    engine = store.get_engine(url)
    base, t0 = rss_mb(), time.perf_counter()
    result = export_snapshot(engine, root, snapshot_id)
    m = result.manifest
    return {"seconds": round(time.perf_counter() - t0, 2), "base_rss_mb": base, "peak_rss_mb": rss_mb("VmHWM"),
            "uri": result.uri,
            "parquet_mb": round(m.size / 2**20, 2), "row_groups": m.row_groups, "rows": m.rows}


def step_loader(mode: str, uri: str, url: str, snapshot_id: int) -> dict:
    """lists: SnapshotReader.training_data() (what training takes today); stream: the row groups one by one;
    db: the same lists read from the store (store.load_split), for comparison."""
    import pyarrow  # noqa: F401 - imported before the baseline, as in a training process

    from trajet import store
    from trajet.snapshot_reader import SnapshotReader

    base, t0 = rss_mb(), time.perf_counter()
    if mode == "lists":
        train, val, _ = SnapshotReader(uri).training_data()
        n = len(train) + len(val)
    elif mode == "stream":
        n = sum(len(batch) for batch in SnapshotReader(uri).batches())
    else:
        engine = store.get_engine(url)
        n = sum(len(store.load_split(engine, snapshot_id, s)) for s in ("train", "validation"))
    return {"seconds": round(time.perf_counter() - t0, 2), "base_rss_mb": base, "peak_rss_mb": rss_mb("VmHWM"),
            "phrases": n}


def step_trainset(mode: str, uri: str, home: str) -> dict:
    """What `trajet train` builds before its first step, with the default preset: the lexicon, the augmented
    training set (its tokenized cache) and the validation encodings, then one epoch's first 50 batches drawn.
    lists: from `training_data()` lists (as before); stream: from `training_splits()` (the snapshot streamed, the
    cache memory-mapped). The base is the preset's built on the project corpus alone (built once, not timed)."""
    import pyarrow  # noqa: F401 - imported before the baseline, as in a training process

    from trajet import train as T
    from trajet.snapshot_reader import SnapshotReader
    from trajet.train_config import config_for
    from trajet.train_data import weighted

    config = config_for("mini", {}, environ={})
    _, tokenizer, model = T._load_base(config, (), None)
    if mode == "warm":  # builds the base into TRAJET_HOME, so the measured runs only load it
        return {"peak_rss_mb": rss_mb("VmHWM")}
    reader = SnapshotReader(uri)
    base, t0 = rss_mb(), time.perf_counter()
    train, val, _ = reader.training_data() if mode == "lists" else reader.training_splits()
    train = weighted(train, config.human_weight)
    lexicon = T._attach_lexicon(model, config, train)
    cache = None if isinstance(train, list) else Path(home) / "tokens" / "train.arrow"
    dataset = T._train_dataset(train, tokenizer, lexicon, config, cache)
    built = time.perf_counter() - t0
    val_ds, _ = T._validation_dataset(val, tokenizer, lexicon, config,
                                      None if cache is None else cache.with_suffix(".val.arrow"))
    drawn = sum(len(dataset[i]["input_ids"]) for i in range(min(len(dataset), 50 * config.batch_size)))
    # RSS counts the mapped file's pages that were read (RssFile): page cache the kernel may drop, unlike the
    # process's own memory (RssAnon). Both now, at the end, besides the peak of the two together.
    anon, file_backed = rss_mb("RssAnon"), rss_mb("RssFile")
    if cache is not None:
        cache.unlink()
        cache.with_suffix(".val.arrow").unlink()
    return {"seconds": round(time.perf_counter() - t0, 2), "build_s": round(built, 2), "base_rss_mb": base,
            "peak_rss_mb": rss_mb("VmHWM"), "rss_anon_mb": anon, "rss_file_mb": file_backed, "train_rows": len(dataset), "validation_rows": len(val_ds),
            "drawn_tokens": drawn}


def step_stats(folder: str) -> dict:
    """`trajet data stats --dir FOLDER --json`, in this process so its peak can be read."""
    import contextlib
    import io

    from trajet.cli import main as cli

    base, t0 = rss_mb(), time.perf_counter()
    sys.argv = ["trajet", "data", "stats", "--dir", folder, "--json"]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cli()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    return {"seconds": round(time.perf_counter() - t0, 2), "base_rss_mb": base, "peak_rss_mb": rss_mb("VmHWM")}


STEPS = {"ingest": step_ingest, "snapshot": step_snapshot, "export": step_export, "loader": step_loader,
         "trainset": step_trainset, "stats": step_stats}


# ------------------------------------------------------------------------------------------------ driver


def run_step(command: list[str], env: dict | None = None) -> dict:
    """Run one step in a process of its own; its JSON line, with the wall time including start-up."""
    t0 = time.perf_counter()
    proc = subprocess.run(command, stdout=subprocess.PIPE, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"step failed ({proc.returncode}): {' '.join(command)}")
    last = [line for line in proc.stdout.decode().splitlines() if line.startswith("{")]
    return {**json.loads(last[-1]), "wall_s": round(time.perf_counter() - t0, 2)}


def child(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "_step", *args]


def ingest_parallel(url: str, parts: list[Path], tmp: Path) -> dict:
    tag = uuid.uuid4().hex[:6]
    go = tmp / f"go-{tag}"
    readies = [tmp / f"ready-{tag}-{k}" for k in range(len(parts))]
    t_start = time.perf_counter()
    procs = [subprocess.Popen(child("ingest", url, str(p), str(r), str(go)), stdout=subprocess.PIPE, cwd=ROOT)
             for p, r in zip(parts, readies, strict=True)]
    while not all(r.exists() for r in readies):
        if any(p.poll() not in (None, 0) for p in procs):
            raise SystemExit("an ingest step failed before its start")
        time.sleep(0.01)
    started = time.time()
    go.touch()
    results = []
    for proc in procs:
        out = proc.communicate()[0].decode()
        if proc.returncode != 0:
            raise SystemExit("an ingest step failed")
        results.append(json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1]))
    seconds = max(r["end"] for r in results) - started
    rows = sum(r["rows"] for r in results)
    return {"processes": len(parts), "seconds": round(seconds, 2), "phrases_per_s": round(rows / seconds),
            "rows": rows, "stored": sum(r["stored"] for r in results),
            "duplicates": sum(r["duplicates"] for r in results), "quarantined": sum(r["quarantined"] for r in results),
            "peak_rss_mb": [r["peak_rss_mb"] for r in results], "base_rss_mb": [r["base_rss_mb"] for r in results],
            "wall_with_startup_s": round(time.perf_counter() - t_start, 2)}


def fresh_database(admin_url: str) -> tuple[str, str]:
    import sqlalchemy as sa

    from trajet import store

    name = f"trajet_scale_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    store.upgrade(url)
    return name, url


def drop_database(admin_url: str, name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def bench_size(n: int, args: argparse.Namespace, tmp: Path) -> dict:
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    layout = generate(tmp / "data", n, args.file_rows)
    result: dict = {"n": n, "load_before": load_before, "generate_s": round(time.perf_counter() - t0, 1), **layout}
    inbox = tmp / "data" / "inbox"
    files = sorted(inbox.iterdir())
    halves = [tmp / "data" / "half0", tmp / "data" / "half1"]
    for k, half in enumerate(halves):
        half.mkdir()
        for f in files[k::2]:
            os.link(f, half / f.name)
    made = []
    try:
        for processes, parts in ((1, [inbox]), (2, halves)):
            name, url = fresh_database(args.pg)
            made.append(name)
            result[f"ingest_{processes}"] = ingest_parallel(url, parts, tmp)
        # the store of the 2-process run: the same rows, so snapshot, export and loaders read it
        snap = result["snapshot"] = run_step(child("snapshot", url))
        root = str(tmp / "exports")
        exp = result["export"] = run_step(child("export", url, root, str(snap["snapshot_id"])))
        env = {**os.environ, "TRAJET_HOME": str(tmp / "reader_home")}
        for mode in ("lists", "stream", "db"):
            result[f"loader_{mode}"] = run_step(child("loader", mode, exp["uri"], url, str(snap["snapshot_id"])), env)
        if args.trainset:
            for mode in ("warm", "lists", "stream"):
                result[f"trainset_{mode}"] = run_step(child("trainset", mode, exp["uri"], str(tmp)), env)
        result["data_stats"] = run_step(child("stats", str(tmp / "data" / "stats")))
    finally:
        if not args.keep_databases:
            for name in made:
                drop_database(args.pg, name)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    result["total_s"] = round(time.perf_counter() - t0, 1)
    return result


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_step":
        name, *rest = sys.argv[2:]
        fn = STEPS[name]
        if name == "ingest":
            out = fn(*rest)
        elif name == "export":
            out = fn(rest[0], rest[1], int(rest[2]))
        elif name == "loader":
            out = fn(rest[0], rest[1], rest[2], int(rest[3]))
        else:
            out = fn(*rest)
        print(json.dumps(out), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--file-rows", type=int, default=50_000, help="rows per inbox file (the unit of ingestion)")
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument("--trainset", action="store_true", help="also build the default preset's training set "
                        "(tokenized cache) from lists and from the stream: slow (minutes a 100k phrases)")
    parser.add_argument("--tmp", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()}, pid {os.getpid()}", file=sys.stderr)
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="trajet-scale-", dir=args.tmp) as tmp:
            print(json.dumps(bench_size(n, args, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
