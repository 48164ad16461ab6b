"""The ingest flow fans a folder or an S3 inbox out as one task per object, `max_parallel` at a time, in threads
or processes, and the reports, counts and store agree with a one-by-one ingestion."""

from __future__ import annotations

import logging
import uuid

import pytest
import sqlalchemy as sa
from flow_data import phrase_rows, write_jsonl

pytest_plugins = ["_prefect_harness"]

pytestmark = pytest.mark.slow


def _task_runs(state) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))


def _max_overlap(runs) -> int:
    """The most task runs that were running at the same moment."""
    edges = sorted([(r.start_time, 1) for r in runs] + [(r.end_time, -1) for r in runs], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def _count(model) -> int:
    from trajet import store

    with store.get_engine().connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_folder_fans_out_in_threads_with_bounded_concurrency(prefect_api, tmp_path):
    from flows.ingest import ingest_flow
    from trajet import store

    store.upgrade()
    rows = phrase_rows(700, seed=31, split="train")
    folder = tmp_path / "inbox"
    folder.mkdir()
    for k in range(6):  # overlapping slices: rows k*100 .. k*100+199
        write_jsonl(folder / f"part{k}.jsonl", rows[k * 100: k * 100 + 200])
    (folder / "part9.jsonl").write_bytes((folder / "part0.jsonl").read_bytes())  # the same object again

    state = ingest_flow(str(folder), max_parallel=3, return_state=True)
    reports = state.result()
    assert [r["source"] for r in reports] == [str(folder / f"part{k}.jsonl") for k in (0, 1, 2, 3, 4, 5, 9)]
    assert sorted(r["status"] for r in (reports[0], reports[6])) == ["accepted", "already_ingested"]
    accepted = [r for r in reports if r["status"] == "accepted"]
    assert len(accepted) == 6 and all(r["stored"] + r["duplicates"] == r["rows_read"] == 200 for r in accepted)
    assert sum(r["stored"] for r in accepted) == 700 == _count(store.PhraseRow)

    objects = [r for r in _task_runs(state) if r.name.startswith("ingest-part")]
    assert sorted(r.name for r in objects) == sorted(f"ingest-part{k}.jsonl" for k in (0, 1, 2, 3, 4, 5, 9))
    assert all("trajet-ingest" in r.tags and r.state.is_completed() for r in objects)
    assert 2 <= _max_overlap(objects) <= 3


def test_an_s3_inbox_fans_out_in_processes(prefect_api, tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    from flows.ingest import ingest_flow
    from trajet import store

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        bucket = f"inbox-{uuid.uuid4().hex[:8]}"
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bucket)
        rows = phrase_rows(300, seed=32, split="train")
        for k in range(3):
            body = write_jsonl(tmp_path / f"o{k}.jsonl", rows[k * 100: k * 100 + 150])
            s3.put_object(Bucket=bucket, Key=f"in/o{k}.jsonl", Body=open(body, "rb").read())
        s3.put_object(Bucket=bucket, Key="in/bad.jsonl", Body=b'{"text": "x", "entities": [\n')
        store.upgrade()

        reports = ingest_flow(f"s3://{bucket}/in/", max_parallel=2, processes=True)
        assert [(r["source"].rsplit("/", 1)[-1], r["status"]) for r in reports] == [
            ("bad.jsonl", "rejected"), ("o0.jsonl", "accepted"), ("o1.jsonl", "accepted"), ("o2.jsonl", "accepted")]
        assert sum(r["stored"] for r in reports) == 300 == _count(store.PhraseRow)
        assert sum(r["duplicates"] for r in reports) == 100
        again = ingest_flow(f"s3://{bucket}/in/", max_parallel=2)
        assert [r["status"] for r in again] == ["rejected", "already_ingested", "already_ingested", "already_ingested"]
        assert _count(store.PhraseRow) == 300
    finally:
        server.stop()
