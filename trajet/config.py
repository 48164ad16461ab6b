"""Where Trajet keeps things. Embedded defaults live under TRAJET_HOME so a fresh clone runs with no set-up;
production points the same code at PostgreSQL and S3 through environment variables."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    return Path(os.environ.get("TRAJET_HOME", ".trajet")).resolve()


def data_dir() -> Path:
    return Path(os.environ.get("TRAJET_DATA_DIR", REPO_ROOT / "data")).resolve()


def database_url() -> str:
    url = os.environ.get("TRAJET_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{home() / 'trajet.db'}"


def registry_uri() -> str:
    return os.environ.get("TRAJET_REGISTRY_URI") or str(home() / "registry")


def max_bad_ratio() -> float:
    return float(os.environ.get("TRAJET_MAX_BAD_RATIO", "0.5"))
