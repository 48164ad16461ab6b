"""`trajet ui` really serves Prefect on the demo's state; `trajet demo` only ever deletes its own folder.
(The demo itself trains the CPU default twice, minutes of CPU: it is measured by hand, see the README.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from trajet.errors import TrajetError

ROOT = Path(__file__).resolve().parent.parent


def test_demo_refuses_to_wipe_a_folder_it_did_not_make(tmp_path):
    from flows.demo_command import DEMO_MARKER, _fresh_demo_home

    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "precious.txt").write_text("keep me")
    with pytest.raises(TrajetError, match="not made by `trajet demo`"):
        _fresh_demo_home(tmp_path)
    assert (tmp_path / "demo" / "precious.txt").read_text() == "keep me"

    (tmp_path / "demo" / "precious.txt").unlink()
    (tmp_path / "demo" / DEMO_MARKER).write_text("")
    (tmp_path / "demo" / "old-run.db").write_text("x")
    home = _fresh_demo_home(tmp_path)
    assert sorted(p.name for p in home.iterdir()) == [DEMO_MARKER]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_trajet_ui_starts_a_prefect_server_on_the_demo_state(tmp_path):
    port = _free_port()
    assert port != 4200
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(TRAJET_HOME=str(tmp_path / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trajet", "ui", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert health is not None and health.status_code == 200 and health.json() is True
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200  # the UI
        # the UI's JavaScript calls this address: on another port than 4200 it must name --port, not 4200
        settings = httpx.get(f"http://127.0.0.1:{port}/ui-settings", timeout=5).json()
        assert settings["api_url"] == f"http://127.0.0.1:{port}/api", settings
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate(timeout=10)
    assert f"export PREFECT_API_URL=http://127.0.0.1:{port}/api" in out
    # the server kept its state where `trajet demo` writes it
    assert (tmp_path / "home" / "prefect" / "prefect.db").is_file()


def test_demo_s3_endpoint_serves_the_registry_then_restores_the_environment(tmp_path, monkeypatch):
    from flows.demo_command import _embedded_s3
    from trajet import registry

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"\x00" * 1024)
    (model / "config.json").write_text("{}")
    with _embedded_s3() as endpoint:
        assert os.environ["AWS_ENDPOINT_URL"] == endpoint and endpoint.startswith("http://127.0.0.1:")
        reg = registry.open_registry("s3://trajet-demo/registry")
        reg.push("v1", model, {"note": "demo"})
        reg.promote("v1", expected=None)
        pulled = reg.pull("champion", tmp_path / "pulled")
        assert (pulled / "model.safetensors").read_bytes() == b"\x00" * 1024
    assert "AWS_ENDPOINT_URL" not in os.environ
