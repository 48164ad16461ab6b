"""Gate then publish: only a passing candidate reaches the registry, against the champion evaluated."""

from __future__ import annotations

import pytest

from tests.registry_helpers import evaluation, write_model
from trajet.errors import TrajetError
from trajet.gate import GateConfig
from trajet.promotion import gate_and_publish
from trajet.registry import open_registry

GROUPS = {"terse": 0.9, "stations": 0.85}


@pytest.fixture
def model_dirs(tmp_path):
    return [write_model(tmp_path / f"m{i}", seed=i) for i in range(3)]


def test_first_model_then_better_then_worse(model_dirs):
    reg = open_registry()
    first = evaluation(0.96, 0.97, 0.96, 0.95, groups=GROUPS)
    out = gate_and_publish(
        model_dirs[0], first, None, champion_version=None, version="v1", snapshot_hash="s1"
    )
    assert out.decision.passed and out.version == "v1" and reg.champion()["version"] == "v1"
    manifest = reg.manifest("v1")
    assert (
        manifest["gate"]["passed"] and manifest["metrics"] == first and manifest["champion_version"] is None
    )

    # The champion is re-evaluated in the same run (0.955 now, on the grown test split).
    champ_now = evaluation(0.955, 0.96, 0.96, 0.95, groups=GROUPS)
    better = evaluation(0.97, 0.98, 0.97, 0.96, groups=GROUPS)
    out = gate_and_publish(model_dirs[1], better, champ_now, champion_version="v1", version="v2")
    assert out.version == "v2" and out.pointer["previous"] == "v1"
    assert reg.manifest("v2")["champion_metrics"] == champ_now

    worse_via = evaluation(0.975, 0.99, 0.99, 0.93, groups=GROUPS)
    out = gate_and_publish(model_dirs[2], worse_via, better, champion_version="v2", version="v3")
    assert not out.decision.passed and out.version is None
    assert [r.name for r in out.decision.failed_rules] == ["entity_f1:VIA"]
    assert reg.champion()["version"] == "v2"
    assert [m["version"] for m in reg.list_versions()] == ["v1", "v2"]  # a refused candidate is never pushed


def test_decision_against_a_stale_champion_is_refused(model_dirs):
    reg = open_registry()
    ok = evaluation(0.96, 0.97, 0.96, 0.95)
    gate_and_publish(model_dirs[0], ok, None, champion_version=None, version="v1")
    reg.push("v2", model_dirs[1], {})
    reg.promote("v2")  # someone promoted v2 after this run evaluated v1
    with pytest.raises(TrajetError, match="champion is v2, not v1"):
        gate_and_publish(
            model_dirs[2], evaluation(0.99, 0.99, 0.99, 0.99), ok, champion_version="v1", version="v3"
        )
    assert reg.champion()["version"] == "v2"
    with pytest.raises(TrajetError, match="both"):
        gate_and_publish(model_dirs[2], ok, ok, champion_version=None, version="v4", gate_config=GateConfig())


def test_cli_promote_of_a_damaged_version_is_one_line_and_changes_nothing(model_dirs, tmp_path):
    """`trajet model promote` on a version whose stored weights no longer match its manifest: one error line
    naming the version, the object and the reason; exit status 2 (a usage error); champion.json byte for byte as before."""
    import os
    import subprocess
    import sys

    from trajet.config import REPO_ROOT

    root = tmp_path / "registry"
    reg = open_registry(str(root))
    reg.push("v1", model_dirs[0], {})
    reg.promote("v1")
    manifest = reg.push("v2", model_dirs[1], {})
    weights = root / "versions" / "v2" / manifest["objects"] / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    before = (root / "champion.json").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "trajet", "model", "promote", "v2", "--registry", str(root)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: cannot promote v2:") and "model.safetensors" in lines[0]
    assert "sha256" in lines[0] and "Traceback" not in done.stderr
    assert (root / "champion.json").read_bytes() == before
