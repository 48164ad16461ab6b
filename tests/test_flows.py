"""The flows end to end on a real (test) Prefect server, real store, registry, training and evaluation:
a tiny data set and the `tiny` model preset keep it to about a minute of training in all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flow_data import BEHAVIOUR_N, LENIENT_GATE, TINY_TRAINING, phrase_rows, write_jsonl

from trajet.phrases import parse_markup

pytest_plugins = ["_prefect_harness"]

pytestmark = pytest.mark.slow

HELD_TEXTS = ["Je veux aller de Quimper à Vannes", "Un aller simple de Carhaix à Morlaix"]


def _flawed_batch(path: Path) -> str:
    """Two good rows drowned in bad ones: the batch is held, its good rows must never reach training."""
    good = [parse_markup("Je veux aller de [Quimper|D] à [Vannes|A]").to_dict(),
            parse_markup("Un aller simple de [Carhaix|D] à [Morlaix|A]").to_dict()]
    bad = [
        '{"text": "de Paris à Lyon", "entities": [',  # unparseable
        '{"text": "   ", "entities": []}',  # empty text
        '{"text": "de Paris à Lyon", "entities": [{"start": 3, "end": 99, "label": "DEPART"}]}',  # out of bounds
        '{"text": "de Paris à Nice", "entities": [{"start": 3, "end": 8, "label": "CITY"}]}',  # unknown label
        '{"text": "de Metz à Caen", "entities": [{"start": 3, "end": 5, "label": "DEPART"}]}',  # not on a token
    ]
    return write_jsonl(path, good, bad)


@pytest.fixture(scope="module")
def scenario(prefect_api, tmp_path_factory) -> dict:
    """One night after another, in order; each test below checks one part of what happened."""
    from flows.ingest import ingest_flow
    from flows.retrain import nightly_retrain
    from trajet import registry, store

    home = tmp_path_factory.mktemp("flows_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRAJET_HOME", str(home))
    mp.delenv("TRAJET_DATABASE_URL", raising=False)
    mp.delenv("TRAJET_REGISTRY_URI", raising=False)
    mp.delenv("TRAJET_TRAIN_DEPLOYMENT", raising=False)
    try:
        store.upgrade()
        out: dict = {"home": home}
        batch_a = write_jsonl(home / "a.jsonl", phrase_rows(160, seed=1, split="train") + phrase_rows(40, seed=2, split="test"))
        out["ingest_a"] = ingest_flow(batch_a, return_state=True)
        out["ingest_flawed"] = ingest_flow(_flawed_batch(home / "flawed.jsonl"), return_state=True)
        out["night1"] = nightly_retrain(
            preset="tiny", config=TINY_TRAINING, gate=LENIENT_GATE, behaviour_n=BEHAVIOUR_N, return_state=True
        )
        out["champion1"] = registry.open_registry().champion()
        out["night2_same"] = nightly_retrain(preset="tiny", config=TINY_TRAINING, gate=LENIENT_GATE, return_state=True)
        broken = home / "broken-base"  # passes the preflight (a folder with config.json), fails in training
        broken.mkdir()
        (broken / "config.json").write_text('{"model_type": "camembert"}')
        (broken / "model.safetensors").write_bytes(b"not safetensors")
        out["broken"] = nightly_retrain(
            force=True, preset="tiny", config={**TINY_TRAINING, "base_model": str(broken)},
            gate=LENIENT_GATE, return_state=True,
        )
        out["champion_after_broken"] = registry.open_registry().champion()
        batch_b = write_jsonl(home / "b.jsonl", phrase_rows(60, seed=3, split="train"))
        out["ingest_b"] = ingest_flow(batch_b, return_state=True)
        # Impossible absolute bar: the gate must reject and leave the champion alone.
        out["night3_rejected"] = nightly_retrain(
            preset="tiny", config=TINY_TRAINING, gate={"min_f1": 1.0}, use_challenge=False,
            behaviour_n=BEHAVIOUR_N, return_state=True,
        )
        out["champion_after_rejection"] = registry.open_registry().champion()
        # A forgiving gate against the champion: promoted, the previous champion recorded.
        out["night4"] = nightly_retrain(
            force=True, preset="tiny", config=TINY_TRAINING, warm_start=True,
            gate={"min_f1": 0.0, "tolerance": 1.0, "max_entity_drop": 1.0, "max_group_drop": 1.0,
                  "min_behaviour_pass_rate": 0.0, "max_behaviour_drop": 1.0},
            behaviour_n=BEHAVIOUR_N, return_state=True,
        )
        out["champion4"] = registry.open_registry().champion()
        return out
    finally:
        mp.undo()


def _artifacts(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC
        )


def _run_artifact(key: str, state) -> object:
    (artifact,) = [a for a in _artifacts(key) if a.flow_run_id == state.state_details.flow_run_id]
    return artifact


def _flow_run(state):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def _events(name: str, resource_id: str, timeout_s: float = 30.0) -> list:
    """Events reach the server through a background worker and a batching persister: poll for them."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(
                filter=EventFilter(event=EventNameFilter(name=[name]), resource=EventResourceFilter(id=[resource_id])),
                limit=50,
            )
            if page.events or time.monotonic() > deadline:
                return page.events
            time.sleep(1)


