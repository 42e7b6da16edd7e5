"""Every wait is bounded, cancellable and stop-aware (issue 25), against real Airflow: a
trigger_dag&wait=true on a paused DAG waits for a run that cannot start (no scheduler, the
DAG paused), which is the case an adversarial caller used to hold the daemon."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout
from aiohttp.test_utils import TestClient

from bridge.calls.formats import TEXT_RESULT_PREFIX
from bridge.config.settings import Settings
from tests.helpers import (
    API,
    ClientFactory,
    free_port,
    new_marker,
    read_until,
    start_daemon,
    unique_date,
)

pytestmark = pytest.mark.airflow

DAG = "bridge_long"
HANG = 120.0  # a hang detector: these answer within a poll interval or two (2 s each)
RUN_SEEN = b"[airflow-rest-bridge] run "


async def paused(client: TestClient[Any, Any]) -> None:
    response = await client.get(API, params={"api": "pause", "dag_id": DAG})
    assert response.status == 200, await response.text()


def a_trigger(**extra: str) -> dict[str, str]:
    """trigger_dag of the DAG with a run id and logical date of its own: Airflow 2 names a
    manual run by the second, so two triggers in one second would clash."""
    return {
        "api": "trigger_dag",
        "dag_id": DAG,
        "run_id": new_marker("run"),
        "exec_date": unique_date(2025),
        **extra,
    }


def waiting_trigger(**extra: str) -> dict[str, str]:
    return a_trigger(wait="true", **extra)


def following_the_log(run_id: str) -> dict[str, str]:
    """task_log&follow=true of the DAG's task in ``run_id``, as an ndjson stream."""
    return {
        "api": "task_log",
        "dag_id": DAG,
        "task_id": "ticks",
        "execution_date": run_id,
        "follow": "true",
        "stream": "ndjson",
    }


async def test_a_waiting_job_holds_no_slot_and_a_delete_ends_its_wait(
    make_client: ClientFactory,
) -> None:
    client = await make_client(max_concurrent_commands=1, slot_wait_timeout=10.0)
    await paused(client)
    response = await client.get(API, params=waiting_trigger(detach="true"))
    assert response.status == 202, await response.text()
    location = response.headers["Location"]
    follower = await client.get(f"{location}/output")
    await asyncio.wait_for(read_until(follower, RUN_SEEN), HANG)  # the wait has begun
    # The only slot is free while the job waits for its run: a read runs at once.
    read = await client.get(API, params={"api": "list_dags"})
    assert read.status == 200, await read.text()
    cancelled = await asyncio.wait_for(client.delete(location), HANG)
    record = await cancelled.json()
    assert record["state"] == "cancelled", record
    assert record["status"] == "ERROR" and "cancelled" in record["warning"], record
    assert "the run goes on" in record["warning"], record
    rest = await asyncio.wait_for(follower.read(), HANG)
    result = json.loads(rest.rpartition(TEXT_RESULT_PREFIX.encode())[2])
    assert result["state"] == "cancelled", result


async def test_a_wait_longer_than_command_timeout_is_refused(make_client: ClientFactory) -> None:
    client = await make_client(command_timeout=60.0)
    await paused(client)
    asked = client.get(API, params=waiting_trigger(wait_timeout="999999999"))
    response = await asyncio.wait_for(asked, HANG)
    body = await response.json()
    assert response.status == 400, body
    assert "command_timeout (60 s)" in body["output"], body


async def test_sigterm_ends_waits_and_follows_with_the_stopping_warning(
    settings: Settings, airflow_bin: str, tmp_path: Path
) -> None:
    """SIGTERM while a job waits for a run and a stream follows a task's log that cannot
    start: the daemon exits, both end with ERROR and the stopping warning."""
    assert settings.config_path is not None
    cfg = settings.airflow_home / f"daemon-{tmp_path.name}.cfg"  # the same Airflow home
    cfg.write_text(
        settings.config_path.read_text()
        + f"airflow_executable = {airflow_bin}\njobs_folder = {tmp_path / 'jobs'}\n"
        + "warm_helper = false\nkill_grace_period = 2\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = await start_daemon(cfg, port)
    # The hang detector is for the stop: from SIGTERM on, each stream ends within HANG. The
    # requests' whole lives (cold starts of Airflow before it) depend on the machine's load.
    timeout = ClientTimeout(total=None, sock_read=HANG)
    async with ClientSession(timeout=timeout) as session:
        try:
            async with session.get(f"{base}{API}", params={"api": "pause", "dag_id": DAG}) as r:
                assert r.status == 200, await r.text()
            async with session.get(f"{base}{API}", params=waiting_trigger(stream="true")) as r:
                seen = await read_until(r, RUN_SEEN)
                run_id = seen.split(RUN_SEEN)[1].split(b" ")[0].decode()
                log_params = following_the_log(run_id)
                async with session.get(f"{base}{API}", params=log_params) as log:
                    assert log.status == 200, await log.text()
                    # Once the follow asked Airflow at least once, stop the daemon.
                    await daemon.line_containing("follow the task", timeout=HANG)
                    daemon.signal(15)
                    lines = (await asyncio.wait_for(log.read(), HANG)).decode().splitlines()
                    followed = json.loads(lines[-1])
                waited = (await asyncio.wait_for(r.read(), HANG)).decode()
            assert await daemon.wait() == 0
        finally:
            await daemon.stop()
    assert followed["event"] == "result" and followed["status"] == "ERROR", followed
    assert "the daemon is stopping" in followed["warning"], followed
    result = json.loads(waited.rpartition(TEXT_RESULT_PREFIX)[2])
    assert result["status"] == "ERROR", result
    assert "the daemon is stopping" in result["warning"], result


async def test_task_log_takes_a_map_index_as_a_number(make_client: ClientFactory) -> None:
    """It was a 500 (the index stayed text); a try with no log is a 404 that says so."""
    client = await make_client()
    await paused(client)
    response = await client.get(API, params=a_trigger())
    body = await response.json()
    assert response.status == 200, body
    run_id = body["dag_run"]["run_id"]
    params = {"api": "task_log", "dag_id": DAG, "task_id": "ticks", "execution_date": run_id}
    for extra in ({"map_index": "0"}, {"map_index": "3", "try_number": "1"}):
        response = await client.get(API, params={**params, **extra})
        body = await response.json()
        assert response.status == 404, body
        assert "no log of" in body["output"], body


async def test_waits_on_a_paused_dag_say_so_and_a_timed_out_follow_is_a_504(
    make_client: ClientFactory,
) -> None:
    """Issue 26 item 6: a run of a paused DAG cannot start; both waits say why, and a
    follow that times out answers 504 as a trigger's wait does."""
    client = await make_client(command_timeout=30.0)
    await paused(client)
    response = await client.get(API, params=waiting_trigger(wait_timeout="2"))
    body = await response.json()
    assert response.status == 504, json.dumps(body, indent=1)
    assert f"DAG {DAG} is paused" in body["warning"], body
    run_id = body["dag_run"]["run_id"]
    response = await client.get(API, params=following_the_log(run_id))
    assert response.status == 200, await response.text()
    events = [json.loads(line) for line in (await response.read()).splitlines()]
    said = "".join(event.get("text", "") for event in events if event["event"] == "output")
    assert f"DAG {DAG} is paused: task ticks does not start" in said, events
    result = events[-1]
    assert result["event"] == "result" and result["http_response_code"] == 504, result
    assert result["status"] == "ERROR" and "after command_timeout" in result["warning"], result
