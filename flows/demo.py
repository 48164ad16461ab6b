"""`trajet demo`: the whole loop, for real, on embedded defaults (SQLite, a local registry folder or an
embedded S3 endpoint, Prefect's ephemeral API). Every step runs the production flows; nothing is faked.

The command (flows/demo_command.py) prepares the environment (TRAJET_HOME, PREFECT_HOME, the S3
endpoint) before this module, and so prefect, is imported.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from trajet.errors import TrajetError

REQUESTS = [
    "Je voudrais un billet de Paris à Lyon en passant par Dijon demain matin.",
    "bonjour, un aller simple bordeaux toulouse svp",
    "Je pars de Marseille Saint-Charles pour aller chez ma soeur à Dunkerque.",
    "Nancy m'a dit qu'il pleuvait à Brest.",
    "Trajet Lille -> Nantes avec une correspondance à Rennes, 2 adultes en 2nde",
    "Comment aller au Havre depuis Saint-Étienne ?",
]

#: Rows that break the data contract in different ways: the flawed batch of the demo.
BROKEN_LINES = [
    '{"text": "Un billet de Paris à Lyon", "entities": [',
    '{"text": "   ", "entities": []}',
    '{"text": "de Paris à Lyon", "entities": [{"start": 3, "end": 99, "label": "DEPART"}]}',
    '{"text": "de Paris à Nice", "entities": [{"start": 3, "end": 8, "label": "CITY"}]}',
    '{"text": "de Metz à Caen", "entities": [{"start": 3, "end": 5, "label": "DEPART"}]}',
    '{"text": "de Metz à Caen", "entities": [{"start": 3, "end": 7, "label": "DEPART"}, {"start": 5, "end": 7, "label": "ARRIVEE"}]}',
    '{"text": "Aller de Pau\\u0007 à Albi", "entities": []}',
    '{"text": "de Tours à Reims", "entities": [{"start": 3, "end": 8, "label": "DEPART"}, {"start": 11, "end": 16, "label": "DEPART"}]}',
    '{"entities": [{"start": 0, "end": 4, "label": "DEPART"}]}',
    '{"text": "' + "très long " * 60 + '", "entities": []}',
]


@dataclass
class Stage:
    name: str
    seconds: float
    outcome: str


@dataclass
class DemoResult:
    stages: list[Stage] = field(default_factory=list)
    champion: str | None = None
    ok: bool = True


def _batch_table(title: str, reports: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("batch", "file", "status", "read", "stored", "duplicates", "quarantined"):
        table.add_column(col, justify="right" if col not in ("file", "status") else "left")
    for r in reports:
        style = {"accepted": "green", "held": "yellow", "rejected": "red"}.get(r["status"], "")
        table.add_row(
            str(r["batch_id"]), escape(Path(r["source"]).name), f"[{style}]{r['status']}[/]" if style else r["status"],
            str(r["rows_read"]), str(r["stored"]), str(r["duplicates"]), str(r["quarantined"]),
        )
    return table


def _reasons_table(reports: list[dict[str, Any]]) -> Table:
    table = Table(title="quarantined rows per reason")
    table.add_column("reason")
    table.add_column("rows", justify="right")
    for r in reports:
        for reason, n in sorted((r.get("reasons") or {}).items(), key=lambda kv: -kv[1]):
            table.add_row(reason, str(n))
    return table


def _comparison_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("set", "metric", "candidate", "champion", "delta"):
        table.add_column(col, justify="left" if col in ("set", "metric") else "right")
    for r in rows:
        delta = r["delta"]
        colour = "" if delta in ("-", "0.0000") else ("green" if not delta.startswith("-") else "red")
        table.add_row(r["set"], escape(r["metric"]), r["candidate"], r["champion"], f"[{colour}]{delta}[/]" if colour else delta)
    return table


def _night(console: Console, result: DemoResult, label: str, state: Any, started: float) -> dict[str, Any] | None:
    from flows.retrain import comparison_rows
    from trajet.gate import GateDecision

    seconds = time.perf_counter() - started
    if state.is_failed():
        console.print(f"[red]{label}: the run failed[/] ({escape(str(state.message))}); the champion is untouched")
        result.stages.append(Stage(label, seconds, "FAILED"))
        result.ok = False
        return None
    out = state.result()
    if out["status"] in ("promoted", "rejected"):
        ev = out["evaluation"]
        console.print(_comparison_table(f"{label}: candidate vs champion (same test split, same challenge set)",
                                        comparison_rows(ev["candidate"], ev["champion"])))
        console.print(GateDecision.from_dict(out["gate"]).table())
        training = out["training"]
        console.print(f"trained {training.get('steps')} steps in {training.get('seconds', 0):.0f} s "
                      f"on {training.get('n_train')} phrases (base {training.get('config', {}).get('base_model')})")
    colour = {"promoted": "green", "rejected": "yellow", "skipped": "cyan"}[out["status"]]
    console.print(f"[bold {colour}]{label}: {escape(str(state.name))}[/] - {escape(str(state.message))}")
    result.stages.append(Stage(label, seconds, state.name))
    return out


def _watch(console: Console, reports: list[dict[str, Any]]) -> str:
    """The champion watch's rows of these batches, as the ingest flow stored them; the verdict in a few words."""
    from trajet import store
    from trajet.watch import WatchConfig, trend
    from trajet.watch_report import watch_table

    ids = {r["batch_id"] for r in reports}
    rows = [r for r in trend(store.get_engine(), config=WatchConfig.from_env()) if r.batch_id in ids]
    if not rows:
        console.print("[yellow]champion watch: no row (no champion yet, or the batch stored nothing)[/]")
        return ""
    console.print(watch_table(rows, title="champion watch: the champion on the new batch's own annotations"))
    console.print("the trend across batches and champions: [bold]trajet monitor[/] (--png FILE, --check)")
    return ", ".join(f"champion {r.champion_version} F1 {r.micro_f1:.3f} {'ALERT' if r.alert else 'ok'}"
                     if r.micro_f1 is not None else f"champion {r.champion_version}: {r.alert_reason}" for r in rows)