def _data(artifact) -> object:
    return json.loads(artifact.data) if isinstance(artifact.data, str) and artifact.type == "table" else artifact.data


def test_ingest_accepts_a_clean_batch_and_holds_a_flawed_one(scenario):
    (accepted,) = scenario["ingest_a"].result()
    assert scenario["ingest_a"].name == "Completed"
    assert accepted["status"] == "accepted" and accepted["stored"] == 200 and accepted["quarantined"] == 0
    held_state = scenario["ingest_flawed"]
    (held,) = held_state.result()
    assert held_state.is_completed() and held_state.name == "Held"
    assert held["status"] == "held" and held["rows_read"] == 7 and held["stored"] == 0
    assert held["quarantined"] >= 5
    reasons = [a for a in _artifacts("ingest-reasons") if a.flow_run_id == held_state.state_details.flow_run_id]
    (table,) = reasons
    rows = _data(table)
    assert sum(r["rows"] for r in rows) == sum(held["reasons"].values()) and all(r["status"] == "held" for r in rows)
    summaries = [a for a in _artifacts("ingest-summary") if a.flow_run_id == held_state.state_details.flow_run_id]
    assert f"Batch {held['batch_id']}: **HELD**" in summaries[0].data
    # batch checks as a table of numbers, not a printed Python dict
    assert "| label_distribution.max_shift |" in summaries[0].data and "{" not in summaries[0].data


def test_a_held_batch_can_be_found_and_explained(scenario):
    held_state = scenario["ingest_flawed"]
    (held,) = held_state.result()
    batch = held["batch_id"]
    assert {"held", f"batch-{batch}"} <= set(_flow_run(held_state).tags)
    assert "held" not in _flow_run(scenario["ingest_a"]).tags
    page = _run_artifact(f"ingest-batch-{batch}", held_state).data
    # the flawed file: 2 good rows (lines 1-2, held with the batch), then 5 bad rows on lines 3-7
    assert f"# Batch {batch}: **HELD**" in page
    section = page.split("## Reasons")[1].split("##")[0]
    reasons = {cells[0]: cells[2] for line in section.splitlines() if line.startswith("| ")
               for cells in [[c.strip() for c in line.strip("|").split("|")]] if cells[0] not in ("reason", "---")}
    assert reasons["batch held"] == "1, 2"
    assert sorted({int(n) for lines in reasons.values() for n in lines.split(", ")}) == [1, 2, 3, 4, 5, 6, 7]
    # first raw rows by line number, markup characters in the data escaped (the unparseable row ends with `[`)
    assert "| 3 | " in page and r'\{"text": "de Paris à Lyon", "entities": \[ |' in page
    assert f"trajet quarantine export {batch} --output quarantine-{batch}.jsonl" in page
    (event,) = _events("trajet.batch.held", f"trajet.batch.{batch}")
    assert event.payload["quarantined"] == held["quarantined"] and event.payload["status"] == "held"


