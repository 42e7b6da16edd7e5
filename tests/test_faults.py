"""Faults the real CLI cannot be made to show on demand, injected with tests/fake_airflow.py:
crashes, hangs past the timeout, ignored SIGTERM, grandchildren, floods, vanishing clients."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest
from aiohttp import ClientSession

from bridge.calls.capped import GAP_ROOM, CappedOutput
from bridge.calls.formats import TEXT_RESULT_PREFIX
from tests.helpers import (
    API,
    ClientFactory,
    call,
    commands_of,
    fault,
    hold_the_slot,
    new_marker,
    processes_with,
    read_until,
    start_fake_daemon,
    until_waiting,
)


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


async def test_client_leaving_stops_the_process_group(
    make_fake_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.audit")
    client = await make_fake_client(reattach_wait=0)  # no wait for the client to come back
    commands = commands_of(client)
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "grandchildren", stream="true"))
    await read_until(response, b"spawned")
    assert len(processes_with(marker)) == 3  # the command and its two children
    response.close()
    await asyncio.wait_for(commands.idle.wait(), timeout=30)
    assert processes_with(marker) == []
    # Its audit line says how it ended: stopped (SIGTERM), after running a while.
    (line,) = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    assert "exit=-15" in line and line.endswith("client left: stopped"), line
    assert float(line.split("duration=")[1].split("s ")[0]) > 0


async def test_kill_on_disconnect_off_lets_the_command_run_to_its_end(
    make_fake_client: ClientFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The command of a client that left keeps running (here for 20 more ticks, two seconds,
    well past the grace period) until it ends by itself; then it is cleaned up and audited."""
    gate, ticks = tmp_path / "gate", tmp_path / "ticks"
    monkeypatch.setenv("FAKE_AIRFLOW_GATE", str(gate))
    monkeypatch.setenv("FAKE_AIRFLOW_TICKS", str(ticks))
    caplog.set_level(logging.INFO, logger="bridge.audit")
    client = await make_fake_client(kill_on_disconnect=False, kill_grace_period=0.2)
    commands = commands_of(client)
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "until_gate", stream="true"))
    await read_until(response, b"tick 1")
    response.close()
    left_at = len((await asyncio.to_thread(ticks.read_text)).split())
    async with asyncio.timeout(30):
        while len((await asyncio.to_thread(ticks.read_text)).split()) < left_at + 20:
            assert processes_with(marker), "it stopped although kill_on_disconnect = false"
            await asyncio.sleep(0.1)  # the command's own pace: it ticks every 0.1 s
    gate.touch()
    await asyncio.wait_for(commands.none_running.wait(), timeout=30)
    assert processes_with(marker) == []
    assert any(
        "ran on after its client left" in r.message and "exit=0" in r.message
        for r in caplog.records
        if r.name == "bridge.audit"
    )


@pytest.mark.parametrize(
    ("mode", "stream"), [("lines30000", "stdout"), ("errlines30000", "stderr")]
)
async def test_buffered_output_keeps_the_head_and_tail_of_each_stream_within_the_cap(
    make_fake_client: ClientFactory, mode: str, stream: str
) -> None:
    """Past max_output_size a buffered envelope keeps the first lines and the last (a task's
    result is printed at the end), with a line between them saying how much was left out."""
    cap = 64 * 1024 + 7  # not a multiple of the lines: both cuts fall inside a line
    client = await make_fake_client(max_output_size=cap)
    marker = new_marker()
    response = await client.get(API, params=fault(marker, mode))
    body = await response.json()
    assert response.status == 200 and body["exit_code"] == 0, body
    kept = body["output"][stream]
    lines = [f"line {number} of 30000\n" for number in range(30000)]
    whole = (f"started {marker} {mode}\n" if stream == "stdout" else "") + "".join(lines)
    assert len(kept) <= cap < len(whole)
    gap = re.search(r"^\[airflow-rest-bridge\] \.\.\. (\d+) characters left out", kept, re.M)
    assert gap is not None, kept[:300]
    head, tail = kept[: gap.start()], kept[kept.index("\n", gap.end()) + 1 :]
    assert head.startswith(whole[:100]) and whole.startswith(head) and head.endswith("\n")
    assert tail.endswith("line 29999 of 30000\n") and whole.endswith(tail)
    assert tail.startswith("line ")  # whole lines at both ends
    assert len(head) + int(gap[1]) + len(tail) == len(whole)
    assert len(head) > cap // 3 and len(tail) > cap // 3  # both ends, not a sliver of one
    assert f"{stream} was cut at max_output_size ({cap} characters)" in body["warning"]
    assert (
        f"its first {len(head)} and last {len(tail)} characters are kept, the {gap[1]} "
        "between them left out"
    ) in body["warning"]