def _audit(console: Console, reports: list[dict[str, Any]]) -> str:
    """The review items the champion's audit queued on these batches: how many, how many held, a few shown."""
    from trajet import store
    from trajet.review import entries, spans_text

    found = [e for r in reports if r.get("batch_id") is not None
             for e in entries(store.get_engine(), status="open", batch=int(r["batch_id"]))]
    held = sum(e.item.held for e in found)
    console.print(f"annotation audit: [bold]{len(found)}[/] row(s) queued for review, {held} held out of snapshots")
    table = Table(title="annotation audit: the strongest disagreements (trajet review list)")
    for col in ("item", "reason", "confidence", "annotated", "champion"):
        table.add_column(col)
    for e in found[:5]:
        def side(spans: list[dict[str, Any]], text: str = e.phrase.text) -> str:
            return ", ".join(f"{s['label']} {s['text']}" for s in spans_text(text, spans)) or "-"
        table.add_row(str(e.item.id), e.item.reason, f"{e.item.confidence:.3f}", escape(side(e.item.annotation)),
                      escape(side(e.item.model_entities)))
    if found:
        console.print(table)
    return f"audit {len(found)} queued, {held} held"


def handwritten_batches() -> tuple[list[Path], Path]:
    """The hand-written batches under data/: all but the last feed night 1; the last arrives before night 2,
    so that night's gate compares candidate and champion on requests people wrote, not on generator output."""
    from trajet import config

    batches = sorted((config.data_dir() / "handwritten").glob("batch_*.jsonl"))
    if len(batches) < 2:
        raise TrajetError(f"the demo needs the hand-written batches under {config.data_dir() / 'handwritten'}")
    return batches[:-1], batches[-1]


