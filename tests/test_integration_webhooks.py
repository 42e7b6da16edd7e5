"""Job webhooks against real Airflow: a receiver started in the test gets a correctly signed
record for a succeeded, a failed and a cancelled job, and gets one although it answered 503
at first (the fake-airflow side of it is tests/test_webhooks.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import (
    WEBHOOK_SECRET,
    ClientFactory,
    Receiver,
    detached,
    read_until,
    start_receiver,
    unique_date,
)

pytestmark = pytest.mark.airflow
JOBS = "/admin/rest_api/jobs"
LONG_TASK = {"api": "test", "dag_id": "bridge_long", "task_id": "ticks"}  # four minutes


async def test_ended_jobs_are_told_signed_even_to_a_receiver_that_was_down(
    make_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver(failing=1)  # the first try gets 503: delivered at the second
    url = await start_receiver(aiohttp_server, receiver)
    client = await make_client(job_webhooks=(url,), job_webhook_secret=WEBHOOK_SECRET)
    listed = await detached(client, api="list_dags")
    await receiver.records(1)
    # No such task: the CLI exits non-zero.
    failed = await detached(
        client,
        api="test",
        dag_id="bridge_demo",
        task_id="no_such_task",
        execution_date=unique_date(),
    )
    await receiver.records(2)
    long = await detached(client, **LONG_TASK, execution_date=unique_date(2021))
    async with client.get(f"{JOBS}/{long}/output") as following:
        await read_until(following, b"tick 1")
        assert (await client.delete(f"{JOBS}/{long}")).status == 200
    records = await receiver.records(3)
    states = {record["job_id"]: record["state"] for record in records}
    assert states == {listed: "succeeded", failed: "failed", long: "cancelled"}, records
    assert receiver.refused == 1
    by_id = {record["job_id"]: record for record in records}
    assert by_id[listed]["api"] == "list_dags" and by_id[listed]["exit_code"] == 0
    assert by_id[failed]["exit_code"] not in (0, None), by_id[failed]
    assert by_id[long]["exit_code"] != 0 and "cancelled" in by_id[long]["warning"]
