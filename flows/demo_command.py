"""`trajet demo` (the whole loop on embedded defaults) and `trajet ui` (a local Prefect server and UI).

They drive Prefect, so they live with the flows and not in trajet/, which never imports Prefect (the
import-linter contracts in pyproject.toml hold that). `trajet` finds them through the `trajet.commands`
entry-point group this package declares (trajet.commands.register_all), so the console script, `python -m
trajet` and their options are the same as if they were built in.

Both keep Prefect's own state under $TRAJET_HOME/prefect, so the UI started by `trajet ui` shows the runs
that `trajet demo` made through Prefect's ephemeral API. Prefect and the flows are imported inside the
command bodies, after the environment is set: `trajet --help` stays fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from trajet.errors import TrajetError

console = Console()
DEMO_MARKER = ".trajet-demo"


def _prefect_env(base_home: Path) -> None:
    """Quiet, local Prefect state under TRAJET_HOME unless the user already points Prefect elsewhere."""
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_HOME", str(base_home / "prefect"))
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # its SQLite file goes there
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # the ephemeral API server takes ~20-30 s to start on a busy 2-core machine (default limit: 20 s)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _fresh_demo_home(base_home: Path) -> Path:
    """The demo starts from nothing each time, in its own folder; it only ever deletes a folder it made."""
    home = base_home / "demo"
    if home.exists():
        if not (home / DEMO_MARKER).exists():
            raise TrajetError(f"{home} exists and was not made by `trajet demo`: move it away or set TRAJET_HOME")
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / DEMO_MARKER).write_text("made by `trajet demo`; deleted by the next one\n", encoding="utf-8")
    return home


@contextmanager
def _embedded_s3() -> Iterator[str]:
    """moto's S3 server on loopback, with dummy credentials: the registry then runs its S3 backend."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto is a dev dependency (installed by `make demo`)
        raise TrajetError(f"--s3 needs moto[server] (pip install 'moto[server]'): {exc}") from None
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo", AWS_DEFAULT_REGION="us-east-1")
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="trajet-demo")
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def demo_cmd(
    s3: bool = typer.Option(False, "--s3", help="Registry on an embedded S3 endpoint (moto) instead of a local folder."),
    preset: str | None = typer.Option(
        None, help="Training preset (default: auto, i.e. the CPU default `mini` without CUDA, `camembert` with it)."
    ),
    night2_epochs: float = typer.Option(1.0, "--night2-epochs", help="Epochs of night 2's warm start from the champion."),
    ui_port: int = typer.Option(4200, "--ui-port", help="Port that `trajet ui` will be told to use in the hint."),
    min_f1: float = typer.Option(
        0.80, "--min-f1",
        help="The gate's absolute macro-F1 floor for this demo; production keeps 0.95. The CPU default usually "
        "clears 0.95 (about 0.99 test macro F1), but a model trained from scratch in a few minutes should not "
        "decide on a thin margin whether night 1 promotes, so the demo lowers this one rule and says so; "
        "--min-f1 0.95 runs it with production's floor. Every other gate rule keeps its production default.",
    ),
) -> None:
    """The whole loop, for real, through the production Prefect flows on embedded defaults (SQLite, a local
    registry folder or --s3, Prefect's ephemeral API), from an empty TRAJET_HOME/demo each time.

    1. generate 10,000 phrases and a later batch;
    2. ingest them (Great Expectations validation, store, quarantine);
    3. ingest a deliberately flawed batch: held, every row quarantined with its reasons;
    4. night 1: train the CPU default, evaluate, gate, promote the first champion;
    5. ingest the new batch;
    6. night 2: warm start from the champion (--night2-epochs), gate against the champion;
    7. pull the champion with every sha256 checked; 8. predict a few requests.
    It ends with the time per stage and the `trajet ui` command that shows these runs."""
    from trajet import config

    started = time.perf_counter()
    base_home = config.home()
    _prefect_env(base_home)
    home = _fresh_demo_home(base_home)
    os.environ["TRAJET_HOME"] = str(home)
    os.environ.pop("TRAJET_DATABASE_URL", None)
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = os.environ.get("TRAJET_DEMO_LOG_LEVEL", "WARNING")
    console.print(f"[bold]trajet demo[/] in {escape(str(home))} (SQLite {escape(str(home / 'trajet.db'))}), Prefect state in "
                  f"{escape(os.environ.get('PREFECT_API_URL') or os.environ['PREFECT_HOME'])}")

    with _embedded_s3() if s3 else _no_s3() as endpoint:
        if endpoint:
            os.environ["TRAJET_REGISTRY_URI"] = "s3://trajet-demo/registry"
            label = f"s3://trajet-demo/registry on {endpoint}"
        else:
            os.environ.pop("TRAJET_REGISTRY_URI", None)
            label = str(home / "registry")
        from flows.demo import run_demo, summary

        result = run_demo(console, preset=preset, night2_epochs=night2_epochs, registry_label=label, min_f1=min_f1)
    hint = _ui_hint(ui_port)
    summary(console, result, time.perf_counter() - started, hint)
    if not result.ok:
        raise TrajetError("the demo did not complete every step (see above)")


@contextmanager
def _no_s3() -> Iterator[None]:
    yield None


def _ui_hint(port: int) -> str:
    if os.environ.get("PREFECT_API_URL"):
        return f"The runs went to your Prefect server: {os.environ['PREFECT_API_URL'].removesuffix('/api')}"
    return (
        f"trajet ui --port {port}      # then open http://127.0.0.1:{port}\n"
        "Flow runs (tagged promoted, rejected, skipped, failed, held, degraded), logs and the keyed artifacts\n"
        "(retrain-summary, retrain-comparison, retrain-gate, retrain-model, ingest-batch-<id>, champion-watch,\n"
        "ingest-reasons, ...) of this demo are kept in the Prefect database under TRAJET_HOME/prefect."
    )


def ui_cmd(
    port: int = typer.Option(4200, help="Port of the Prefect server and UI."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (keep loopback unless you add auth)."),
) -> None:
    """Start a local Prefect server and UI on the state `trajet demo` wrote (Ctrl-C to stop)."""
    from trajet import config

    _prefect_env(config.home())
    env = {**os.environ}
    env.pop("PREFECT_API_URL", None)  # the server serves its own API
    # The UI's JavaScript finds the API through these settings, not through `server start --port`: without
    # them a UI on another port than 4200 calls port 4200 and shows nothing.
    env.update(PREFECT_SERVER_API_HOST=host, PREFECT_SERVER_API_PORT=str(port))
    if host not in ("0.0.0.0", "::", ""):
        env["PREFECT_UI_API_URL"] = f"http://{host}:{port}/api"
    else:  # listening everywhere: the browser's address is not known here, Prefect derives it per request
        env.pop("PREFECT_UI_API_URL", None)
    api = f"http://{host}:{port}/api"
    console.print(f"Prefect UI on [bold]http://{escape(host)}:{port}[/] (state: {escape(str(env.get('PREFECT_HOME')))})")
    console.print(f"To send flow runs there instead of the ephemeral API: [bold]export PREFECT_API_URL={escape(api)}[/]")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)], env=env, check=False
        )
    except KeyboardInterrupt:
        return
    if proc.returncode not in (0, -2, 130):
        raise TrajetError(f"prefect server exited with status {proc.returncode}: see its log above")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
    app.command("ui")(ui_cmd)
