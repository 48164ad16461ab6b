"""One temporary Prefect server for the whole test session (~20 s to start), shared by the flow and
deployment tests. Loaded with `pytest_plugins = ["_prefect_harness"]` from the modules that need it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """The harness server's API URL; every flow run in the session lands on that server."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="session")
def work_pools(prefect_api) -> list[str]:
    """The `cpu` and `gpu` process pools, created through the client with the process worker's template."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    with get_client(sync_client=True) as client:
        for name in ("cpu", "gpu"):
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
            except ObjectAlreadyExists:
                pass
    return ["cpu", "gpu"]

