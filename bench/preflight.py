"""How long a night takes to fail when its base model cannot be loaded (hub offline, nothing mirrored).

Runs `nightly-retrain` with the `camembert` preset on a 10,000-phrase store, HF_HUB_OFFLINE=1 and an empty
Hugging Face cache, against a temporary Prefect server, and prints the flow run's wall time and message.
Run it once on this checkout and once on the code to compare with:

    python bench/preflight.py                        # this checkout
    PYTHONPATH=/path/to/other/checkout python bench/preflight.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="trajet-preflight-"))
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_CACHE=str(tmp / "hf-cache"),
                      TRAJET_HOME=str(tmp / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                      TOKENIZERS_PARALLELISM="false")
    os.environ.pop("TRAJET_DATABASE_URL", None)
    os.environ.pop("TRAJET_TRAIN_BASE_MODEL", None)
    from prefect.testing.utilities import prefect_test_harness

    from trajet import store
    from trajet.generate import write_dataset
    from trajet.ingest import ingest_source

    with prefect_test_harness(server_startup_timeout=180):
        store.upgrade()
        write_dataset(tmp / "data", seed=13, counts={"train": 8000, "test": 2000})
        ingest_source(str(tmp / "data"))
        from flows.retrain import nightly_retrain

        started = time.perf_counter()
        state = nightly_retrain(preset="camembert", return_state=True)
        wall = time.perf_counter() - started
    import flows

    print(json.dumps({
        "code": str(Path(flows.__file__).resolve().parent.parent),
        "night_wall_s": round(wall, 1),
        "state": state.name,
        "message": " ".join(str(state.message).split())[:400],
        "python": sys.version.split()[0],
    }, indent=2))


if __name__ == "__main__":
    main()
