"""Exported snapshots: Parquet under the content hash, immutable and checksummed, read back without the database
(local folder and S3 through moto), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from flow_data import phrase_rows, write_jsonl

from trajet import store
from trajet.errors import TrajetError
from trajet.ingest import ingest_source
from trajet.snapshot_export import export_snapshot
from trajet.snapshot_format import DATA, MANIFEST, cache_file
from trajet.snapshot_reader import SnapshotReader
from trajet.train_data import load_training_data

pytest_plugins = ["dbfixtures"]

REPO = Path(__file__).resolve().parent.parent


def _ingest(engine, folder: Path, rows: list[dict], name: str = "batch.jsonl") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    [report] = ingest_source(write_jsonl(folder / name, rows), engine=engine)
    assert report.status == "accepted" and report.stored == len(rows)


def _rows() -> list[dict]:
    train = phrase_rows(150, seed=11, split="train")
    texts = {r["text"] for r in train}
    rows = train + [r for r in phrase_rows(60, seed=12, split="test") if r["text"] not in texts][:40]
    rows[0] = {**rows[0], "pattern": "p1", "noise": ["typo"], "meta": {"source": "crm", "score": 0.25}}
    return rows


def _by_text(phrases):
    return sorted((p.text, p.entities, json.dumps(p.meta, sort_keys=True)) for p in phrases)


def test_export_holds_exactly_the_snapshot_and_reads_back_without_the_database(engine, tmp_path):
    _ingest(engine, tmp_path / "in", _rows())
    root = tmp_path / "exports"
    result = export_snapshot(engine, str(root), chunk_rows=64)  # several row groups
    snap = store.get_snapshot(engine, result.snapshot_id)
    assert result.uri == f"{root}/snapshots/{snap.content_hash}" and not result.reused
    m = result.manifest
    assert (m.rows, m.counts, m.row_groups) == (190, snap.counts, 3)
    data = root / "snapshots" / snap.content_hash / DATA
    assert (m.size, m.sha256) == (data.stat().st_size, hashlib.sha256(data.read_bytes()).hexdigest())

    reader = SnapshotReader(result.uri)
    reader.verify_content()  # the rows themselves hash to the snapshot's content hash
    for split in ("train", "validation", "test"):
        assert _by_text(reader.phrases(split)) == _by_text(store.load_split(engine, snap.id, split))
    assert [len(b) for b in reader.batches(batch_rows=50)] == [50, 50, 50, 40]  # bounded, whatever the row groups
    train, validation, content_hash = load_training_data(snapshot_uri=result.uri + "/" + MANIFEST)
    assert content_hash == snap.content_hash
    assert (len(train), len(validation)) == (snap.counts["train"], snap.counts["validation"])
    big = [p for p in [*train, *validation, *reader.phrases("test")] if p.meta.get("meta")]
    assert [p.meta for p in big] == [{"split": "train", "pattern": "p1", "noise": ["typo"],
                                      "meta": {"source": "crm", "score": 0.25}}]


def test_an_export_is_immutable_and_the_same_content_gives_the_same_bytes(tmp_path):
    rows = _rows()
    engines = [store.get_engine(f"sqlite:///{tmp_path / f'{i}.db'}") for i in range(2)]
    for i, eng in enumerate(engines):
        store.upgrade(engine=eng)
        # the second store receives the rows in another order and in two batches: other phrase ids
        _ingest(eng, tmp_path / f"in{i}", rows if i == 0 else rows[100:], "a.jsonl")
        if i == 1:
            _ingest(eng, tmp_path / f"in{i}", rows[:100], "b.jsonl")
    first = export_snapshot(engines[0], str(tmp_path / "root1"))
    second = export_snapshot(engines[1], str(tmp_path / "root2"))
    assert first.manifest.content_hash == second.manifest.content_hash
    assert first.manifest.sha256 == second.manifest.sha256  # content order, not the database's ids
    data = tmp_path / "root1" / "snapshots" / first.manifest.content_hash / DATA
    stamp = data.stat().st_mtime_ns
    again = export_snapshot(engines[0], str(tmp_path / "root1"))
    assert again.reused and again.manifest == first.manifest and data.stat().st_mtime_ns == stamp

    data.write_bytes(data.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    with pytest.raises(TrajetError, match="checksum mismatch"):
        SnapshotReader(first.uri)
    with pytest.raises(TrajetError, match="does not match its manifest.*never overwritten"):
        export_snapshot(engines[0], str(tmp_path / "root1"))
    for eng in engines:
        eng.dispose()


def test_a_snapshot_whose_phrases_changed_is_not_exported_under_its_hash(sqlite_engine, tmp_path):
    _ingest(sqlite_engine, tmp_path / "in", _rows())
    snap = store.create_snapshot(sqlite_engine)
    with sqlite_engine.begin() as conn:
        pid = conn.scalar(sa.select(store.PhraseRow.id).where(store.PhraseRow.n_depart == 1).limit(1))
        conn.execute(sa.update(store.PhraseRow).where(store.PhraseRow.id == pid).values(entities=[]))
    with pytest.raises(TrajetError, match=f"snapshot {snap.id}'s phrases changed since it was taken"):
        export_snapshot(sqlite_engine, str(tmp_path / "root"), snap.id)
    assert not (tmp_path / "root" / "snapshots" / snap.content_hash / MANIFEST).exists()


def test_bad_uris_and_missing_exports_are_one_line_errors(tmp_path):
    with pytest.raises(TrajetError, match="not a snapshot URI"):
        SnapshotReader(str(tmp_path / "snapshots" / "abc"))
    with pytest.raises(TrajetError, match=r"no exported snapshot at .* \(manifest.json missing\)"):
        SnapshotReader(str(tmp_path / "snapshots" / ("a" * 64)))
    with pytest.raises(TrajetError, match="not the expected"):
        SnapshotReader(str(tmp_path / "snapshots" / ("a" * 64)), expected_hash="b" * 64)


# ------------------------------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint, monkeypatch, tmp_path):
    import boto3

    for key, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")
                       }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"snap-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_s3_export_is_read_on_a_host_without_the_database(engine, s3_bucket, tmp_path, monkeypatch):
    client, bucket = s3_bucket
    _ingest(engine, tmp_path / "in", _rows())
    result = export_snapshot(engine, f"s3://{bucket}/registry")
    h = result.manifest.content_hash
    assert result.uri == f"s3://{bucket}/registry/snapshots/{h}"
    assert sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]) == [
        f"registry/snapshots/{h}/{DATA}", f"registry/snapshots/{h}/{MANIFEST}"]
    expected = {s: _by_text(store.load_split(engine, result.snapshot_id, s)) for s in ("train", "validation")}

    # the GPU host: another TRAJET_HOME (empty cache) and a database URL that cannot be reached
    monkeypatch.setenv("TRAJET_HOME", str(tmp_path / "gpu_home"))
    monkeypatch.setenv("TRAJET_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    train, validation, content_hash = load_training_data(snapshot_uri=result.uri)
    assert (content_hash, _by_text(train), _by_text(validation)) == (h, expected["train"], expected["validation"])
    cached = cache_file(h)
    assert cached.is_file() and str(cached).startswith(str(tmp_path / "gpu_home"))

    cached.write_bytes(b"damaged")  # a damaged cache is fetched again, never used
    assert _by_text(SnapshotReader(result.uri).phrases("train")) == expected["train"]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == result.manifest.sha256

    again = export_snapshot(engine, f"s3://{bucket}/registry")  # exists: verified, not written again
    assert again.reused and again.manifest == result.manifest

    key = f"registry/snapshots/{h}/{DATA}"
    client.put_object(Bucket=bucket, Key=key, Body=b"tampered")
    cached.unlink()
    with pytest.raises(TrajetError, match="checksum mismatch"):
        SnapshotReader(result.uri)
    assert not cached.exists()


def test_cli_exports_then_trains_from_the_uri_only(sqlite_engine, tmp_path):
    _ingest(sqlite_engine, tmp_path / "in", _rows())
    env = {**os.environ, "TRAJET_DATABASE_URL": str(sqlite_engine.url), "TRAJET_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "trajet", "data", "export-snapshot", "--to", str(tmp_path / "root")],
                         cwd=REPO, capture_output=True, text=True, env=env, check=True)
    uri = out.stdout.strip()
    assert uri.startswith(f"{tmp_path / 'root'}/snapshots/") and "exported snapshot 1 (190 phrases" in out.stderr
    again = subprocess.run([sys.executable, "-m", "trajet", "data", "export-snapshot", "--to",
                            str(tmp_path / "root"), "--json"], cwd=REPO, capture_output=True, text=True, env=env,
                           check=True)
    assert json.loads(again.stdout)["reused"] is True and json.loads(again.stdout)["uri"] == uri
    bad = subprocess.run([sys.executable, "-m", "trajet", "train", "--snapshot-uri", uri, "--snapshot", "1"],
                         cwd=REPO, capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "give it without --train or --snapshot" in bad.stderr


@pytest.mark.parametrize("augment", [{"augment": 0.5, "augment_place_prob": 0.5, "augment_compose": 0.2},
                                     {"augment": 0.0}])
def test_training_streams_the_snapshot_and_trains_the_same_model_as_from_lists(sqlite_engine, tmp_path, monkeypatch,
                                                                                augment):
    """The snapshot's splits are streamed (`SnapshotSplit`: no list of phrases; the tokenized training and
    validation sentences go to memory-mapped files, removed after), and the model and its validation scores are
    byte for byte the ones the lists give."""
    from flow_data import TINY_TRAINING

    from trajet import token_cache
    from trajet.minibase import MiniSpec, build_mini
    from trajet.snapshot_reader import SnapshotSplit
    from trajet.train import train_model
    from trajet.train_config import config_for

    _ingest(sqlite_engine, tmp_path / "in", _rows())
    reader = SnapshotReader(export_snapshot(sqlite_engine, str(tmp_path / "root")).uri)
    train, validation, _ = reader.training_data()
    s_train, s_validation, _ = reader.training_splits()
    assert isinstance(s_train, SnapshotSplit) and not hasattr(s_train, "__getitem__")
    assert (len(s_train), len(s_validation)) == (len(train), len(validation))
    base = build_mini([p.text for p in train], tmp_path / "base", MiniSpec.named("tiny"))
    cfg = config_for("tiny", {"base_model": str(base), "human_weight": 2, **TINY_TRAINING, **augment}, environ={})
    caches: list[Path] = []
    real = token_cache.TokenCache.__init__

    def spy(self, path, rows):
        caches.append(Path(path))
        real(self, path, rows)

    monkeypatch.setattr(token_cache.TokenCache, "__init__", spy)
    listed = train_model(train, validation, cfg, tmp_path / "listed", progress=False)
    assert caches == []
    streamed = train_model(s_train, s_validation, cfg, tmp_path / "streamed", progress=False)
    tokens = tmp_path / ".streamed.tokens"
    assert caches == [tokens / "train-rank0.arrow", tokens / "train-rank0.val.arrow"] and not tokens.exists()
    weights = [hashlib.sha256((r.output_dir / "model.safetensors").read_bytes()).hexdigest() for r in (listed, streamed)]
    scores = [{k: v for k, v in r.best_metrics.items() if k.startswith(("f1", "loss"))} for r in (listed, streamed)]
    assert weights[0] == weights[1] and scores[0] == scores[1] and "f1_macro" in scores[0] and listed.steps == 40
