"""Pretrained bases for offline workers: `trajet base mirror` to S3 (moto) with a sha256 manifest, the
checked download on the training side, and the preflight that fails in seconds when a base cannot be found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trajet.base import check_base_available, fetch_base, mirror_base, resolve_base
from trajet.cli import app
from trajet.errors import TrajetError
from trajet.minibase import MiniSpec, build_mini

BUCKET = "bases"


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    import boto3

    for key, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    try:
        client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return client


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory) -> Path:
    """Stands in for the hub: a small model folder, as `save_pretrained` writes it."""
    root = tmp_path_factory.mktemp("hub")
    return build_mini(["de Paris à Lyon", "vers Nantes via Tours", "un billet pour Brest"] * 5, root / "tiny-base",
                      MiniSpec.named("tiny"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def test_mirror_then_resolve_round_trip(s3, hub_dir, tmp_path, monkeypatch):
    uri = f"s3://{BUCKET}/bases/tiny-{tmp_path.name}"
    res = CliRunner().invoke(app, ["base", "mirror", str(hub_dir), uri])
    assert res.exit_code == 0, res.output
    assert f"set TRAJET_TRAIN_BASE_MODEL={uri}" in res.output
    prefix = uri.removeprefix(f"s3://{BUCKET}/")
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json")["Body"].read())
    import hashlib

    expected = _files(hub_dir)
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {
        k: hashlib.sha256(v).hexdigest() for k, v in expected.items()}
    # the training side: TRAJET_TRAIN_BASE_MODEL=s3://... resolves to a checked local copy
    local = Path(resolve_base(uri))
    assert _files(local) == expected
    stamp = (local / "config.json").stat().st_mtime_ns
    assert Path(resolve_base(uri)) == local and (local / "config.json").stat().st_mtime_ns == stamp  # cached
    # the same files again: a no-op; other files to the same prefix: refused (immutable)
    assert mirror_base(str(hub_dir), uri)["files"] == manifest["files"]
    other = tmp_path / "other"
    other.mkdir()
    for name, data in expected.items():
        (other / name).write_bytes(data)
    (other / "config.json").write_text(json.dumps({**json.loads(expected["config.json"]), "note": "x"}))
    with pytest.raises(TrajetError, match="already holds a different base"):
        mirror_base(str(other), uri)
    assert check_base_available(uri).startswith(uri)


def test_checksum_mismatch_is_refused(s3, hub_dir, tmp_path):
    uri = f"s3://{BUCKET}/bases/corrupt-{tmp_path.name}"
    mirror_base(str(hub_dir), uri)
    prefix = uri.removeprefix(f"s3://{BUCKET}/")
    good = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/model.safetensors")["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/model.safetensors", Body=good[:-1] + bytes([good[-1] ^ 1]))
    cache = tmp_path / "cache"
    with pytest.raises(TrajetError, match="model.safetensors does not match .*manifest.json .*mirror the base again"):
        fetch_base(uri, cache)
    assert not cache.exists() or not any(cache.iterdir())  # nothing half-downloaded is left to be used


def test_prefix_without_manifest_is_refused(s3, hub_dir, tmp_path):
    prefix = f"bases/raw-{tmp_path.name}"
    for p in hub_dir.iterdir():
        s3.upload_file(str(p), BUCKET, f"{prefix}/{p.name}")
    with pytest.raises(TrajetError, match="no manifest.json.*trajet base mirror"):
        fetch_base(f"s3://{BUCKET}/{prefix}", tmp_path / "cache")
    with pytest.raises(TrajetError, match="cannot be used.*no manifest.json"):
        check_base_available(f"s3://{BUCKET}/{prefix}")


def test_mirror_from_an_offline_hub_says_why(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TrajetError, match="cannot download 'camembert-base' .*HF_HUB_OFFLINE=1.* set here"):
        mirror_base("camembert-base", f"s3://{BUCKET}/bases/camembert-base-{tmp_path.name}")


def test_preflight_names_the_mirror_command_when_the_hub_is_off(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TrajetError) as info:
        check_base_available("camembert-base")
    message = str(info.value)
    assert "base model 'camembert-base' cannot be loaded" in message and "HF_HUB_OFFLINE=1" in message
    assert "`trajet base mirror camembert-base s3://<bucket>/bases/camembert-base`" in message
    assert "TRAJET_TRAIN_BASE_MODEL=s3://<bucket>/bases/camembert-base" in message
    # what does resolve: built-in bases, and a local folder
    assert "built from the corpus" in check_base_available("trajet:mini")
    with pytest.raises(TrajetError, match="no config.json"):
        check_base_available(str(tmp_path))
