"""The layer rule holds (import-linter contracts in pyproject.toml), and the Prefect-side commands reach the CLI
through the `trajet.commands` entry-point group with the options they always had."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint

import pytest
import typer
from typer.testing import CliRunner

from trajet.commands import MODULES, PLUGIN_GROUP, register_all
from trajet.config import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONTRACTS = [c["id"] for c in PYPROJECT["tool"]["importlinter"]["contracts"]]
# lint-imports, run with this interpreter (the console script may not sit next to it in every venv).
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LINT_IMPORTS, "--no-logo", "--no-cache", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_import_contract_is_kept(contract):
    proc = lint_imports("--contract", contract)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout


def test_a_violation_breaks_the_build(tmp_path):
    """The contracts are not vacuous: a copy of trajet that imports prefect fails them."""
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "trajet", root / "trajet", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "flows", root / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    with (root / "trajet" / "labels.py").open("a", encoding="utf-8") as fh:
        fh.write("\nimport prefect  # noqa: E402,F401\n")
    proc = subprocess.run([sys.executable, "-c", LINT_IMPORTS, "--no-logo", "--no-cache", "--contract",
                           "trajet-without-prefect"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "trajet.labels -> prefect" in proc.stdout


def _declared_plugins() -> list[EntryPoint]:
    """The group as pyproject.toml declares it: what `pip install -e .` writes into the installed metadata."""
    declared = PYPROJECT["project"]["entry-points"][PLUGIN_GROUP]
    return [EntryPoint(name, value, PLUGIN_GROUP) for name, value in sorted(declared.items())]


def _app(plugins: list[EntryPoint]) -> typer.Typer:
    app = typer.Typer()
    register_all(app, plugins)
    return app


def _options(app: typer.Typer, command: str) -> set[str]:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return {word.rstrip(",") for word in result.output.split() if word.startswith("--")}


def test_demo_and_ui_come_from_the_flows_package_with_their_options():
    assert {"demo", "ui"}.isdisjoint(MODULES)  # not built into trajet/
    plugins = _declared_plugins()
    assert [ep.value for ep in plugins] == ["flows.demo_command:register"]
    app = _app(plugins)
    assert {"--s3", "--preset", "--night2-epochs", "--ui-port", "--min-f1"} <= _options(app, "demo")
    assert {"--port", "--host"} <= _options(app, "ui")


def test_without_the_plugin_the_core_commands_remain():
    result = CliRunner().invoke(_app([]), ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "ingest" in result.output and "demo" not in result.output
