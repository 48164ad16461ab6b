"""The champion watch (trajet.watch, `trajet monitor`, `trajet watch`) on a real tiny model and real ingestion:
a batch it knows scores high and passes, the same kind of batch with its roles swapped scores lower and alerts
(the floor and the running-average rule each), re-scoring replaces the row, and the CLI's table, check, JSON
and PNG come from those stored rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.train_fixtures import known_rows as known
from tests.train_fixtures import swapped_roles as swapped
from tests.train_fixtures import trained_tiny
from trajet.cli import app
from trajet.errors import TrajetError
from trajet.evaluate import evaluate_predictions
from trajet.feedback import BatchWatch
from trajet.phrases import Phrase
from trajet.watch import WatchConfig, batch_phrases, decide, latest, record, score_batch, trend, watch_batch

pytest_plugins = ["dbfixtures"]

REPO = Path(__file__).resolve().parent.parent
#: Judged on a batch of 40: the defaults ask for 30 rows, and these tests write 40-row batches.
BATCH = 40
#: The tiny model (one layer, trained in seconds) scores 0.85-0.94 on 40-row chunks of its own training rows and
#: under 0.3 once their roles are swapped: a floor of 0.7 sits far from both, the default (0.80) does not.
TINY = WatchConfig(min_f1=0.7)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def predictor(tiny):
    from trajet.predict import Predictor

    return Predictor.load(tiny["model"])


def ingest(engine, phrases: list[Phrase], path: Path) -> int:
    """Through the real ingestion (validation, store); returns the batch id."""
    from trajet.ingest import ingest_source

    path.write_text("".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in phrases), encoding="utf-8")
    (report,) = ingest_source(str(path), engine=engine)
    assert report.status == "accepted" and report.stored == len(phrases), report
    return int(report.batch_id)


@pytest.fixture
def store_url(tmp_path) -> str:
    from trajet import store

    url = f"sqlite:///{tmp_path / 'watch.db'}"
    store.upgrade(url)
    return url


def test_a_batch_the_champion_knows_scores_high_and_passes(tiny, predictor, store_url, tmp_path):
    from trajet import store

    engine = store.get_engine(store_url)
    phrases = known(tiny, BATCH, 0)
    batch = ingest(engine, phrases, tmp_path / "clean.jsonl")
    row = watch_batch(engine, predictor, "v1", batch, TINY)
    expected = evaluate_predictions(phrases, predictor.predict_entities([p.text for p in phrases]))
    assert row.rows == BATCH and row.micro_f1 == pytest.approx(expected["micro"]["f1"])
    assert row.exact_match == pytest.approx(expected["exact_match"])
    assert row.no_trip_rows == expected["no_trip"]["n"] > 0 and row.no_trip_clean == expected["no_trip"]["clean"]
    assert {e: v["f1"] for e, v in row.per_entity.items()} == {e: v["f1"] for e, v in expected["per_entity"].items()}
    assert row.micro_f1 >= TINY.min_f1 and not row.alert
    assert row.alert_reason.startswith("ok: micro F1") and "first judged batch" in row.alert_reason
    assert row.source.endswith("clean.jsonl") and row.running_average is None
    checks = row.behaviour["checks"]
    assert row.behaviour["rows"] == BATCH and set(checks) >= {"inv_lowercase", "inv_no_accents", "inv_punctuation"}
    assert all(c["n"] > 0 and 0 <= c["changed"] <= c["n"] for c in checks.values())
    assert row.behaviour["failures"] == sum(c["changed"] for c in checks.values())


def test_behaviour_failures_are_answers_that_really_changed(tiny, predictor):
    from trajet.behaviour.rows import row_checks
    from trajet.behaviour.suite import fold

    phrases = known(tiny, BATCH, 1)
    report = row_checks(predictor.predict_entities, phrases, limit=BATCH)
    examples = [ex for c in report["checks"].values() for ex in c["examples"]]
    assert report["failures"] > 0 and examples, "the tiny model is expected to break on some rewritten rows"
    for ex in examples:
        before, after = predictor.predict_entities([ex["original"], ex["perturbed"]])
        got = sorted((e.label, fold(ex["perturbed"][e.start:e.end])) for e in after)
        was = sorted((e.label, fold(ex["original"][e.start:e.end])) for e in before)
        assert got != was and got == sorted((g.split(":", 1)[0], fold(g.split(":", 1)[1])) for g in ex["got"])
    assert row_checks(predictor.predict_entities, phrases, limit=5)["rows"] == 5


def test_swapped_roles_fall_under_the_floor_and_alert(tiny, predictor, store_url, tmp_path):
    from trajet import store

    engine = store.get_engine(store_url)
    bad = swapped(known(tiny, BATCH, 0))
    batch = ingest(engine, bad, tmp_path / "swapped.jsonl")
    row = watch_batch(engine, predictor, "v1", batch)
    clean = evaluate_predictions(batch_phrases(engine, batch), predictor.predict_entities([p.text for p in bad]))
    assert row.micro_f1 == pytest.approx(clean["micro"]["f1"]) and row.micro_f1 < WatchConfig().min_f1
    assert row.alert and row.alert_reason == f"micro F1 {row.micro_f1:.4f} < min_f1 {WatchConfig().min_f1:.2f}"
    small = WatchConfig(min_rows=BATCH + 1)  # the same scores on a batch judged too small: shown, never alerting
    kept = record(engine, batch, "v1", score_batch(predictor, bad, small), small)
    assert not kept.alert and kept.alert_reason == f"not judged: {BATCH} rows, fewer than min_rows {BATCH + 1}"


def test_a_batch_without_trips_is_scored_but_never_judged(tiny, predictor):
    rows = [p for p in {p.text: p for p in tiny["train"]}.values() if not p.entities]
    score = score_batch(predictor, rows)
    clean = sum(not found for found in predictor.predict_entities([p.text for p in rows]))
    assert score.micro_f1 is None and score.no_trip_rows == len(rows) > 0
    assert score.no_trip_clean == pytest.approx(clean / len(rows))
    enough = WatchConfig(min_rows=len(rows))  # large enough: what keeps it from being judged is the missing F1
    assert decide(score, [0.9], enough) == (False, "not judged: the batch annotates no entity, so F1 is undefined", 0.9)


def test_a_drop_under_the_running_average_alerts_above_the_floor(tiny, predictor, store_url, tmp_path):
    from trajet import store

    engine = store.get_engine(store_url)
    # no floor; a drop wider than the spread between the tiny model's clean chunks, narrower than half the roles swapped
    config = WatchConfig(min_f1=0.0, max_drop=0.2, window=2)
    firsts = [watch_batch(engine, predictor, "v1", ingest(engine, known(tiny, BATCH, n), tmp_path / f"c{n}.jsonl"), config)
              for n in range(3)]
    assert not any(r.alert for r in firsts)
    half = swapped(known(tiny, BATCH, 3), share=0.5)
    row = watch_batch(engine, predictor, "v1", ingest(engine, half, tmp_path / "half.jsonl"), config)
    average = (firsts[1].micro_f1 + firsts[2].micro_f1) / 2  # the window: the two batches before it
    assert row.running_average == pytest.approx(average) and row.history == 2
    assert average - row.micro_f1 > config.max_drop and row.alert
    assert row.alert_reason == (f"micro F1 {row.micro_f1:.4f} is {average - row.micro_f1:.4f} under its running "
                                f"average {average:.4f} over 2 batch(es) (max_drop 0.20)")
    # another champion version has no history: the same batch only meets the floor, which it passes
    other = watch_batch(engine, predictor, "v2", row.batch_id, config)
    assert not other.alert and other.running_average is None
    rows = trend(engine, config=config)
    assert [(r.batch_id, r.champion_version) for r in rows][-2:] == [(row.batch_id, "v1"), (row.batch_id, "v2")]
    assert [r.running_average for r in rows if r.champion_version == "v1"][-1] == pytest.approx(average)
    assert latest(rows).champion_version == "v2" and [r.batch_id for r in trend(engine, last=1)] == [row.batch_id] * 2


def test_scoring_a_pair_again_replaces_its_row(tiny, predictor, engine, tmp_path):
    """On SQLite and PostgreSQL: one row per (batch, champion version), whatever the number of scorings."""
    phrases = known(tiny, BATCH, 0)
    batch = ingest(engine, phrases, tmp_path / "again.jsonl")
    first = watch_batch(engine, predictor, "v1", batch)
    score = score_batch(predictor, swapped(phrases))  # the champion's answers, judged against other annotations
    second = record(engine, batch, "v1", score)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(BatchWatch).where(BatchWatch.batch_id == batch)).all()
    assert len(stored) == 1 and stored[0].micro_f1 == pytest.approx(second.micro_f1) != first.micro_f1
    assert stored[0].alert == second.alert and stored[0].behaviour == json.loads(json.dumps(score.behaviour))
    again = watch_batch(engine, predictor, "v1", batch)
    assert again.micro_f1 == pytest.approx(first.micro_f1) and again.behaviour == first.behaviour
    watch_batch(engine, predictor, "v2", batch)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(BatchWatch)).scalar_one() == 2


def test_bad_settings_and_batches_are_one_line_errors(store_url, monkeypatch):
    from trajet import store

    with pytest.raises(TrajetError, match=r"^watch setting min_f1=1.5: expected a number between 0 and 1$"):
        WatchConfig(min_f1=1.5)
    with pytest.raises(TrajetError, match=r"^watch setting window=0: expected a whole number of at least 1$"):
        WatchConfig.from_env(window=0)
    monkeypatch.setenv("TRAJET_WATCH_MAX_DROP", "lots")
    with pytest.raises(TrajetError, match=r"^TRAJET_WATCH_MAX_DROP='lots': not a number$"):
        WatchConfig.from_env()
    monkeypatch.setenv("TRAJET_WATCH_MAX_DROP", "0.1")
    assert WatchConfig.from_env(window=3.0) == WatchConfig(max_drop=0.1, window=3)
    with pytest.raises(TrajetError, match="unknown watch setting"):
        WatchConfig.from_env(threshold=0.9)
    with pytest.raises(TrajetError, match=r"^batch 99: no such batch$"):
        batch_phrases(store.get_engine(store_url), 99)
    bad = CliRunner().invoke(app, ["monitor", "--database", "not a url"])
    assert isinstance(bad.exception, TrajetError) and str(bad.exception).startswith("--database is not a database URL")
    bad = CliRunner().invoke(app, ["monitor", "--last", "-1", "--database", store_url])
    assert isinstance(bad.exception, TrajetError) and str(bad.exception) == "--last -1: expected 0 or more"
    empty = CliRunner().invoke(app, ["monitor", "--database", store_url, "--check"])
    assert empty.exit_code == 0 and empty.output == "ok: no batch scored by a champion yet\n"


# ------------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def watched(tiny, predictor, store_url, tmp_path) -> dict:
    """A store with a clean batch then a swapped one, both scored by `v1`."""
    from trajet import store

    engine = store.get_engine(store_url)
    ids = [ingest(engine, known(tiny, BATCH, 0), tmp_path / "night1.jsonl"),
           ingest(engine, swapped(known(tiny, BATCH, 1)), tmp_path / "night2.jsonl")]
    rows = [watch_batch(engine, predictor, "v1", i, TINY) for i in ids]
    return {"url": store_url, "ids": ids, "rows": rows, "engine": engine}


def test_monitor_shows_the_table_and_the_plot(watched):
    result = CliRunner().invoke(app, ["monitor", "--database", watched["url"]], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    ok, bad = watched["rows"]
    for row in (ok, bad):
        assert f"{row.micro_f1:.4f}" in result.output and row.source.split("/")[-1] in result.output
    assert "ALERT" in result.output and "champion strict micro F1 per batch" in result.output
    assert "• v1" in result.output and f"- min_f1 {WatchConfig().min_f1:.2f}" in result.output and "X alert" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith(f"ALERT batch {bad.batch_id} (night2.jsonl), champion v1")


def test_monitor_check_exits_1_on_an_alert_and_0_once_a_good_batch_follows(watched, tiny, predictor, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", "--database", watched["url"], "--check"], env={"COLUMNS": "400"})
    bad = watched["rows"][1]
    assert result.exit_code == 1 and result.output == f"ALERT batch {bad.batch_id} (night2.jsonl), champion v1: {bad.alert_reason}\n"
    later = ingest(watched["engine"], known(tiny, BATCH, 2), tmp_path / "night3.jsonl")
    good = watch_batch(watched["engine"], predictor, "v1", later, TINY)
    result = runner.invoke(app, ["monitor", "--database", watched["url"], "--check"], env={"COLUMNS": "400"})
    assert result.exit_code == 0 and result.output == f"batch {later} (night3.jsonl), champion v1: {good.alert_reason}\n"
    data = json.loads(runner.invoke(app, ["monitor", "--database", watched["url"], "--json", "--last", "2"]).output)
    assert [r["batch_id"] for r in data["rows"]] == watched["ids"][1:] + [later]
    assert data["check"] == {"alert": False, "line": result.output.strip()} and data["config"] == WatchConfig().to_dict()


def test_monitor_writes_a_png(watched, tmp_path):
    out = tmp_path / "trend" / "watch.png"
    result = CliRunner().invoke(app, ["monitor", "--database", watched["url"], "--no-plot", "--png", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert "champion strict micro F1" not in result.output  # --no-plot


def test_watch_command_scores_a_stored_batch_by_hand(watched, tiny):
    batch = watched["ids"][0]
    result = CliRunner().invoke(app, ["watch", "--batch", str(batch), "--model", str(tiny["model"]), "--database",
                                      watched["url"]], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = [r for r in trend(watched["engine"]) if r.batch_id == batch]
    assert [r.champion_version for r in rows] == ["v1", tiny["model"].name]
    assert rows[0].micro_f1 == pytest.approx(rows[1].micro_f1) and f"{rows[1].micro_f1:.4f}" in result.output
    bad = CliRunner().invoke(app, ["watch", "--batch", "999", "--model", str(tiny["model"]), "--database", watched["url"]])
    assert isinstance(bad.exception, TrajetError) and str(bad.exception) == "batch 999: no such batch"


def test_cli_start_up_imports_no_plotting_orchestration_or_model_library(tmp_path):
    code = ("import sys, trajet.cli; print(sorted(m for m in ('matplotlib', 'plotext', 'prefect', 'torch', "
            "'transformers', 'great_expectations') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    env = {**os.environ, "TRAJET_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    res = subprocess.run([sys.executable, "-m", "trajet", "monitor", "--check"], cwd=REPO, capture_output=True,
                         text=True, env=env)
    assert res.returncode == 2 and res.stderr.strip().startswith("error: database schema is at nothing")


def test_the_documented_automation_triggers_on_the_event_the_ingest_flow_emits():
    """infra/README.md's deployment trigger is valid for Prefect and matches `trajet.champion.degraded` on a batch."""
    import re

    import yaml
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.events.schemas.events import Resource

    from flows.champion_review import DEGRADED_EVENT

    text = (REPO / "infra" / "README.md").read_text(encoding="utf-8")
    section = text.split("## When the champion degrades", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    (trigger,) = yaml.safe_load(block)["triggers"]
    parsed = DeploymentEventTrigger.model_validate(trigger)
    assert parsed.expect == {DEGRADED_EVENT} and parsed.posture == "Reactive" and parsed.threshold == 1
    # the resource the flow's event names (flows/champion_review.tell_watch), and not a model's
    batch = Resource({"prefect.resource.id": "trajet.batch.12", "prefect.resource.name": "inbox/batch_12.jsonl"})
    model = Resource({"prefect.resource.id": "trajet.model.v3", "prefect.resource.name": "v3"})
    assert parsed.match.matches(batch) and not parsed.match.matches(model)
