"""What the Prefect UI tells an ops person about a night: artifacts, run tags and events.

The runs list shows every `Completed` run in the same green, whether it promoted a model or refused one;
tags (`promoted`, `rejected`, `skipped`, `failed`, `held`) make the difference visible there and
filterable, and events (`trajet.model.*`, `trajet.batch.*`) are what an automation turns into a
notification. The summary artifact is written for someone who has not read the code: what was decided,
why, on which data, and the exact command to get the model that serves now.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows._common import fmt, io_task_options, slug, utc_stamp
from trajet.validate import HELD  # a held batch's valid rows: listed after the real problems

RETRAIN_SUMMARY_KEY = "retrain-summary"
RETRAIN_MODEL_KEY = "retrain-model"
HELD_BATCH_KEY_PREFIX = "ingest-batch"
#: Tags a nightly-retrain run gets, one per outcome; `held` marks an ingest run with a held or rejected batch.
OUTCOME_TAGS = ("promoted", "rejected", "skipped", "failed")
HEADLINE = {
    "promoted": "PROMOTED",
    "rejected": "REJECTED",
    "skipped": "SKIPPED",
    "failed": "TRAINING FAILED",
}
ENTITIES = ("DEPART", "ARRIVEE", "VIA")
#: Raw rows shown per held batch, and the characters kept of each.
SAMPLE_ROWS = 10
RAW_CHARS = 100
#: Line numbers listed per reason before "and N more".
LINES_PER_REASON = 25
_STAMP = re.compile(r"(\d{8}-\d{6})")


# ------------------------------------------------------------------------------------------ run metadata


def run_stamp() -> str:
    """The stamp in this flow run's name, so the run and the version it publishes carry the same one."""
    match = _STAMP.search(flow_run.name or "")
    return match.group(1) if match else utc_stamp()


def add_run_tags(*tags: str) -> None:
    """Add tags to the current flow run (kept: the deployment's own tags)."""
    from prefect.client.orchestration import get_client

    run_id = flow_run.id
    if not run_id:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(run_id).tags or []
        client.update_flow_run(run_id, tags=list(dict.fromkeys([*current, *tags])))


def emit(event: str, resource_id: str, name: str, payload: Mapping[str, Any]) -> None:
    """A Prefect event about a Trajet object (a model version, a batch)."""
    from prefect.events import emit_event

    # emit_event relates the event to the flow run and flow it is emitted from
    emit_event(event=event, resource={"prefect.resource.id": resource_id, "prefect.resource.name": name},
               payload=dict(payload))


# --------------------------------------------------------------------------------------------- formatting


def number(value: Any) -> str:
    """Counts as counts (`40`, not `40.0000`); scores with 4 decimals; `-` when absent."""
    if isinstance(value, bool) or value is None:
        return fmt(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) > 1):
        return f"{int(value):,}"
    return fmt(value)


