"""Jobs against the real Airflow: detach=true answers 202 and the command runs on; its output
is replayed from the start or the middle, live while it runs, and equals what a buffered call
prints; cancel stops its whole session; a daemon SIGKILLed mid-job leaves it ``lost`` with its
output so far, and the next daemon shows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient

from bridge.config.settings import Settings
from tests.helpers import (
    API,
    ClientFactory,
    call_ok,
    free_port,
    live_members,
    read_until,
    slow_lines,
    split_result,
    start_daemon,
    unique_date,
    warm_mode,
)

# How a command starts and stops: also in the cold pass (make integration).
pytestmark = [pytest.mark.airflow, pytest.mark.cold]
JOBS = "/admin/rest_api/jobs"
LONG_TASK = {"api": "test", "dag_id": "bridge_long", "task_id": "ticks"}  # four minutes


async def detach(client: TestClient[Any, Any], **params: str) -> tuple[str, str]:
    """Start a job; its id and Location."""
    response = await client.get(API, params={**params, "detach": "true"})
    body = await response.json()
    assert response.status == 202, body
    assert body["status"] == "OK" and body["state"] in ("queued", "running"), body
    location = response.headers["Location"]
    assert location == f"{JOBS}/{body['job_id']}" == body["location"]
    return body["job_id"], location


async def replay(client: TestClient[Any, Any], location: str, offset: int = 0) -> bytes:
    """The whole text output from ``offset`` and the result line (it ends with the job)."""
    response = await client.get(f"{location}/output", params={"offset": str(offset)})
    assert response.status == 200
    return await response.read()


async def test_a_detached_call_replays_to_what_a_buffered_call_prints(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    params = {"api": "list_tasks", "dag_id": "bridge_demo"}
    buffered = await call_ok(client, **params)
    job_id, location = await detach(client, **params)
    response = await client.get(f"{location}/output", params={"stream": "ndjson"})
    assert response.headers["X-Job-Id"] == job_id
    events = [json.loads(line) for line in (await response.read()).splitlines()]
    assert events.pop(0) == {"event": "job", "job_id": job_id, "location": location}
    result = events.pop()
    assert result["event"] == "result" and result["state"] == "succeeded", result
    assert result["exit_code"] == 0 and result["status"] == "OK"
    for stream in ("stdout", "stderr"):
        joined = "".join(e["text"] for e in events if e["stream"] == stream)
        assert joined == buffered["output"][stream], stream
    status = await (await client.get(location)).json()
    assert status["state"] == "succeeded" and status["output_size"] > 0
    listed = await (await client.get(JOBS)).json()
    assert listed["jobs"][0]["job_id"] == job_id


async def test_a_detached_test_is_reattached_from_the_start_and_the_middle(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    _, location = await detach(client, **slow_lines(unique_date(2021)))
    response = await client.get(f"{location}/output")
    first = await read_until(response, b"first line")  # live: the task sleeps after it
    response.close()  # the follower leaves; the job runs on
    status = await (await client.get(location)).json()
    assert status["state"] == "running", status
    rest, result = split_result(await replay(client, location, offset=len(first)))
    whole, again = split_result(await replay(client, location))
    assert whole == first + rest and b"second line" in rest
    assert result["state"] == again["state"] == "succeeded", result
    # An offset past the end of an ended job: no output, the result at once.
    beyond, after = split_result(await replay(client, location, offset=len(whole) + 100))
    assert beyond == b"" and after["state"] == "succeeded"


async def test_cancel_stops_the_whole_session_and_says_so(make_client: ClientFactory) -> None:
    client = await make_client()
    _, location = await detach(client, **LONG_TASK, execution_date=unique_date(2021))
    response = await client.get(f"{location}/output")
    first = await read_until(response, b"tick 2")
    pid = (await (await client.get(location)).json())["pid"]
    assert live_members(session=pid)
    cancelled = await client.delete(location)
    body = await cancelled.json()
    assert cancelled.status == 200 and body["state"] == "cancelled", body
    assert body["status"] == "ERROR" and body["exit_code"] != 0
    assert live_members(session=pid) == []
    rest, result = split_result(await response.read())  # the follower sees the end too
    assert result["state"] == "cancelled" and result["pid"] == pid
    assert b"tick 240" not in rest
    whole, _ = split_result(await replay(client, location))
    assert whole == first + rest
    again = await client.delete(location)
    assert again.status == 409 and "already ended (cancelled)" in (await again.json())["output"]
    unknown = await client.get(f"{JOBS}/{'0' * 20}")
    assert unknown.status == 404 and "no job" in (await unknown.json())["output"]
    assert (await client.get(f"{JOBS}/..%2F..%2Fetc")).status == 404


async def test_detach_is_refused_where_it_means_nothing(make_client: ClientFactory) -> None:
    client = await make_client()
    for params, said in [
        ({"api": "version"}, "detach=true is for APIs that run a CLI command"),
        ({"api": "list_dags", "stream": "true"}, "give detach=true or stream, not both"),
        ({"api": "list_dags", "detach": "maybe"}, "detach:"),
    ]:
        response = await client.get(API, params={"detach": "true", **params})
        body = await response.json()
        assert response.status == 400 and said in body["output"], body


@pytest.mark.skipif(warm_mode(), reason="the same through the helper: the cold pass runs it")
async def test_a_job_of_a_killed_daemon_is_lost_with_its_output(
    settings: Settings, airflow_bin: str, tmp_path: Path
) -> None:
    assert settings.config_path is not None
    cfg = settings.airflow_home / f"daemon-{tmp_path.name}.cfg"  # the same Airflow home
    jobs_folder = tmp_path / "jobs"
    cfg.write_text(
        settings.config_path.read_text()
        + f"airflow_executable = {airflow_bin}\njobs_folder = {jobs_folder}\n"
        + "warm_helper = false\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = await start_daemon(cfg, port)
    async with ClientSession() as session:
        try:
            async with session.get(
                f"{base}{API}", params={**slow_lines(unique_date(2021)), "detach": "true"}
            ) as response:
                location = response.headers["Location"]
            async with session.get(f"{base}{location}/output") as response:
                await read_until(response, b"first line")
            async with session.get(f"{base}{location}") as response:
                pid = (await response.json())["pid"]
            daemon.signal(9)
            await daemon.wait()
        finally:
            await daemon.stop()
        daemon = await start_daemon(cfg, port)
        try:
            assert live_members(session=pid) == []  # the ledger stopped it at the start
            async with session.get(f"{base}{location}") as response:
                status = await response.json()
            assert status["state"] == "lost", status
            async with session.get(f"{base}{location}/output") as response:
                output, result = split_result(await response.read())
            assert b"first line" in output and result["state"] == "lost"
        finally:
            assert await daemon.stop() == 0
