"""What ops load is what the gate measured: the README's loader for a pulled model gives the spans `trajet
predict` gives, on a sample of the generated test split, with the torch and the ONNX backends."""

from __future__ import annotations

import json
import re
import shutil
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.train_fixtures import trained_tiny
from trajet.cli import app
from trajet.config import REPO_ROOT, data_dir
from trajet.phrases import read_jsonl

# Test-split phrases scored both ways: at most one chunk of `trajet predict --input` (256 lines), so both ways
# form the same batches. ONNX int8 quantizes activations per batch, so its answer for a text can depend on
# which texts share its batch (seen with 300: one sentence of 300 swapped its roles).
SAMPLE = 250


@pytest.fixture(scope="module")
def champion(tmp_path_factory) -> Path:
    """The tiny trained model (gazetteer features, fuzzy matches: the kind of model the default is) copied
    where the README's snippet looks for it."""
    tiny = trained_tiny(tmp_path_factory.mktemp("tiny"))
    work = tmp_path_factory.mktemp("ops")
    shutil.copytree(tiny["model"], work / "champion")
    return work / "champion"


def readme_loader_snippet() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Serving", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def spans(result: dict) -> list[tuple[int, int, str]] | str:
    """The entities of one answer, or its error (the tiny model reads fewer sub-words than the default)."""
    if "error" in result:
        return result["error"]
    return [(e["start"], e["end"], e["label"]) for e in result["entities"]]


def run_snippet(champion: Path, backend: str, texts: list[str], monkeypatch) -> list[list[tuple[int, int, str]] | str]:
    """The README's code as written, run from the folder holding `champion`, on `texts` instead of its
    example sentence and with `backend`; the spans its predictor returns."""
    code = readme_loader_snippet()
    assert 'backend="torch"' in code and "texts = [" in code
    code = code.replace('backend="torch"', f"backend={backend!r}")
    code = re.sub(r"texts = \[.*?\]\n", "texts = __texts__\n", code, count=1)
    monkeypatch.chdir(champion.parent)
    namespace = {"__name__": "__readme__", "__texts__": texts}
    with redirect_stdout(StringIO()):
        exec(compile(code, "README.md#serving", "exec"), namespace)
    return [spans(r) for r in namespace["predictor"].predict(texts)]


def run_cli(champion: Path, backend: str, texts: list[str], tmp_path: Path) -> list[list[tuple[int, int, str]] | str]:
    src, out = tmp_path / f"in-{backend}.jsonl", tmp_path / f"out-{backend}.jsonl"
    src.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    res = CliRunner().invoke(app, ["predict", "--model", str(champion), "--backend", backend,
                                   "--input", str(src), "--output", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == texts
    return [spans(r) for r in rows]


def test_sample_is_from_the_test_split():
    phrases = read_jsonl(data_dir() / "phrases" / "test.jsonl")
    assert len(phrases) >= SAMPLE and all(p.meta.get("split") == "test" for p in phrases[:SAMPLE])


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_readme_loader_gives_the_spans_of_trajet_predict(champion, backend, monkeypatch, tmp_path):
    if backend == "onnx":
        for module in ("onnxruntime", "onnx", "onnxscript"):
            pytest.importorskip(module, reason="the onnx extra is not installed")
    texts = [p.text for p in read_jsonl(data_dir() / "phrases" / "test.jsonl")[:SAMPLE]]
    documented = run_snippet(champion, backend, texts, monkeypatch)
    cli = run_cli(champion, backend, texts, tmp_path)
    assert documented == cli
    answered = [r for r in cli if not isinstance(r, str)]
    assert len(answered) >= SAMPLE * 2 // 3  # the rest are over the tiny model's length: the same error both ways
    assert sum(map(len, answered)) >= SAMPLE  # the model finds places: the comparison is not of empty lists
