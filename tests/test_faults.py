"""Faults the real CLI cannot be made to show on demand, injected with tests/fake_airflow.py:
crashes, hangs past the timeout, ignored SIGTERM, grandchildren, floods, vanishing clients."""

from __future__ import annotations

import asyncio
import json

from bridge.envelope import TEXT_RESULT_PREFIX
from bridge.state import RUNTIME
from tests.conftest import API, ClientFactory
from tests.helpers import fault, read_until
from tests.procs import new_marker, processes_with


async def test_crash_is_an_error_envelope_with_exit_code(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "crash"))
    body = await response.json()
    assert response.status == 500
    assert body["status"] == "ERROR"
    assert body["exit_code"] == 3
    assert "something went wrong" in body["output"]["stderr"]
    assert f"started {marker} crash" in body["output"]["stdout"]


async def test_hang_past_timeout_is_stopped_and_reported(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(command_timeout=1.0, kill_grace_period=1.0)
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "hang"))
    body = await response.json()
    assert response.status == 504
    assert "timed out" in body["warning"]
    assert processes_with(marker) == []


async def test_sigterm_ignored_then_killed(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(command_timeout=1.0, kill_grace_period=0.5)
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "ignore_term"))
    assert response.status == 504
    assert processes_with(marker) == []


async def test_grandchildren_stop_with_the_command(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(command_timeout=2.0, kill_grace_period=0.5)
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "grandchildren"))
    body = await response.json()
    assert "spawned" in body["output"]["stdout"]
    assert response.status == 504
    assert processes_with(marker) == []


async def test_client_leaving_stops_the_process_group(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    runtime = client.server.app[RUNTIME]
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "grandchildren", stream="true"))
    await read_until(response, b"spawned")
    assert len(processes_with(marker)) == 3  # the command and its two children
    response.close()
    await asyncio.wait_for(runtime.slots.idle.wait(), timeout=30)
    assert processes_with(marker) == []


async def test_kill_on_disconnect_off_lets_the_command_finish(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(kill_on_disconnect=False)
    runtime = client.server.app[RUNTIME]
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "short", stream="true"))
    await read_until(response, b"started")
    response.close()
    await asyncio.wait_for(runtime.slots.idle.wait(), timeout=30)
    assert processes_with(marker), "the command should still be running"
    await asyncio.wait_for(asyncio.gather(*runtime.background), timeout=30)
    assert processes_with(marker) == []


async def test_buffered_output_is_capped_with_a_warning(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(max_output_size=1024 * 1024)
    response = await client.get(API, params=fault(new_marker(), "flood4"))
    body = await response.json()
    assert response.status == 200
    assert body["exit_code"] == 0
    assert len(body["output"]["stdout"]) <= 1024 * 1024
    assert "max_output_size" in body["warning"]


async def test_streamed_flood_arrives_whole(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(max_output_size=1024 * 1024)
    response = await client.get(API, params=fault(new_marker(), "flood8", stream="true"))
    text = (await response.read()).decode()
    assert text.count("x" * 1023 + "\n") == 8 * 1024
    result = json.loads(text.rsplit(TEXT_RESULT_PREFIX, 1)[1])
    assert result["exit_code"] == 0


async def test_over_the_limit_is_429_with_retry_after(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(max_concurrent_commands=1)
    marker = new_marker()
    first = await client.get(API, params=fault(marker, "hang", stream="true"))
    await read_until(first, b"started")
    second = await client.get(API, params=fault(new_marker(), "ok"))
    body = await second.json()
    assert second.status == 429
    assert second.headers["Retry-After"] == "1"
    assert "max_concurrent_commands" in body["output"]
    first.close()
    await asyncio.wait_for(client.server.app[RUNTIME].slots.idle.wait(), timeout=30)
    third = await client.get(API, params=fault(new_marker(), "ok"))
    assert third.status == 200
    assert processes_with(marker) == []
