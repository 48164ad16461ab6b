"""Headless-browser screenshots of the Prefect UI on a small demo state: what an ops person sees in the
morning. Not a test (it needs Chromium and a minute of CPU); run it after changing what the flows show.

    apt-get install -y chromium pngquant                 # pngquant (optional) makes the PNGs ~3x smaller
    python bench/ui_screenshots.py                      # PNGs into bench/screenshots/
    python bench/ui_screenshots.py --out /tmp/shots --keep-home /tmp/ui-home

It starts `trajet ui` on a free port over a fresh TRAJET_HOME, sends the flows there (PREFECT_API_URL):
a clean ingest, a held batch, a promoted night, a skipped night, a failed training, a rejected night
(an impossible F1 bar), all on the tiny preset and the flow tests' small data set; then it deploys
deployments/prefect.yaml there (for the schedule's page). It then finds the run
and artifact ids through the REST API (`POST /api/flow_runs/filter`, `/api/artifacts/filter`) and takes
one screenshot per page with `chromium --headless --screenshot`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # flow_data: the flow tests' small annotated data set


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}/api{path}", data=data, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def wait_healthy(base: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            api(base, "/health")
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the Prefect server at {base} did not answer /api/health in {timeout_s:.0f} s")


def run_nights(home: Path) -> None:
    """The demo state, through the production flows, sent to the server in PREFECT_API_URL."""
    from flow_data import LENIENT_GATE, TINY_TRAINING, phrase_rows, write_jsonl

    from flows.ingest import ingest_flow
    from flows.retrain import nightly_retrain
    from trajet import store
    from trajet.phrases import parse_markup

    store.upgrade()
    ingest_flow(write_jsonl(home / "nightly-a.jsonl", phrase_rows(160, 1, "train") + phrase_rows(40, 2, "test")))
    good = [parse_markup("Je veux aller de [Quimper|D] à [Vannes|A]").to_dict()]
    bad = [
        '{"text": "de Paris à Lyon", "entities": [',
        '{"text": "   ", "entities": []}',
        '{"text": "de Paris à Lyon", "entities": [{"start": 3, "end": 99, "label": "DEPART"}]}',
        '{"text": "de Paris à Nice", "entities": [{"start": 3, "end": 8, "label": "CITY"}]}',
        '{"text": "a | b [/] <b>gras</b> `code`", "entities": []}',
    ]
    ingest_flow(write_jsonl(home / "partner-export.jsonl", good, bad), return_state=True)
    nightly_retrain(preset="tiny", config=TINY_TRAINING, gate=LENIENT_GATE, use_challenge=False, return_state=True)
    nightly_retrain(preset="tiny", config=TINY_TRAINING, gate=LENIENT_GATE, use_challenge=False, return_state=True)
    nightly_retrain(force=True, preset="tiny", config={**TINY_TRAINING, "base_model": str(home / "no-such-base")},
                    gate=LENIENT_GATE, use_challenge=False, return_state=True)
    ingest_flow(write_jsonl(home / "nightly-b.jsonl", phrase_rows(60, 3, "train")))
    nightly_retrain(preset="tiny", config=TINY_TRAINING, gate={"min_f1": 1.0}, use_challenge=False, return_state=True)


def deploy(env: dict[str, str]) -> None:
    """The production deployments (schedule and all) on this server, exactly as the README deploys them."""
    prefect = [sys.executable, "-m", "prefect"]
    for pool in ("cpu", "gpu"):
        subprocess.run([*prefect, "work-pool", "create", pool, "--type", "process"], env=env, cwd=ROOT,
                       check=True, capture_output=True, timeout=120)
    subprocess.run([*prefect, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
                   env={**env, "TRAJET_CODE_DIR": str(ROOT)}, cwd=ROOT, check=True, capture_output=True, timeout=300)


def shoot(chromium: str, url: str, out: Path, size: str) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--screenshot={out}", f"--window-size={size}", "--virtual-time-budget=15000", url],
            check=True, capture_output=True, timeout=120,
        )
    if shutil.which("pngquant"):  # 256 colours: a UI screenshot stays readable at a third of the size
        subprocess.run(["pngquant", "--quality=60-85", "--force", "--output", str(out), str(out)], check=False)
    print(f"{out.name}: {out.stat().st_size // 1024} KiB  {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "screenshots")
    parser.add_argument("--keep-home", type=Path, help="TRAJET_HOME to create and keep (default: a temp folder)")
    parser.add_argument("--size", default="1600,1200")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium not found: apt-get install -y chromium")

    home = args.keep_home or Path(tempfile.mkdtemp(prefix="trajet-ui-"))
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TRAJET_HOME": str(home), "PREFECT_HOME": str(home / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           # the UI's own API address; `trajet ui --port` does not set it on every version
           "PREFECT_SERVER_API_PORT": str(port), "PREFECT_UI_API_URL": f"{base}/api"}
    for key in ("PREFECT_API_URL", "TRAJET_DATABASE_URL", "TRAJET_REGISTRY_URI", "TRAJET_TRAIN_DEPLOYMENT"):
        env.pop(key, None)
    server = subprocess.Popen([sys.executable, "-m", "trajet", "ui", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(base)
        os.environ.update({k: v for k, v in env.items() if not k.startswith("PREFECT_UI")})
        os.environ["PREFECT_API_URL"] = f"{base}/api"
        started = time.perf_counter()
        run_nights(home)
        print(f"demo state: {time.perf_counter() - started:.0f} s in {home}")
        deploy({**env, "PREFECT_API_URL": f"{base}/api"})
        time.sleep(6)  # events reach the server through a batching persister

        runs = api(base, "/flow_runs/filter", {"sort": "START_TIME_ASC", "limit": 50})
        by_tag = {tag: r for r in runs for tag in r["tags"]}
        promoted, rejected, held = by_tag["promoted"], by_tag["rejected"], by_tag["held"]

        def artifact(run: dict, key: str) -> str:
            (found,) = api(base, "/artifacts/filter", {"artifacts": {"key": {"any_": [key]}},
                                                       "flow_runs": {"id": {"any_": [run["id"]]}}})
            return found["id"]

        batch_key = next(t for t in held["tags"] if t.startswith("batch-")).replace("batch-", "ingest-batch-")
        args.out.mkdir(parents=True, exist_ok=True)
        pages = {
            "01-runs-list": "/runs",
            "02-promoted-run": f"/runs/flow-run/{promoted['id']}",
            "03-promoted-summary": f"/artifacts/artifact/{artifact(promoted, 'retrain-summary')}",
            "04-rejected-summary": f"/artifacts/artifact/{artifact(rejected, 'retrain-summary')}",
            "05-rejected-gate": f"/artifacts/artifact/{artifact(rejected, 'retrain-gate')}",
            "06-held-ingest-run": f"/runs/flow-run/{held['id']}",
            "07-held-batch": f"/artifacts/artifact/{artifact(held, batch_key)}",
            "08-events": "/events",
        }
        (nightly,) = api(base, "/deployments/filter", {"deployments": {"name": {"any_": ["nightly-retrain"]}}})
        pages["09-nightly-deployment"] = f"/deployments/deployment/{nightly['id']}"
        for name, path in pages.items():
            # artifact pages are long: a taller window shows them whole
            size = args.size if "artifact" not in path else args.size.split(",")[0] + ",2000"
            shoot(chromium, base + path, args.out / f"{name}.png", size)
        events = api(base, "/events/filter", {"filter": {"event": {"prefix": ["trajet."]}}, "limit": 50})
        print("events:", sorted(e["event"] + " " + e["resource"]["prefect.resource.id"] for e in events["events"]))
        print("runs:", [(r["name"], r["state_name"], r["tags"]) for r in runs])
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