def test_first_night_promotes_a_champion_with_its_artifacts(scenario):
    state = scenario["night1"]
    assert state.name == "Promoted", state.message
    result = state.result()
    assert scenario["champion1"]["version"] == result["version"]
    assert result["gate"]["passed"] and not result["gate"]["has_champion"]
    run_id = state.state_details.flow_run_id
    model = _run_artifact("retrain-model", state)
    assert model.type == "markdown"
    pointer = scenario["champion1"]
    pull = f"trajet model pull {result['version']} --registry {scenario['home'] / 'registry'}"
    assert pull in model.data and pointer["manifest_sha256"] in model.data
    summary = _run_artifact("retrain-summary", state).data
    training = result["training"]
    for expected in ("**PROMOTED**", pull, pointer["manifest_sha256"], "| preset | `tiny` |",
                     f"| steps | {training['steps']} |", result["snapshot"]["content_hash"][:12],
                     f"| best validation macro F1 | {training['best_metrics']['f1_macro']:.4f} |",
                     f"| test | macro F1 | {result['evaluation']['candidate']['test']['macro']['f1']:.4f} | - | - |",
                     "| test | VIA F1 |"):
        assert expected in summary, expected
    assert "promoted" in _flow_run(state).tags
    (event,) = _events("trajet.model.promoted", f"trajet.model.{result['version']}")
    assert event.payload["manifest_sha256"] == pointer["manifest_sha256"] and event.payload["pull"].startswith(pull)
    (table,) = [a for a in _artifacts("retrain-comparison") if a.flow_run_id == run_id]
    rows = _data(table)
    metrics = {(r["set"], r["metric"]) for r in rows}
    assert {("test", "DEPART F1"), ("test", "ARRIVEE F1"), ("test", "VIA F1"), ("challenge", "macro F1")} <= metrics
    assert any(m.startswith("group ") for s, m in metrics if s == "challenge")
    assert ("behaviour", "overall pass rate") in metrics and ("behaviour", "INV inv_uppercase pass rate") in metrics
    assert all(r["champion"] == "-" for r in rows)  # no champion yet
    (gate,) = [a for a in _artifacts("retrain-gate") if a.flow_run_id == run_id]
    assert "PASSED" in gate.data and all(rule["name"] in gate.data for rule in result["gate"]["rules"])
    assert "`min_behaviour_pass_rate` 0" in gate.data and "`max_behaviour_drop` 0.1" in gate.data
    behaviour = result["evaluation"]["candidate"]["behaviour"]
    assert behaviour["n_per_test"] == 4 and all(t["n"] == 4 for t in behaviour["tests"].values())


def test_flow_run_names_carry_the_snapshot_hash(scenario):
    from prefect.client.orchestration import get_client

    result = scenario["night1"].result()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(scenario["night1"].state_details.flow_run_id)
    assert run.name.startswith("retrain-") and run.name.endswith(result["snapshot"]["content_hash"][:8])
    assert run.name == f"retrain-{result['version']}"  # the run and the version it published share one stamp


def test_training_metrics_are_logged_as_lines(scenario):
    import re

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    run_id = scenario["night1"].state_details.flow_run_id
    with get_client(sync_client=True) as client:
        logs = [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]
    steps = [m for m in logs if re.match(r"step \d+/40: validation macro F1 \d\.\d{4}, micro F1 \d\.\d{4}, loss \d", m)]
    assert len(steps) >= 2, logs
    assert any(m.startswith("trained preset tiny for 40 steps") for m in logs), logs


def test_tasks_are_named_for_what_they_do(scenario):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    state = scenario["night4"]
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    names = {r.name for r in runs}
    champion = scenario["champion1"]["version"]
    assert {"evaluate-candidate", f"evaluate-champion-{champion}", "pull-champion"} <= names, names


def test_nothing_changed_means_a_clean_skip(scenario):
    state = scenario["night2_same"]
    assert state.is_completed() and state.name == "Skipped"
    assert "nothing changed" in state.message and scenario["champion1"]["version"] in state.message
    assert state.result()["status"] == "skipped"
    (summary,) = [a for a in _artifacts("retrain-summary") if a.flow_run_id == state.state_details.flow_run_id]
    assert "SKIPPED" in summary.data
    assert f"trajet model pull {scenario['champion1']['version']} --registry" in summary.data
    assert "skipped" in _flow_run(state).tags and "promoted" not in _flow_run(state).tags


def test_a_failed_training_leaves_the_champion_unchanged(scenario):
    state = scenario["broken"]
    assert state.is_failed()
    assert scenario["champion_after_broken"] == scenario["champion1"]
    (summary,) = [a for a in _artifacts("retrain-summary") if a.flow_run_id == state.state_details.flow_run_id]
    assert "TRAINING FAILED" in summary.data and scenario["champion1"]["version"] in summary.data
    assert "failed" in _flow_run(state).tags


