"""The `ingest` flow: read a source -> validate -> store good rows -> quarantine bad ones, one mapped task per
file or S3 object, `max_parallel` at a time (flows/ingest_fanout.py) -> the champion scores and audits each
accepted batch (flows/champion_review.py).

Every batch shows up in the UI as keyed artifacts: a table of quarantine counts per reason, a markdown
summary (batch id, accepted/held status, the champion's verdict) and the champion-watch table, so night after
night the history sits under one key.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed

from flows._common import DatabaseUrl, resolve_database, secret_free, slug, utc_stamp
from flows.champion_review import DEGRADED, champion_review_task, tell_watch, watch_markdown
from flows.ingest_fanout import DEFAULT_PARALLEL, ingest_fanned_out
from flows.story import checks_markdown, code, describe_held_batches_task, export_command, held_batch_key

REASONS_KEY = "ingest-reasons"
SUMMARY_KEY = "ingest-summary"


def _run_name() -> str:
    source = str(flow_run.parameters.get("source", "batch"))
    name = PurePosixPath(source.rstrip("/")).name or source
    return f"ingest-{slug(name, 30)}-{utc_stamp()}"


def reasons_table(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (batch, reason); a clean batch still gets a row so the table is never empty."""
    rows: list[dict[str, Any]] = []
    for r in reports:
        reasons = r.get("reasons") or {}
        base = {"batch": r["batch_id"], "source": r["source"], "status": r["status"]}
        if not reasons:
            rows.append({**base, "reason": "(none)", "rows": 0})
        for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append({**base, "reason": reason, "rows": count})
    return rows


def summary_markdown(reports: list[dict[str, Any]], watch: list[str] | None = None) -> str:
    lines = ["# Ingestion", ""]
    if not reports:
        lines.append("No file or object found in the source.")
    for r in reports:
        lines += [
            f"## Batch {r['batch_id']}: **{str(r['status']).upper()}**",
            "",
            f"- source: {code(r['source'])}",
            f"- sha256: `{r['sha256']}`",
            f"- rows read {r['rows_read']}, stored {r['stored']}, duplicates {r['duplicates']}, "
            f"quarantined {r['quarantined']}",
        ]
        if r.get("message"):
            lines.append(f"- {r['message']}")
        if r["status"] in ("held", "rejected"):
            lines.append(f"- reasons, lines and raw rows: artifact `{held_batch_key(r)}`; `{export_command(r['batch_id'])}`")
        checks = r.get("checks") or {}
        if checks:
            lines += ["", *checks_markdown(checks)]
        lines.append("")
    lines += watch or []
    return "\n".join(lines)


@secret_free
@flow(name="ingest", flow_run_name=_run_name, log_prints=False)
def ingest_flow(
    source: str,
    max_bad_ratio: float | None = None,
    database_url: DatabaseUrl = None,
    database_secret: str | None = None,
    watch: dict[str, int | float] | None = None,
    max_parallel: int = DEFAULT_PARALLEL,
    processes: bool = False,
):
    """Ingest a JSONL/CoNLL file, a folder of them or an `s3://bucket/prefix` inbox.

    Each file or object is a task of its own, `max_parallel` at a time (threads; `processes=True`: a process
    each, for a large inbox on a multi-core worker); see flows/ingest_fanout.py.

    A held batch ends the run as `Completed` named "Held": nothing is wrong with the pipeline, but a
    person has to look at the batch before its rows can reach training. Once a champion exists it scores
    every accepted batch on the batch's own annotations; a batch it scores too low ends the run `Completed`
    named "Degraded" (over "Held": the served model is what users get now) with a `trajet.champion.degraded`
    event. `watch` overrides the watch settings (trajet.watch.WatchConfig, e.g. {"min_f1": 0.9}). The
    database is the worker's TRAJET_DATABASE_URL, a password-free `database_url`, or the Prefect Secret
    block `database_secret`; the champion comes from the worker's TRAJET_REGISTRY_URI.
    """
    logger = get_run_logger()
    database = resolve_database(database_url, database_secret)
    reports = ingest_fanned_out(source, database, max_bad_ratio, max_parallel, processes)
    for r in reports:
        logger.info(
            "batch %s %s: read %s, stored %s, quarantined %s",
            r["batch_id"], r["status"], r["rows_read"], r["stored"], r["quarantined"],
        )
    describe_held_batches_task(reports, database_url, return_state=True)  # a failed description must not fail the ingest
    review_state = champion_review_task(reports, database, watch, return_state=True)  # nor a failed watch
    review, failure = None, None
    if review_state.is_completed():
        review = review_state.result()
    else:
        failure = str(review_state.message or review_state.name)
        logger.warning("champion watch failed (the batches are stored): %s", failure)
    create_table_artifact(reasons_table(reports), key=REASONS_KEY, description="Quarantined rows per reason")
    create_markdown_artifact(summary_markdown(reports, watch_markdown(review, failure)), key=SUMMARY_KEY,
                             description="Batch status")
    alerts = tell_watch(review) if review else []
    statuses = sorted({r["status"] for r in reports})
    held = [r for r in reports if r["status"] in ("held", "rejected", "skipped")]
    message = f"{len(reports)} batch(es): " + ", ".join(statuses) if reports else "nothing to ingest"
    if alerts:
        message += "; champion degraded on batch(es) " + ", ".join(str(r["batch_id"]) for r in alerts)
    name = DEGRADED if alerts else "Held" if held else "Completed"
    return Completed(name=name, message=message, data=reports)