def _visible(value: Any) -> str:
    """Bytes decoded (invalid ones as `\\xff`), control and odd space characters as escapes: one line."""
    text = value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else str(value)
    return "".join(
        ch if ch == " " or unicodedata.category(ch)[0] not in "CZ" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def md_text(value: Any, limit: int = RAW_CHARS) -> str:
    """Text from data, safe inside a markdown table cell: control characters shown as escapes, markup
    characters neutralised, cut at `limit` characters."""
    shown = _visible(value)
    cut = len(shown) > limit
    shown = shown[:limit]
    shown = shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    shown = re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", shown)
    return shown + (" …" if cut else "")


def registry_address(registry_uri: str | None) -> str:
    """The registry a flow uses: its parameter, else TRAJET_REGISTRY_URI, else the local default."""
    from trajet import config

    return registry_uri or config.registry_uri()


def training_line(training: Mapping[str, Any]) -> str:
    """A training's outcome in one log line (the per-evaluation lines come from the training itself)."""
    best = training.get("best_metrics") or {}
    cfg = training.get("config") or {}
    return (
        f"trained preset {cfg.get('preset')} for {training.get('steps')} steps in {float(training.get('seconds') or 0):.0f} s "
        f"on {training.get('n_train')} phrases: best validation macro F1 {fmt(best.get('f1_macro'))}, "
        f"micro F1 {fmt(best.get('f1_micro'))}, loss {fmt(best.get('loss'))}"
    )


def code(value: Any, limit: int = 300, in_table: bool = False) -> str:
    """Text from data as inline code: backslash escapes do not work there, so the fence outgrows any run of
    backticks inside; in a table a bare `|` would still end the cell."""
    text = _visible(value)[:limit]
    if in_table:
        text = text.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def pull_command(version: str, registry_uri: str) -> str:
    return f"trajet model pull {version} --registry {registry_uri} --dest ./models/{version}"


def drops_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Comparison rows with the candidate's drops on top (largest first), the rest in their order."""

    def delta(row: dict[str, Any]) -> float | None:
        try:
            return float(row["delta"])
        except (KeyError, TypeError, ValueError):
            return None

    drops = sorted((r for r in rows if (delta(r) or 0.0) < 0), key=lambda r: delta(r) or 0.0)
    rest = [r for r in rows if not (delta(r) or 0.0) < 0]
    return [{**r, "change": "DROP"} for r in drops] + [
        {**r, "change": "-" if delta(r) is None else ("up" if delta(r) > 0 else "same")} for r in rest
    ]


def gate_markdown(decision: Any, champion_version: str | None) -> str:
    """The gate's rules, failed ones first and marked in bold, values that are counts shown as counts."""
    failed = [r for r in decision.rules if not r.passed]
    skipped = [r for r in decision.rules if r.passed and getattr(r, "skipped", False)]
    verdict = "PASSED" if decision.passed else "REJECTED"
    against = f"champion `{champion_version}`" if champion_version else "no champion yet (absolute rules only)"
    settings = ", ".join(f"`{k}` {v:g}" for k, v in decision.config.to_dict().items())
    lines = [
        f"# Gate: **{verdict}**, {len(failed)} of {len(decision.rules)} rules failed",
        "",
        f"Compared against {against}. Thresholds: {settings}.",
        "",
        "| result | rule | value | threshold | detail |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    passed = [r for r in decision.rules if r.passed and r not in skipped]
    for rule in [*failed, *passed, *skipped]:
        cells = [rule.name, number(rule.value), number(rule.threshold), md_text(rule.detail, 400)]
        if rule in skipped:
            lines.append(f"| skip | {' | '.join(cells)} |")
        elif rule.passed:
            lines.append(f"| pass | {' | '.join(cells)} |")
        else:
            lines.append(f"| **FAIL** | {' | '.join(f'**{c}**' if c else c for c in cells)} |")
    return "\n".join(lines)


def dig(report: Mapping[str, Any] | None, *path: str) -> Any:
    """report[path[0]][path[1]]..., None where a level is missing (older reports lack newer keys)."""
    node: Any = report
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _score_rows(candidate: Mapping[str, Any] | None, champion: Mapping[str, Any] | None) -> list[str]:
    rows = []
    metrics = [("macro F1", ("macro", "f1")), *((f"{e} F1", ("per_entity", e, "f1")) for e in ENTITIES),
               ("micro F1", ("micro", "f1")), ("exact match", ("exact_match",))]
    for split in ("test", "written", "challenge"):
        cand_report = dig(candidate, split)
        if not cand_report:
            continue
        champ_report = dig(champion, split)
        for label, path in metrics:
            cand, champ = dig(cand_report, *path), dig(champ_report, *path)
            delta = None if cand is None or champ is None else cand - champ
            shown = fmt(delta)
            if delta is not None and delta < 0:
                shown = f"**{shown} drop**"
            rows.append(f"| {split} | {label} | {fmt(cand)} | {fmt(champ)} | {shown} |")
    if dig(candidate, "behaviour", "overall", "pass_rate") is not None:
        cand = dig(candidate, "behaviour", "overall", "pass_rate")
        champ = dig(champion, "behaviour", "overall", "pass_rate")
        delta = None if champ is None else cand - champ
        shown = f"**{fmt(delta)} drop**" if delta is not None and delta < 0 else fmt(delta)
        rows.append(f"| behaviour | overall pass rate | {fmt(cand)} | {fmt(champ)} | {shown} |")
    return rows


def retrain_summary_markdown(
    *,
    status: str,
    run_id: str,
    reason: str,
    snapshot: Mapping[str, Any],
    registry_uri: str,
    champion_before: str | None,
    serving: Mapping[str, Any] | None,
    training: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    decision: Any = None,
) -> str:
    """The night on one page. `serving` is the champion pointer after this run (version, manifest sha256)."""
    lines = [f"# Nightly retrain {run_id}: **{HEADLINE[status]}**", "", f"**Why:** {md_text(reason, 1000)}", ""]
    if decision is not None and not decision.passed:
        lines += ["**Failed rules:**", ""]
        lines += [f"- **FAIL {r.name}**: {md_text(r.detail, 400)}" for r in decision.rules if not r.passed]
        lines.append("")

    lines += ["## Model", ""]
    if status == "promoted":
        lines.append(f"Version `{run_id}` is the champion now (previous: `{champion_before or 'none'}`).")
    elif status in ("rejected", "failed"):
        lines.append(f"Candidate `{run_id}` was not published. The champion is unchanged.")
    else:
        lines.append("Nothing was trained. The champion is unchanged.")
    lines.append("")
    if serving:
        lines += model_lines(serving["version"], registry_uri, serving.get("manifest_sha256"))
    else:
        lines.append(f"No champion in {code(registry_uri)} yet.")
    lines.append("")

    evaluation = evaluation or {}
    candidate, champion = evaluation.get("candidate"), evaluation.get("champion")
    if candidate:
        n = dig(candidate, "test", "n_sentences")
        lines += [
            f"## Candidate vs champion `{champion_before}`" if champion_before else "## Candidate (no champion yet)",
            "",
            ("Both scored in this run on the same test split" if champion else "Scored on the test split")
            + f" ({number(n)} sentences)" + (" and challenge set." if dig(candidate, "challenge") else "."),
            "",
            "| set | metric | candidate | champion | delta |",
            "| --- | --- | ---: | ---: | ---: |",
            *_score_rows(candidate, champion),
            "",
        ]

    if training:
        cfg = training.get("config") or {}
        best = training.get("best_metrics") or {}
        where = (f"deployment `{training['deployment']}` (flow run {training.get('flow_run')})"
                 if training.get("deployment") else "in process")
        seconds = training.get("seconds")
        lines += [
            "## Training",
            "",
            "| setting | value |",
            "| --- | --- |",
            f"| preset | {code(cfg.get('preset') or '-', in_table=True)} |",
            f"| base model | {code(cfg.get('base_model') or '-', in_table=True)} |",
            f"| steps | {number(training.get('steps'))} |",
            f"| training time | {'-' if seconds is None else f'{float(seconds):,.0f} s'} |",
            f"| best validation macro F1 | {fmt(best.get('f1_macro'))} |",
            f"| phrases | train {number(training.get('n_train'))}, validation {number(training.get('n_validation'))} |",
            f"| ran | {where} |",
            "",
        ]

    counts = snapshot.get("counts") or {}
    lines += [
        "## Data",
        "",
        f"Snapshot {snapshot.get('id')} `{str(snapshot.get('content_hash', ''))[:12]}`: "
        + ", ".join(f"{k} {number(v)}" for k, v in counts.items()),
    ]
    if snapshot.get("uri"):
        lines += ["", f"Exported as Parquet to {code(str(snapshot['uri']))}: training read it, not the database."]
    return "\n".join(lines)


def model_lines(version: str, registry_uri: str, manifest_sha256: str | None) -> list[str]:
    return [
        f"Serving now: **`{version}`** from {code(registry_uri)}",
        "",
        "```bash",
        pull_command(version, registry_uri),
        "```",
        "",
        f"Manifest sha256 `{manifest_sha256 or '-'}`: the pull checks every file against it.",
    ]


def tell_retrain(
    *,
    status: str,
    run_id: str,
    reason: str,
    snapshot: Mapping[str, Any],
    registry_uri: str,
    champion_before: str | None,
    serving: Mapping[str, Any] | None,
    training: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    decision: Any = None,
) -> None:
    """Summary artifact, run tag and `trajet.model.<status>` event for one nightly-retrain outcome. The night's
    outcome is already decided and recorded: an API hiccup here is logged, never turned into a failed night."""
    try:
        _tell_retrain(status=status, run_id=run_id, reason=reason, snapshot=snapshot, registry_uri=registry_uri,
                      champion_before=champion_before, serving=serving, training=training, evaluation=evaluation,
                      decision=decision)
    except Exception as exc:  # noqa: BLE001 - reporting must not change the outcome it reports
        get_run_logger().warning("could not publish the run summary, tags or event: %s: %s", type(exc).__name__, exc)


def _tell_retrain(
    *,
    status: str,
    run_id: str,
    reason: str,
    snapshot: Mapping[str, Any],
    registry_uri: str,
    champion_before: str | None,
    serving: Mapping[str, Any] | None,
    training: Mapping[str, Any] | None,
    evaluation: Mapping[str, Any] | None,
    decision: Any,
) -> None:
    create_markdown_artifact(
        retrain_summary_markdown(
            status=status, run_id=run_id, reason=reason, snapshot=snapshot, registry_uri=registry_uri,
            champion_before=champion_before, serving=serving, training=training, evaluation=evaluation,
            decision=decision,
        ),
        key=RETRAIN_SUMMARY_KEY,
        description=f"nightly-retrain {run_id}: {HEADLINE[status]}",
    )
    if status == "promoted" and serving:
        create_markdown_artifact(
            "\n".join([f"# Champion `{serving['version']}`", "", *model_lines(
                serving["version"], registry_uri, serving.get("manifest_sha256"))]),
            key=RETRAIN_MODEL_KEY,
            description=f"promoted champion {serving['version']}: how to pull it",
        )
    add_run_tags(status)
    candidate_f1 = dig((evaluation or {}).get("candidate"), "test", "macro", "f1")
    champion_f1 = dig((evaluation or {}).get("champion"), "test", "macro", "f1")
    version = run_id if status in ("promoted", "rejected", "failed") else (champion_before or run_id)
    payload: dict[str, Any] = {
        "version": version,
        "reason": reason,
        "champion": serving["version"] if serving else None,
        "previous_champion": champion_before,
        "candidate_macro_f1": candidate_f1,
        "champion_macro_f1": champion_f1,
        "snapshot_hash": snapshot.get("content_hash"),
        "registry": registry_uri,
    }
    if decision is not None:
        payload["failed_rules"] = [r.name for r in decision.rules if not r.passed]
    if serving:
        payload["pull"] = pull_command(serving["version"], registry_uri)
        payload["manifest_sha256"] = serving.get("manifest_sha256")
    emit(f"trajet.model.{status}", f"trajet.model.{version}", version, payload)


# ------------------------------------------------------------------------------------------------- ingest


def checks_rows(checks: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A batch's checks as (name, value) pairs, nested mappings flattened (`label_distribution.max_shift`)."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        else:
            rows.append((prefix, number(value)))

    walk("", dict(checks))
    return rows


def checks_markdown(checks: Mapping[str, Any]) -> list[str]:
    if not checks:
        return []
    return ["| batch check | value |", "| --- | ---: |", *(f"| {k} | {v} |" for k, v in checks_rows(checks))]


def export_command(batch_id: Any) -> str:
    return f"trajet quarantine export {batch_id} --output quarantine-{batch_id}.jsonl"


def _lines_list(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:LINES_PER_REASON])
    return shown + (f" and {len(lines) - LINES_PER_REASON} more" if len(lines) > LINES_PER_REASON else "")


def held_batch_markdown(report: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> str:
    """One held or rejected batch: why, which lines, the first raw rows, and the way to fix and re-ingest.
    `rows` are its quarantined rows (line, reasons, raw bytes), in line order."""
    rows = list(rows)
    by_reason: dict[str, list[int]] = {}
    for row in rows:
        for reason in row["reasons"]:
            by_reason.setdefault(str(reason), []).append(int(row["line"]))
    batch = report.get("batch_id")
    lines = [
        f"# Batch {batch}: **{str(report['status']).upper()}**, nothing stored",
        "",
        f"- source: {code(report['source'])}",
        f"- sha256: `{report['sha256']}`",
        f"- rows read {number(report['rows_read'])}, quarantined {number(report['quarantined'])}",
        f"- {md_text(report.get('message') or '', 600)}",
        "",
        "## Reasons",
        "",
        "| reason | rows | lines |",
        "| --- | ---: | --- |",
        *(f"| {md_text(reason)} | {len(found):,} | {_lines_list(found)} |"
          for reason, found in sorted(by_reason.items(), key=lambda kv: (kv[0] == HELD, -len(kv[1]), kv[0]))),
        "",
        f"## First {min(SAMPLE_ROWS, len(rows))} of {len(rows):,} quarantined rows (raw, cut at {RAW_CHARS} characters)",
        "",
        "| line | reasons | raw |",
        "| ---: | --- | --- |",
        *(f"| {row['line']} | {md_text(', '.join(map(str, row['reasons'])))} | {md_text(row['raw'])} |"
          for row in rows[:SAMPLE_ROWS]),
        "",
        "## Fix and re-ingest",
        "",
        "```bash",
        export_command(batch),
        "# fix the rows, then:",
        f"trajet ingest quarantine-{batch}.jsonl",
        "```",
    ]
    checks = report.get("checks") or {}
    if checks:
        lines += ["", "## Batch checks", "", *checks_markdown(checks)]
    return "\n".join(lines)


def held_batch_key(report: Mapping[str, Any]) -> str:
    """`ingest-batch-<id>`: one key per batch, so a held batch is found again by its id."""
    batch = report.get("batch_id")
    return f"{HELD_BATCH_KEY_PREFIX}-{batch if batch is not None else slug(str(report['source']), 30)}"


@task(name="describe-held-batches", cache_policy=NO_CACHE, **io_task_options())
def describe_held_batches_task(reports: list[dict[str, Any]], database_url: str | None) -> list[str]:
    """An artifact per held or rejected batch, the `held` run tag and a `trajet.batch.<status>` event."""
    from trajet import store
    from trajet.ingest_sql import quarantine_rows

    held = [r for r in reports if r["status"] in ("held", "rejected")]
    if not held:
        return []
    engine = store.get_engine(database_url)
    keys = []
    for report in held:
        rows: list[dict[str, Any]] = []
        if report.get("batch_id") is not None:
            _, stored = quarantine_rows(engine, report["batch_id"])
            rows = [{"line": r.line, "reasons": list(r.reasons or []), "raw": r.raw} for r in stored]
        key = held_batch_key(report)
        create_markdown_artifact(
            held_batch_markdown(report, rows), key=key,
            description=f"batch {report.get('batch_id')} {report['status']}: {report['source']}"[:500],
        )
        keys.append(key)
        emit(
            f"trajet.batch.{report['status']}",
            f"trajet.batch.{report.get('batch_id')}",
            str(report["source"]),
            {
                "batch_id": report.get("batch_id"),
                "status": report["status"],
                "source": report["source"],
                "rows_read": report["rows_read"],
                "quarantined": report["quarantined"],
                "reasons": report.get("reasons") or {},
                "message": report.get("message") or "",
                "export": export_command(report.get("batch_id")),
            },
        )
        get_run_logger().warning(
            "batch %s %s: %s; see the %s artifact, then %s",
            report.get("batch_id"), report["status"], report.get("message"), key, export_command(report.get("batch_id")),
        )
    add_run_tags("held", *sorted({r["status"] for r in held}), *(f"batch-{r.get('batch_id')}" for r in held))
    return keys
