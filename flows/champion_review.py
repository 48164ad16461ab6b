"""The champion meets the batches an ingest run accepted: scored on their own annotations (trajet.watch), shown
as the `champion-watch` artifact, and a `trajet.champion.degraded` event per alerting batch for automations; then
its confident disagreements with the annotations are queued for review (trajet.audit), before any snapshot.

The model is loaded once per run by `champion_review_task`, then handed to the per-batch work
(`review_batches`): the watch and the audit read the same loaded model.
Nothing here may fail an ingest: the rows are stored whatever the champion thinks of them.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows._common import fmt, io_task_options
from flows.story import add_run_tags, code, emit, md_text

WATCH_KEY = "champion-watch"
DEGRADED_EVENT = "trajet.champion.degraded"
#: The ingest run's state name when a batch alerts. It wins over "Held" (both stay visible as run tags):
#: a held batch waits for a person before it can reach training, a degraded champion is serving worse
#: answers to users now.
DEGRADED = "Degraded"


def scorable_batches(reports: list[dict[str, Any]]) -> list[int]:
    """Accepted batches that stored rows (a batch of duplicates only stored nothing to score)."""
    return [int(r["batch_id"]) for r in reports
            if r["status"] == "accepted" and r.get("batch_id") is not None and r.get("stored")]


def load_champion() -> tuple[str, Any] | None:
    """(version, loaded predictor) of the registry's champion, pulled (verified, cached) once; None without one.
    The version is pinned: a promotion during the run must not change the model half-way through its batches."""
    from trajet.predict import load_predictor
    from trajet.registry import open_registry, resolve_model_ref

    pointer = open_registry().champion()
    if pointer is None:
        return None
    version = str(pointer["version"])
    return version, load_predictor(resolve_model_ref(version))


@task(name="champion-review", cache_policy=NO_CACHE, **io_task_options())
def champion_review_task(reports: list[dict[str, Any]], database_url: str | None,
                         settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load the champion once, then hand it to the per-batch work (`review_batches`): watch, then audit."""
    from trajet.watch import WatchConfig

    logger = get_run_logger()
    config = WatchConfig.from_env(**(settings or {}))
    batch_ids = scorable_batches(reports)
    if not batch_ids:
        logger.info("champion watch: no accepted batch stored rows in this run, nothing to score")
        return {"status": "nothing", "rows": [], "config": config.to_dict()}
    champion = load_champion()
    if champion is None:
        logger.info("champion watch: no champion in the registry yet, batch(es) %s not scored", batch_ids)
        return {"status": "no_champion", "rows": [], "batches": batch_ids, "config": config.to_dict()}
    version, predictor = champion
    rows, audits = review_batches(predictor, version, batch_ids, database_url, config)
    return {"status": "scored", "champion": version, "rows": rows, "audits": audits, "batches": batch_ids,
            "config": config.to_dict()}