def run_demo(
    console: Console, *, preset: str | None, night2_epochs: float, registry_label: str, min_f1: float | None = None
) -> DemoResult:
    from flows.ingest import ingest_flow
    from flows.retrain import nightly_retrain
    from trajet import config, registry, store
    from trajet.gate import GateConfig
    from trajet.generate import write_dataset
    from trajet.model_dir import ModelDir

    home = config.home()
    result = DemoResult()
    gate = {"min_f1": min_f1} if min_f1 is not None else None
    if gate and min_f1 != GateConfig().min_f1:
        console.print(
            f"[yellow]demo gate: absolute macro-F1 floor {min_f1:.2f} instead of the production {GateConfig().min_f1:.2f}"
            " (the CPU demo model is trained from scratch in minutes); every other rule is the production default.[/]"
        )

    def step(title: str) -> float:
        console.rule(f"[bold]{title}")
        return time.perf_counter()

    t = step("1. Generate the dataset (deterministic generator) and the rows of a flawed batch")
    dataset = write_dataset(home / "dataset", seed=13, counts={"train": 8000, "test": 2000})
    later = write_dataset(home / "later", seed=2027, counts={"test": 6})
    console.print(escape(f"{dataset['train']} ({8000}), {dataset['test']} ({2000})"))
    result.stages.append(Stage("generate", time.perf_counter() - t, "10,000 + 6 phrases"))

    t = step("2. Ingest the dataset and the hand-written batches: validate (Great Expectations), store, quarantine")
    store.upgrade()
    reports = ingest_flow(str(home / "dataset"))
    earlier, night2_batch = handwritten_batches()
    for path in earlier:
        reports += ingest_flow(str(path))
    console.print(_batch_table("ingest flow", reports))
    result.stages.append(Stage("ingest dataset", time.perf_counter() - t,
                               f"{len(reports)} batches: " + ", ".join(sorted({r["status"] for r in reports}))))
    if not any(r["status"] == "accepted" for r in reports):
        console.print("[red]the generated dataset was not accepted (see the reasons above): nothing to train on[/]")
        console.print(_reasons_table(reports))
        result.ok = False
        return result

    t = step("3. Ingest a deliberately flawed batch")
    # six valid rows from a file that is never ingested on its own: held with the batch, they never reach training
    good = [json.loads(line) for line in later["test"].read_text(encoding="utf-8").splitlines()[:6]]
    flawed = home / "inbox" / "flawed.jsonl"
    flawed.parent.mkdir(parents=True, exist_ok=True)
    flawed.write_text("\n".join([json.dumps(g, ensure_ascii=False) for g in good] + BROKEN_LINES) + "\n", encoding="utf-8")
    flawed_reports = ingest_flow(str(flawed))
    console.print(_batch_table("flawed batch", flawed_reports))
    console.print(_reasons_table(flawed_reports))
    for r in flawed_reports:
        console.print(f"[yellow]{escape(r['message'])}[/]")
    result.stages.append(Stage("ingest flawed batch", time.perf_counter() - t, ", ".join(r["status"] for r in flawed_reports)))

    t = step("4. nightly-retrain, night 1: snapshot, train the CPU default, evaluate, gate, promote")
    night1 = _night(console, result, "night 1", nightly_retrain(preset=preset, gate=gate, progress=True, return_state=True), t)

    t = step(f"5. A new batch of hand-written requests arrives: {night2_batch.name}; the champion scores it (watch) and audits its annotations")
    new_reports = ingest_flow(str(night2_batch))
    console.print(_batch_table("new batch", new_reports))
    verdict = "; ".join(v for v in (_watch(console, new_reports), _audit(console, new_reports)) if v)
    result.stages.append(Stage("ingest new batch", time.perf_counter() - t,
                               ", ".join(r["status"] for r in new_reports) + (f"; {verdict}" if verdict else "")))

    has_champion = bool(night1 and night1["status"] == "promoted")
    t = step(
        "6. nightly-retrain, night 2: warm start from the champion; the gate compares it with the champion"
        if has_champion
        else "6. nightly-retrain, night 2: no champion yet, train the CPU default again on the new snapshot"
    )
    state2 = nightly_retrain(
        preset=preset, warm_start=has_champion, config={"num_epochs": night2_epochs} if has_champion else None,
        gate=gate, progress=True, return_state=True,
    )
    _night(console, result, "night 2", state2, t)

    t = step(f"7. Pull the champion from the registry ({registry_label}) with checksum verification")
    reg = registry.open_registry()
    pointer = reg.champion()
    if pointer is None:
        console.print("[red]no champion was promoted: nothing to pull or serve[/]")
        result.ok = False
        result.stages.append(Stage("pull champion", time.perf_counter() - t, "no champion"))
        return result
    result.champion = pointer["version"]
    pulled = reg.pull("champion", home / "pulled" / pointer["version"])
    manifest = ModelDir(pulled).manifest
    if manifest is None:  # a pull always leaves the manifest it verified
        raise RuntimeError(f"{pulled} holds no registry manifest after the pull")
    files = Table(title=f"champion {pointer['version']}: every file checked against its manifest")
    files.add_column("file")
    files.add_column("bytes", justify="right")
    files.add_column("sha256")
    for f in manifest.files:
        files.add_row(escape(f.path), f"{f.size:,}", f.sha256[:16] + "…")
    console.print(files)
    console.print(f"promoted at {pointer['promoted_at']}, previous champion: {pointer.get('previous') or 'none'}")
    result.stages.append(Stage("pull champion", time.perf_counter() - t, f"{len(manifest.files)} files verified"))

    t = step("8. Predict real requests with the pulled champion")
    from trajet.predict import Predictor

    predictor = Predictor.load(pulled)
    answers = predictor.predict(REQUESTS)
    table = Table(title="predictions")
    for col in ("request", "departure", "arrival", "via"):
        table.add_column(col)
    for text, answer in zip(REQUESTS, answers, strict=True):
        if "error" in answer:
            table.add_row(escape(text), f"[red]{escape(str(answer['error']))}[/]", "", "")
            continue
        via = answer.get("via") or []
        table.add_row(escape(text), escape(str(answer.get("departure") or "-")), escape(str(answer.get("arrival") or "-")),
                      escape(", ".join(map(str, via)) if isinstance(via, list) else str(via) or "-"))
    console.print(table)
    result.stages.append(Stage("predict", time.perf_counter() - t, f"{len(REQUESTS)} requests"))
    return result


def summary(console: Console, result: DemoResult, total: float, ui_hint: str) -> None:
    table = Table(title="trajet demo")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("outcome")
    for s in result.stages:
        table.add_row(s.name, f"{s.seconds:.0f}", s.outcome)
    table.add_row("[bold]total", f"[bold]{total:.0f}", f"champion {result.champion or '(none)'}")
    console.print(table)
    console.print(Panel(ui_hint, title="See these runs in the Prefect UI"))
