"""The one S3 client factory: endpoint variables, retries, timeouts, region, and one client per setting."""

from __future__ import annotations

import pytest

from trajet import s3
from trajet.errors import TrajetError

S3_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
           "TRAJET_S3_ADDRESSING_STYLE", "TRAJET_S3_CONNECT_TIMEOUT", "TRAJET_S3_READ_TIMEOUT",
           "TRAJET_S3_MAX_ATTEMPTS")


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in S3_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return monkeypatch


def test_the_s3_endpoint_variable_wins_over_the_general_one(env):
    assert s3.endpoint_url() is None
    env.setenv("AWS_ENDPOINT_URL", "http://general:9000")
    assert s3.endpoint_url() == "http://general:9000"
    env.setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:9000")
    assert s3.endpoint_url() == "http://s3-only:9000"
    assert s3.client().meta.endpoint_url == "http://s3-only:9000"
    env.setenv("AWS_ENDPOINT_URL_S3", "")  # empty means unset, as in the AWS SDKs
    assert s3.endpoint_url() == "http://general:9000"


def test_retries_timeouts_and_addressing(env):
    env.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    cfg = s3.client().meta.config
    assert cfg.retries == {"mode": "standard", "total_max_attempts": s3.MAX_ATTEMPTS + 1}
    assert (cfg.connect_timeout, cfg.read_timeout) == (5.0, 10.0)
    assert cfg.s3 == {"addressing_style": "path"}  # MinIO & co. have no virtual-host buckets
    env.setenv("TRAJET_S3_MAX_ATTEMPTS", "7")
    env.setenv("TRAJET_S3_READ_TIMEOUT", "2.5")
    cfg = s3.client().meta.config
    assert cfg.retries["total_max_attempts"] == 8 and cfg.read_timeout == 2.5
    env.delenv("AWS_ENDPOINT_URL")
    assert s3.client().meta.config.s3 == {"addressing_style": "auto"}
    env.setenv("TRAJET_S3_MAX_ATTEMPTS", "0")
    with pytest.raises(TrajetError, match="TRAJET_S3_MAX_ATTEMPTS='0': must be at least 1"):
        s3.client()
    env.setenv("TRAJET_S3_MAX_ATTEMPTS", "many")
    with pytest.raises(TrajetError, match="is not a number"):
        s3.client()


def test_region_and_one_client_per_setting(env):
    env.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    first = s3.client()
    assert first.meta.region_name == "eu-west-3" and s3.client() is first
    env.setenv("AWS_REGION", "eu-central-1")
    assert s3.client().meta.region_name == "eu-central-1"
    env.setenv("AWS_ACCESS_KEY_ID", "another")  # another identity: another client, never a stale one
    assert s3.client() is not first


def test_registry_and_ingest_inbox_use_the_factory(env):
    from trajet.ingest import s3_client
    from trajet.registry import S3Store, open_store

    env.setenv("AWS_ENDPOINT_URL_S3", "http://minio:9000")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_store("s3://bucket/models")
    assert isinstance(store, S3Store) and store.client is s3.client() and s3_client() is s3.client()