def review_batches(predictor: Any, version: str, batch_ids: list[int], database_url: str | None,
                   config: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(watch rows, audit reports) with an already loaded model; a batch that fails either step is logged and
    the rest goes on. The audit config (policy, thresholds) is the worker's: `TRAJET_AUDIT_*`."""
    from trajet import store
    from trajet.audit import AuditConfig, audit_batch
    from trajet.watch import watch_batch

    logger = get_run_logger()
    engine = store.get_engine(database_url)
    audit_config = AuditConfig.from_env()
    rows, audits = [], []
    for batch_id in batch_ids:
        try:
            row = watch_batch(engine, predictor, version, batch_id, config)
        except Exception as exc:  # noqa: BLE001 - one batch's scoring must not stop the others, nor the ingest
            logger.warning("champion watch: batch %s not scored: %s: %s", batch_id, type(exc).__name__, exc)
        else:
            log = logger.warning if row.alert else logger.info
            log("champion watch: %s on batch %s (%s rows): %s", version, batch_id, row.rows, row.alert_reason)
            rows.append(row.to_dict())
        try:
            audit = audit_batch(engine, batch_id, predictor, champion_version=version, config=audit_config)
        except Exception as exc:  # noqa: BLE001 - same: an audit that fails leaves the batch as ingested
            logger.warning("annotation audit: batch %s not audited: %s: %s", batch_id, type(exc).__name__, exc)
            continue
        logger.info("annotation audit: batch %s: %s of %s rows queued for review, %s held out of snapshots",
                    batch_id, audit.items, audit.audited, audit.held)
        audits.append(audit.to_dict())
    return rows, audits


def watch_rows_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The artifact's rows: one per batch, the numbers a person compares night after night."""
    out = []
    for r in rows:
        per_entity = r.get("per_entity") or {}
        behaviour = r.get("behaviour") or {}
        out.append({
            "batch": r["batch_id"], "source": r["source"], "champion": r["champion_version"], "rows": r["rows"],
            "micro_f1": fmt(r["micro_f1"]), "running_average": fmt(r.get("running_average")),
            **{f"{e}_f1": fmt((per_entity.get(e) or {}).get("f1")) for e in ("DEPART", "ARRIVEE", "VIA")},
            "exact_match": fmt(r["exact_match"]), "no_trip_clean": fmt(r["no_trip_clean"]),
            "no_trip_rows": r["no_trip_rows"], "behaviour_failures": behaviour.get("failures", 0),
            "behaviour_rows_changed": behaviour.get("rows_changed", 0), "alert": "ALERT" if r["alert"] else "no",
            "reason": r["alert_reason"],
        })
    return out


def watch_markdown(review: dict[str, Any] | None, failure: str | None = None) -> list[str]:
    """The ingest summary's champion-watch section."""
    lines = ["## Champion watch", ""]
    if failure:
        return [*lines, f"Not scored: {md_text(failure, 400)}. The batches are stored all the same."]
    if review is None or review["status"] == "nothing":
        return [*lines, "No accepted batch stored rows: nothing to score."]
    if review["status"] == "no_champion":
        return [*lines, "No champion in the registry yet: the batches were not scored."]
    for r in review["rows"]:
        verdict = "**ALERT**" if r["alert"] else "ok"
        lines.append(f"- batch {r['batch_id']}, champion {code(review['champion'])}: {verdict}, micro F1 "
                     f"{fmt(r['micro_f1'])}, exact match {fmt(r['exact_match'])}: {md_text(r['alert_reason'], 400)}")
    missing = sorted(set(review.get("batches") or []) - {r["batch_id"] for r in review["rows"]})
    if missing:
        lines.append(f"- not scored (see the run's logs): batch(es) {', '.join(map(str, missing))}")
    lines += ["", f"Trend across batches and champions: artifact `{WATCH_KEY}` and `trajet monitor`."]
    return [*lines, "", *audit_markdown(review.get("audits") or [])]


def audit_markdown(audits: list[dict[str, Any]]) -> list[str]:
    """The ingest summary's annotation-audit section: how many rows wait for a person, and why."""
    lines = ["## Annotation audit", ""]
    if not audits:
        return [*lines, "No batch was audited (see the run's logs)."]
    for a in audits:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(a["reasons"].items(), key=lambda kv: -kv[1])) or "none"
        lines.append(f"- batch {a['batch_id']}: {a['items']} of {a['audited']} rows queued for review "
                     f"({reasons}); {a['held']} held out of snapshots (policy {code(a['config']['policy'])})")
    return [*lines, "", "Read and fix them: `trajet review list`, `trajet review export -o review.jsonl`, "
                        "`trajet review accept FILE`."]


def degraded_payload(row: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """What an automation needs to act on: the batch, the champion, its score and what it was judged against."""
    return {
        "batch_id": row["batch_id"], "source": row["source"], "champion_version": row["champion_version"],
        "rows": row["rows"], "micro_f1": row["micro_f1"], "exact_match": row["exact_match"],
        "running_average": row.get("running_average"), "history": row.get("history", 0),
        "min_f1": config["min_f1"], "max_drop": config["max_drop"], "window": config["window"],
        "reason": row["alert_reason"],
    }


def tell_watch(review: dict[str, Any]) -> list[dict[str, Any]]:
    """Artifact, run tags and one event per alerting batch; returns the alerting rows. An API hiccup here is
    logged, never turned into a failed ingest: the rows and the watch rows are already stored."""
    rows = review.get("rows") or []
    alerts = [r for r in rows if r["alert"]]
    if not rows:
        return alerts
    try:
        create_table_artifact(watch_rows_table(rows), key=WATCH_KEY,
                              description=f"champion {review['champion']} on this run's batches")
        for r in alerts:
            emit(DEGRADED_EVENT, f"trajet.batch.{r['batch_id']}", str(r["source"]), degraded_payload(r, review["config"]))
        if alerts:
            add_run_tags("degraded", *(f"batch-{r['batch_id']}" for r in alerts))
    except Exception as exc:  # noqa: BLE001 - reporting must not change the outcome it reports
        get_run_logger().warning("champion watch: could not publish the artifact, tags or event: %s: %s",
                                 type(exc).__name__, exc)
    return alerts