@pytest.mark.parametrize("limit", [1, 10, GAP_ROOM, GAP_ROOM + 2, GAP_ROOM + 41, 4096])
@pytest.mark.parametrize("piece", [1, 7, 100, 5000])
def test_the_cap_stays_a_cap_however_the_output_arrives(limit: int, piece: int) -> None:
    whole = "".join(f"line {number}\n" for number in range(700)) + "no newline at the end"
    for size in (limit, len(whole)):
        text = whole[:size]
        capped = CappedOutput(limit)
        for start in range(0, len(text), piece):
            capped.add(text[start : start + piece])
        kept = capped.text()
        assert len(kept) <= limit
        if len(text) <= limit:
            assert kept == text and capped.dropped == 0
        else:
            head = kept.split("[airflow-rest-bridge]")[0]
            assert capped.dropped > 0 and head
            assert whole.startswith(head) or whole.startswith(head.removesuffix("\n"))


async def test_server_timing_says_how_long_the_command_ran(
    make_fake_client: ClientFactory,
) -> None:
    response = await make_fake_client()
    answer = await response.get(API, params=fault(new_marker(), "short"))  # about 0.9 s
    assert answer.status == 200
    timing = answer.headers["Server-Timing"]
    match = re.fullmatch(r'cli;dur=([0-9.]+);desc="cold"', timing)
    assert match is not None, timing
    assert 800 <= float(match[1]) <= 60_000


async def test_streamed_flood_arrives_whole(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(max_output_size=1024 * 1024)
    response = await client.get(API, params=fault(new_marker(), "flood8", stream="true"))
    text = (await response.read()).decode()
    assert text.count("x" * 1023 + "\n") == 8 * 1024
    result = json.loads(text.rsplit(TEXT_RESULT_PREFIX, 1)[1])
    assert result["exit_code"] == 0


async def test_a_full_queue_is_429_with_retry_after(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(max_concurrent_commands=1, max_waiting_calls=0, reattach_wait=0)
    first, marker = await hold_the_slot(client)
    second = await client.get(API, params=fault(new_marker(), "ok"))
    body = await second.json()
    assert second.status == 429
    assert second.headers["Retry-After"] == "1"
    assert "max_waiting_calls" in body["output"]
    first.close()
    await asyncio.wait_for(commands_of(client).idle.wait(), timeout=30)
    third = await client.get(API, params=fault(new_marker(), "ok"))
    assert third.status == 200
    assert processes_with(marker) == []


async def test_over_the_limit_a_call_waits_its_turn(make_fake_client: ClientFactory) -> None:
    """All slots taken: the next call waits and runs once one is free; a caller that leaves
    while waiting leaves the queue."""
    client = await make_fake_client(max_concurrent_commands=1, reattach_wait=0)
    commands = commands_of(client)
    first, marker = await hold_the_slot(client)
    waiting = asyncio.create_task(client.get(API, params=fault(new_marker(), "ok")))
    await until_waiting(commands, 1)
    leaving = asyncio.create_task(client.get(API, params=fault(new_marker(), "ok")))
    await until_waiting(commands, 2)
    leaving.cancel()
    await until_waiting(commands, 1)
    assert not waiting.done()
    first.close()
    second = await waiting
    assert second.status == 200 and (await second.json())["exit_code"] == 0
    assert processes_with(marker) == []
    await asyncio.wait_for(commands.idle.wait(), timeout=30)
    assert commands.busy == 0 and commands.slots.waiting == 0


async def test_a_wait_past_slot_wait_timeout_is_503(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(
        max_concurrent_commands=1, slot_wait_timeout=0.2, reattach_wait=0
    )
    first, marker = await hold_the_slot(client)
    status, body = await call(client, **fault(new_marker(), "ok"))
    assert status == 503 and "slot_wait_timeout" in body["output"], body
    first.close()
    await asyncio.wait_for(commands_of(client).idle.wait(), timeout=30)
    assert processes_with(marker) == []


async def test_a_client_that_left_mid_stream_has_an_access_line_with_499(tmp_path: Path) -> None:
    """The access log has a line for every request, one whose client left before its answer
    ended included: 499, as the metrics count it."""
    daemon, port = await start_fake_daemon(tmp_path, "reattach_wait = 0")
    marker = new_marker()
    try:
        async with ClientSession(f"http://127.0.0.1:{port}") as session:
            response = await session.get(API, params=fault(marker, "hang", stream="true"))
            await read_until(response, b"started")
            response.close()  # the client goes away while the stream waits for more output
        await daemon.line_containing("client left: stopped")  # the handler ended before
    finally:
        assert await daemon.stop() == 0
    request = f'"GET {API}?api=test&dag_id={marker}'
    lines = [line for line in daemon.lines if request in line]
    assert len(lines) == 1, daemon.lines
    assert 'aiohttp.access: 127.0.0.1 token=- "GET ' in lines[0], lines
    assert '" 499 - ' in lines[0], lines