def test_the_gate_rejects_against_the_champion_and_keeps_it(scenario):
    state = scenario["night3_rejected"]
    assert state.name == "Rejected", state.message
    result = state.result()
    assert result["gate"]["has_champion"] and "min_macro_f1" in " ".join(result["gate"]["failed"])
    assert result["evaluation"]["champion"]["test"]["n_sentences"] == result["evaluation"]["candidate"]["test"]["n_sentences"]
    assert scenario["champion_after_rejection"] == scenario["champion1"]
    decision = json.loads((scenario["home"] / "runs" / result["run_id"] / "decision.json").read_text())
    assert decision["gate"]["passed"] is False


def test_a_rejected_night_says_why_and_what_still_serves(scenario):
    state = scenario["night3_rejected"]
    result = state.result()
    champion = scenario["champion1"]
    summary = _run_artifact("retrain-summary", state).data
    assert "**REJECTED**" in summary and "- **FAIL min_macro_f1**: candidate macro F1" in summary
    assert f"trajet model pull {champion['version']} --registry {scenario['home'] / 'registry'}" in summary
    assert champion["manifest_sha256"] in summary and "was not published" in summary
    run = _flow_run(state)
    assert "rejected" in run.tags and "promoted" not in run.tags
    (event,) = _events("trajet.model.rejected", f"trajet.model.{result['run_id']}")
    assert event.payload["failed_rules"] == result["gate"]["failed"] and event.payload["champion"] == champion["version"]
    # gate table: the failed rule first and marked, test sentence counts shown as counts
    gate = _run_artifact("retrain-gate", state).data
    rows = [line for line in gate.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows[0].startswith("| **FAIL** | **min_macro_f1** |")
    n = result["evaluation"]["candidate"]["test"]["n_sentences"]
    assert f"| pass | same_test_set | {n} | {n} |" in gate
    # comparison: drops first, largest first
    table = _data(_run_artifact("retrain-comparison", state))
    deltas = [float(r["delta"]) for r in table if r["delta"] != "-"]
    drops = [d for d in deltas if d < 0]
    assert deltas[: len(drops)] == sorted(drops) and all(r["change"] == "DROP" for r in table[: len(drops)])


def test_a_better_or_tolerated_candidate_replaces_the_champion(scenario):
    state = scenario["night4"]
    assert state.name == "Promoted", state.message
    result = state.result()
    assert scenario["champion4"]["version"] == result["version"] != scenario["champion1"]["version"]
    assert scenario["champion4"]["previous"] == scenario["champion1"]["version"]
    # warm start: trained from the champion's weights, pulled and verified into this run's folder
    base = Path(result["training"]["config"]["base_model"])
    assert base.name == "champion" and (base / "manifest.json").is_file()
    assert json.loads((base / "manifest.json").read_text())["version"] == scenario["champion1"]["version"]
    rows = _data([a for a in _artifacts("retrain-comparison") if a.flow_run_id == state.state_details.flow_run_id][0])
    assert all(r["champion"] != "-" for r in rows if r["set"] in ("test", "behaviour"))
    # candidate and champion read the same behavioural sentences, and every test is compared
    rules = {r["name"]: r for r in result["gate"]["rules"]}
    assert rules["same_behaviour_suite"]["passed"]
    assert len([n for n in rules if n.startswith("behaviour:")]) == len(result["evaluation"]["champion"]["behaviour"]["tests"])


def test_a_held_batch_never_reaches_training(scenario):
    from trajet import store

    engine = store.get_engine(f"sqlite:///{scenario['home'] / 'trajet.db'}")
    for night in ("night1", "night4"):
        snapshot = scenario[night].result()["snapshot"]
        texts = {p.text for split in ("train", "validation", "test") for p in store.load_split(engine, snapshot["id"], split)}
        assert texts and not texts & set(HELD_TEXTS)
    counts = scenario["night4"].result()["snapshot"]["counts"]
    (batch_b,) = scenario["ingest_b"].result()
    assert counts["train"] + counts["validation"] == 160 + batch_b["stored"] and counts["test"] == 40


def test_every_decision_is_recorded_in_the_database(scenario):
    from trajet import runs, store

    engine = store.get_engine(f"sqlite:///{scenario['home'] / 'trajet.db'}")
    recorded = sorted(runs.training_runs(engine), key=lambda r: r.id)
    # night 2 was skipped (nothing to record); the broken training, the rejection and both promotions are
    assert [r.status for r in recorded] == ["promoted", "failed", "rejected", "promoted"]
    assert "training failed" in recorded[1].message and recorded[1].champion_version == scenario["champion1"]["version"]
    assert recorded[2].gate_passed is False and recorded[2].version is None
    assert recorded[3].version == scenario["champion4"]["version"]


# ----------------------------------------------------------------------------------------- champion watch

#: The tiny model scores 0.85-0.94 on 40-row chunks of its own training rows and under 0.3 with their roles
#: swapped (tests/test_watch.py): a floor of 0.7, given as the flow's `watch` parameter, sits far from both.
WATCH_FLOOR = {"min_f1": 0.7}


@pytest.fixture(scope="module")
def watch_scenario(prefect_api, tmp_path_factory) -> dict:
    """A champion in a test registry (the tiny model), then two ingest runs: rows it knows, then the same kind
    of rows with departure and arrival swapped by their annotator."""
    from flows.ingest import ingest_flow
    from tests.train_fixtures import known_rows, swapped_roles, trained_tiny
    from trajet import registry, store

    tiny = trained_tiny(tmp_path_factory.mktemp("tiny"))
    home = tmp_path_factory.mktemp("watch_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRAJET_HOME", str(home))
    mp.delenv("TRAJET_DATABASE_URL", raising=False)
    mp.setenv("TRAJET_REGISTRY_URI", str(home / "registry"))
    # The tiny model is less sure than a champion: its audit confidences are 0.26-0.52 on rows it knows and up
    # to 0.96 on swapped ones, so the audit is judged at thresholds that fit it, not at the production defaults.
    mp.setenv("TRAJET_AUDIT_MIN_CONFIDENCE", "0.6")
    mp.setenv("TRAJET_AUDIT_HOLD_CONFIDENCE", "0.9")
    try:
        store.upgrade()
        before = [p.to_dict() for p in known_rows(tiny, 40, 2)]
        out: dict = {"home": home, "empty": ingest_flow(write_jsonl(home / "before.jsonl", before), watch=WATCH_FLOOR,
                                                         return_state=True)}
        reg = registry.open_registry()
        reg.push("v1", tiny["model"], {"metrics": {}})
        reg.promote("v1")
        clean = [p.to_dict() for p in known_rows(tiny, 40, 0)]
        swapped = [p.to_dict() for p in swapped_roles(known_rows(tiny, 40, 1))]
        out["clean"] = ingest_flow(write_jsonl(home / "clean.jsonl", clean), watch=WATCH_FLOOR, return_state=True)
        out["swapped"] = ingest_flow(write_jsonl(home / "swapped.jsonl", swapped), watch=WATCH_FLOOR, return_state=True)
        from registry_helpers import write_model

        reg.push("v2", write_model(home / "unloadable", seed=1), {"metrics": {}})  # verified files, no usable model
        reg.promote("v2")
        later = [p.to_dict() for p in known_rows(tiny, 40, 3)]
        out["unloadable"] = ingest_flow(write_jsonl(home / "later.jsonl", later), watch=WATCH_FLOOR, return_state=True)
        return out
    finally:
        mp.undo()


def _watch_rows(home) -> list:
    from trajet import store
    from trajet.watch import WatchConfig, trend

    return trend(store.get_engine(f"sqlite:///{home / 'trajet.db'}"), config=WatchConfig(**WATCH_FLOOR))


def _run_events(name: str, resource_id: str, state, timeout_s: float = 30.0) -> list:
    """The events of one flow run: batch ids repeat across this module's stores, so a resource id alone can
    name another scenario's batch, whose event may have reached the server first."""
    import time

    run = f"prefect.flow-run.{state.state_details.flow_run_id}"
    deadline = time.monotonic() + timeout_s
    while True:
        found = [e for e in _events(name, resource_id, timeout_s=1) if run in {r.id for r in e.related}]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def test_without_a_champion_the_watch_skips_quietly(watch_scenario):
    state = watch_scenario["empty"]
    (report,) = state.result()
    assert state.name == "Completed" and report["status"] == "accepted"
    assert report["batch_id"] not in {r.batch_id for r in _watch_rows(watch_scenario["home"])}
    summary = _run_artifact("ingest-summary", state).data
    assert "No champion in the registry yet: the batches were not scored." in summary


def test_the_champion_scores_each_accepted_batch_and_says_so(watch_scenario):
    state = watch_scenario["clean"]
    (report,) = state.result()
    assert state.name == "Completed", state.message
    (row,) = [r for r in _watch_rows(watch_scenario["home"]) if r.batch_id == report["batch_id"]]
    assert row.champion_version == "v1" and row.rows == 40 and not row.alert and row.micro_f1 >= 0.7
    (table,) = _data(_run_artifact("champion-watch", state))
    assert table["batch"] == report["batch_id"] and table["micro_f1"] == f"{row.micro_f1:.4f}"
    assert table["alert"] == "no" and table["behaviour_failures"] == row.behaviour["failures"]
    summary = _run_artifact("ingest-summary", state).data
    assert f"- batch {report['batch_id']}, champion `v1`: ok, micro F1 {row.micro_f1:.4f}" in summary
    assert "degraded" not in _flow_run(state).tags


def test_a_batch_the_champion_scores_low_names_the_run_and_emits_an_event(watch_scenario):
    state = watch_scenario["swapped"]
    (report,) = state.result()
    assert state.is_completed() and state.name == "Degraded"
    assert f"champion degraded on batch(es) {report['batch_id']}" in state.message
    rows = {r.batch_id: r for r in _watch_rows(watch_scenario["home"])}
    row, before = rows[report["batch_id"]], rows[watch_scenario["clean"].result()[0]["batch_id"]]
    assert row.alert and row.micro_f1 < 0.7 and row.running_average == pytest.approx(before.micro_f1)
    assert {"degraded", f"batch-{report['batch_id']}"} <= set(_flow_run(state).tags)
    (table,) = _data(_run_artifact("champion-watch", state))
    assert table["alert"] == "ALERT" and table["reason"] == row.alert_reason
    (event,) = _run_events("trajet.champion.degraded", f"trajet.batch.{report['batch_id']}", state)
    assert event.payload == {
        "batch_id": report["batch_id"], "source": report["source"], "champion_version": "v1", "rows": 40,
        "micro_f1": row.micro_f1, "exact_match": row.exact_match, "running_average": before.micro_f1, "history": 1,
        "min_f1": 0.7, "max_drop": 0.05, "window": 5, "reason": row.alert_reason,
    }
    assert event.resource.get("prefect.resource.name") == report["source"]


def test_the_same_review_audits_the_annotations_and_queues_the_swapped_rows(watch_scenario):
    from trajet import store
    from trajet.review import entries

    engine = store.get_engine(f"sqlite:///{watch_scenario['home'] / 'trajet.db'}")
    counts = {}
    for name in ("clean", "swapped"):
        state = watch_scenario[name]
        (report,) = state.result()
        found = entries(engine, status="open", batch=report["batch_id"])
        counts[name] = (len(found), sum(e.item.held for e in found))
        summary = _run_artifact("ingest-summary", state).data
        assert "## Annotation audit" in summary
        assert (f"- batch {report['batch_id']}: {len(found)} of 40 rows queued for review" in summary), summary
        assert all(e.item.champion_version == "v1" for e in found)
    assert counts["clean"] == (0, 0)
    queued, held = counts["swapped"]
    assert queued >= 10 and held >= 1, counts
    swapped_items = entries(engine, status="open", batch=watch_scenario["swapped"].result()[0]["batch_id"])
    reasons = [e.item.reason for e in swapped_items]
    assert max(set(reasons), key=reasons.count) == "role_swap", reasons


def test_a_failing_watch_never_fails_the_ingest(watch_scenario):
    state = watch_scenario["unloadable"]
    (report,) = state.result()
    assert state.is_completed() and state.name == "Completed" and report["status"] == "accepted"
    assert report["stored"] == 40 and report["batch_id"] not in {r.batch_id for r in _watch_rows(watch_scenario["home"])}
    summary = _run_artifact("ingest-summary", state).data
    assert "## Champion watch" in summary and "Not scored:" in summary and "The batches are stored all the same." in summary
