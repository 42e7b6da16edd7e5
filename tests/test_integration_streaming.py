"""Streaming against the real Airflow: output arrives while the command still runs, the final
record carries the exit code, and a client that leaves takes its command down with it."""

from __future__ import annotations

import asyncio
import json

import pytest

from bridge.calls.formats import TEXT_RESULT_PREFIX
from tests.helpers import (
    API,
    ClientFactory,
    commands_of,
    processes_with,
    read_until,
    slow_lines,
    unique_date,
)

# How a command starts and stops: also in the cold pass (make integration).
pytestmark = [pytest.mark.airflow, pytest.mark.cold]


async def test_text_stream_sends_lines_while_the_task_runs(make_client: ClientFactory) -> None:
    client = await make_client()
    commands = commands_of(client)
    response = await client.get(API, params=slow_lines(unique_date(), stream="true"))
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert "Content-Length" not in response.headers
    early = await read_until(response, b"first line")
    # The task sleeps between its two lines: the first one must come while it still runs.
    assert b"second line" not in early
    assert commands.busy == 1
    rest = early + await response.read()
    assert b"second line" in rest
    last = rest.decode().rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith(TEXT_RESULT_PREFIX)
    result = json.loads(last.removeprefix(TEXT_RESULT_PREFIX))
    assert result["exit_code"] == 0
    assert result["status"] == "OK"
    assert "output" not in result


async def test_ndjson_stream(make_client: ClientFactory) -> None:
    client = await make_client()
    commands = commands_of(client)
    response = await client.get(
        API,
        params=slow_lines(unique_date()),
        headers={"Accept": "application/x-ndjson"},
    )
    assert response.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    early = await read_until(response, b"first line")
    assert commands.busy == 1
    lines = (early + await response.read()).decode().splitlines()
    events = [json.loads(line) for line in lines]
    # First the job the stream is (a dropped client reattaches to it), last the result.
    job = events.pop(0)
    assert job["event"] == "job" and job["job_id"] == response.headers["X-Job-Id"]
    assert job["location"] == f"/admin/rest_api/jobs/{job['job_id']}"
    assert all(e["event"] == "output" for e in events[:-1])
    assert {e["stream"] for e in events[:-1]} <= {"stdout", "stderr"}
    text = "".join(e["text"] for e in events[:-1])
    assert text.index("first line") < text.index("second line")
    assert events[-1]["event"] == "result"
    assert events[-1]["exit_code"] == 0


async def test_dropped_stream_leaves_no_process(make_client: ClientFactory) -> None:
    client = await make_client(reattach_wait=0)
    commands = commands_of(client)
    date = unique_date(2021)  # appears in the command line of the CLI process
    response = await client.get(API, params=slow_lines(date, stream="ndjson"))
    await read_until(response, b"first line")
    assert processes_with(date)
    response.close()
    await asyncio.wait_for(commands.idle.wait(), timeout=60)
    assert processes_with(date) == []


async def test_validation_errors_before_streaming_are_envelopes(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get(API, params=slow_lines("not-a-date!", stream="true"))
    body = await response.json()
    assert response.status == 400
    assert body["status"] == "ERROR"
    assert "execution_date" in body["output"]
