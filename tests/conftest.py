"""Shared test set-up: offline, quiet, and every test gets its own TRAJET_HOME."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _trajet_home(tmp_path, monkeypatch):
    home = tmp_path / "trajet_home"
    monkeypatch.setenv("TRAJET_HOME", str(home))
    monkeypatch.delenv("TRAJET_DATABASE_URL", raising=False)
    monkeypatch.delenv("TRAJET_REGISTRY_URI", raising=False)
    return home
