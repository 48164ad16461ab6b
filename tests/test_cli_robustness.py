"""Bad input reaching the CLI from data, paths and the environment: rich markup in rows and paths, file
names that are not UTF-8, a UTF-8 BOM, an unreachable database, a model folder with pickle weights. Each one
must end as a clear line, never a traceback, and must not stop the rest of the work."""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trajet import store
from trajet.cli import app
from trajet.ingest import export_quarantine, ingest_source
from trajet.ingest_sql import quarantine_rows
from trajet.phrases import parse_markup, phrase_to_conll, phrase_to_json

pytest_plugins = ["dbfixtures"]
REPO = Path(__file__).resolve().parent.parent
MARKUP = "[/] [bold]x[/bold] [link=file:///etc]y"


def _good(n: int) -> list[str]:
    cities = ["Paris", "Lyon", "Nantes", "Brest", "Metz", "Lille", "Tours", "Dijon"]
    return [phrase_to_json(parse_markup(f"de [{cities[i % 8]}|D] à [{cities[(i + 3) % 8]}|A] n°{i}")) for i in range(n)]


@pytest.fixture
def cli_db(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TRAJET_DATABASE_URL", url)
    store.upgrade(url)
    return url


def _invoke(*args: str):
    res = CliRunner(env={"COLUMNS": "250"}).invoke(app, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


# ------------------------------------------------------------------------------------- rich markup


def test_markup_in_rows_and_paths_is_printed_verbatim(tmp_path, cli_db):
    folder = tmp_path / "in[bold]x["
    folder.mkdir()
    path = folder / "]rows.jsonl"  # the path holds "[/]"
    path.write_text("\n".join(_good(3) + [MARKUP, json.dumps({"text": MARKUP, "entities": [], "x": 1})]) + "\n",
                    encoding="utf-8")
    res = _invoke("ingest", str(path))
    assert res.exit_code == 0, res.output
    assert "in[bold]x[/]rows.jsonl" in res.output
    res = _invoke("quarantine", "list")
    assert res.exit_code == 0, res.output
    assert "[bold]x[" in res.output
    res = _invoke("quarantine", "list", "1")
    assert res.exit_code == 0, res.output
    assert "[bold]x[/bold]" in res.output and "[link=file:///etc]y" in res.output
    # a held batch prints its message with the path in it
    held = folder / "held[i].jsonl"
    held.write_text(f"{MARKUP}\n{MARKUP}x\n", encoding="utf-8")
    res = _invoke("ingest", str(held))
    assert res.exit_code == 1
    assert f"{held}: not a JSONL file" in res.output.replace("\n", "")


def test_error_message_with_markup_is_printed_verbatim(tmp_path, cli_db):
    missing = tmp_path / "no[/]pe[bold].jsonl"
    env = {**os.environ, "TRAJET_DATABASE_URL": cli_db, "COLUMNS": "300"}
    res = subprocess.run([sys.executable, "-m", "trajet", "ingest", str(missing)], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{missing}: no such file" in res.stderr


# ----------------------------------------------------------------------------- non-UTF-8 file names


def test_non_utf8_file_name_is_skipped_and_the_rest_ingested(tmp_path, sqlite_engine):
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.jsonl").write_text("\n".join(_good(2)) + "\n", encoding="utf-8")
    with open(os.path.join(os.fsencode(folder), b"b-caf\xe9.jsonl"), "wb") as fh:
        fh.write(("\n".join(_good(4)[2:]) + "\n").encode("utf-8"))
    (folder / "c.jsonl").write_text("\n".join(_good(6)[4:]) + "\n", encoding="utf-8")
    for _ in range(2):  # every rerun: same report, the good files are not blocked
        reports = ingest_source(str(folder), engine=sqlite_engine)
        by_status = {r.status for r in reports}
        assert [r.status for r in reports if r.source.endswith(("a.jsonl", "c.jsonl"))] in (
            ["accepted", "accepted"], ["already_ingested", "already_ingested"])
        [skipped] = [r for r in reports if r.status == "skipped"]
        assert skipped.failed and skipped.batch_id is None
        assert "b-caf\\xe9.jsonl" in skipped.source and "not UTF-8" in skipped.message
        skipped.source.encode("utf-8")  # printable and storable
        assert "skipped" in by_status


def test_non_utf8_file_name_cli_line(tmp_path, cli_db):
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.jsonl").write_text("\n".join(_good(2)) + "\n", encoding="utf-8")
    with open(os.path.join(os.fsencode(folder), b"\xff\xfe.jsonl"), "wb") as fh:
        fh.write(b"x\n")
    env = {**os.environ, "TRAJET_DATABASE_URL": cli_db, "COLUMNS": "300"}
    res = subprocess.run([sys.executable, "-m", "trajet", "ingest", str(folder)], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "\\xff\\xfe.jsonl: skipped: the file name is not UTF-8" in res.stdout
    assert "accepted" in res.stdout


# --------------------------------------------------------------------------------------------- BOM


def test_bom_is_stripped_for_jsonl_and_conll(tmp_path, sqlite_engine):
    lines = _good(3)
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(codecs.BOM_UTF8 + ("\n".join(lines + ["oops"]) + "\n").encode("utf-8"))
    [rep] = ingest_source(str(jsonl), engine=sqlite_engine)
    assert (rep.status, rep.stored, rep.quarantined) == ("accepted", 3, 1)
    assert not export_quarantine(sqlite_engine, rep.batch_id).startswith(codecs.BOM_UTF8)
    conll = tmp_path / "bom.conll"
    blocks = [phrase_to_conll(parse_markup(t)) for t in ("de [Caen|D] à [Pau|A]", "vers [Albi|A]")]
    conll.write_bytes(codecs.BOM_UTF8 + "\n\n".join(b.strip("\n") for b in blocks).encode("utf-8") + b"\n")
    [rep] = ingest_source(str(conll), engine=sqlite_engine)
    assert (rep.status, rep.stored, rep.quarantined) == ("accepted", 2, 0)


def test_quarantine_export_drops_a_stored_bom(tmp_path, sqlite_engine):
    """A first row quarantined with its BOM (as older versions stored it) is exported without it."""
    bad = "not json"
    path = tmp_path / "b.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + f"{bad}\n{_good(1)[0]}\n{_good(2)[1]}\n".encode())
    [rep] = ingest_source(str(path), engine=sqlite_engine)
    _, rows = quarantine_rows(sqlite_engine, rep.batch_id)
    assert [r.line for r in rows] == [1]
    with store.session(sqlite_engine) as s:
        s.get(store.QuarantinedRow, rows[0].id).raw = codecs.BOM_UTF8 + bad.encode()
    assert export_quarantine(sqlite_engine, rep.batch_id) == b"not json\n"


# ----------------------------------------------------------------------------------------- database


@pytest.mark.parametrize("command", ["upgrade", "current"])
def test_unreachable_database_is_one_line_with_password_masked(command):
    url = "postgresql+psycopg://trajet:s3cr3t-pw@127.0.0.1:9/nowhere?connect_timeout=3"
    env = {**os.environ, "TRAJET_DATABASE_URL": url}
    res = subprocess.run([sys.executable, "-m", "trajet", "db", command], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr[-2000:]
    assert lines[0].startswith("error: cannot connect to the database postgresql+psycopg://trajet:***@127.0.0.1:9/")
    assert "s3cr3t-pw" not in res.stderr + res.stdout


@pytest.mark.parametrize(("url", "expected"), [
    ("not a url", "error: TRAJET_DATABASE_URL is not a database URL"),
    ("postgresql+nodriver://trajet:s3cr3t-pw@db/x", "error: cannot use the database postgresql+nodriver://trajet:***@db/x"),
])
def test_bad_database_url_is_one_line(url, expected):
    res = subprocess.run([sys.executable, "-m", "trajet", "db", "current"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "TRAJET_DATABASE_URL": url}, timeout=120)
    assert res.returncode == 2 and "s3cr3t-pw" not in res.stderr
    [line] = res.stderr.strip().splitlines()
    assert line.startswith(expected)


# ------------------------------------------------------------------------------------ pickle weights


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from train_fixtures import make_phrases
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from trajet.labels import ID2LABEL, LABEL2ID, LABELS
    from trajet.minibase import MiniSpec, build_mini

    root = tmp_path_factory.mktemp("pickle")
    base = build_mini([p.text for p in make_phrases(40)], root / "base", MiniSpec.named("tiny"))
    model = AutoModelForTokenClassification.from_pretrained(
        str(base), num_labels=len(LABELS), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID))
    out = root / "model"
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out))
    return out


def _copy_with_pickle(src: Path, dest: Path, keep_safetensors: bool) -> Path:
    import shutil

    shutil.copytree(src, dest)
    # not even a loadable pickle: torch.load would raise UnpicklingError, a traceback before this fix
    (dest / "pytorch_model.bin").write_bytes(b"\x80\x04not a real pickle")
    if not keep_safetensors:
        (dest / "model.safetensors").unlink()
    return dest


def test_pickle_only_model_is_one_line(tmp_path, tiny_model):
    model = _copy_with_pickle(tiny_model, tmp_path / "pickled", keep_safetensors=False)
    res = subprocess.run([sys.executable, "-m", "trajet", "predict", "--model", str(model), "de Paris à Lyon"],
                         cwd=REPO, capture_output=True, text=True, timeout=180)
    assert res.returncode == 2, res.stdout + res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    [line] = res.stderr.strip().splitlines()
    assert line.startswith(f"error: {model}: ") and "pytorch_model.bin" in line and "safetensors" in line


def test_pickle_next_to_safetensors_is_ignored_with_a_warning(tmp_path, tiny_model):
    model = _copy_with_pickle(tiny_model, tmp_path / "both", keep_safetensors=True)
    res = subprocess.run([sys.executable, "-m", "trajet", "predict", "--model", str(model), "de Paris à Lyon"],
                         cwd=REPO, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["text"] == "de Paris à Lyon"
    assert f"{model}: ignoring pytorch_model.bin (pickle format); loading the safetensors weights" in res.stderr
