"""Load and resources, against a real daemon process driving the fake airflow: many requests
and streams at once, slow clients, a command that prints 1 GiB. Only 200 and the documented
429 come back, nothing is lost, memory stays bounded and every file descriptor is returned.

Figures (RSS, descriptors, bytes, seconds) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from bridge.calls.formats import TEXT_RESULT_PREFIX
from bridge.catalogue.installed import AirflowInfo
from bridge.config import settings as config
from bridge.http.app import create_app
from tests.helpers import API, FAKE_AIRFLOW, Daemon, fault, free_port, new_marker, start_daemon

MIB = 1024 * 1024
FLOOD_LINE = b"x" * 1023  # tests/fake_airflow.py's flood mode: 1 KiB lines
STREAMS = 24
REQUESTS = 256
CONCURRENCY = 64
# 24 streams hold 24 slots for the whole run; the buffered requests share the other 24, and
# of the 40 over them at a time 16 wait in line and the rest are refused with 429: the queue
# and the limit are both exercised.
MAX_COMMANDS = 48
MAX_WAITING = 16


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> list[str]:
    fds = []
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            fds.append(os.readlink(entry.path))
        except OSError:  # closed while we looked
            continue
    return fds


async def until(condition: Any, what: str, timeout: float = 60) -> None:
    """Await a condition another process must bring about (nothing signals it across the
    process boundary), looking every 50 ms, with a deadline."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not condition():
        assert loop.time() < give_up, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def commands_running(base: str) -> int:
    async with ClientSession() as session, session.get(f"{base}/health") as response:
        assert response.status == 200
        return int((await response.json())["commands_running"])


async def wait_idle(base: str, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while await commands_running(base):
        assert loop.time() < give_up, "commands still running"
        await asyncio.sleep(0.05)


async def fds_back_to(pid: int, baseline: list[str]) -> None:
    """Every descriptor the load opened is closed again (sockets close a moment after the
    client's side does)."""
    try:
        await until(lambda: len(open_fds(pid)) <= len(baseline), "the descriptors to close")
    except AssertionError:
        extra = sorted(set(open_fds(pid)) - set(baseline))
        left = len(open_fds(pid)) - len(baseline)
        raise AssertionError(f"{left} descriptors left: {extra}") from None


class RssSampler:
    """The daemon's RSS into ``samples`` every 0.1 s until stopped (a measurement's cadence,
    not synchronisation)."""

    def __init__(self, pid: int, samples: list[int]) -> None:
        self._done = asyncio.Event()
        self._task = asyncio.create_task(self._sample(pid, samples))

    async def _sample(self, pid: int, samples: list[int]) -> None:
        while not self._done.is_set():
            samples.append(rss_kib(pid))
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self._done.set()
        await self._task


class Bridge:
    """A running daemon: its process, URL and gate file (the fake's until_gate mode ends
    once the gate exists)."""

    def __init__(self, daemon: Daemon, port: int, gate: Path) -> None:
        self.daemon = daemon
        self.pid = daemon.proc.pid
        self.url = f"http://127.0.0.1:{port}"
        self.gate = gate


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Any]:
    """Start the daemon on the fake airflow, with extra settings; stopped at the end."""
    started: list[Daemon] = []

    async def start(*settings: str) -> Bridge:
        (tmp_path / "dags").mkdir()
        cfg = tmp_path / "airflow.cfg"
        cfg.write_text(
            f"[core]\ndags_folder = {tmp_path / 'dags'}\n\n[rest_api_plugin]\n"
            f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\n"
            + "\n".join(settings)
            + "\n"
        )
        gate = tmp_path / "gate"
        port = free_port()
        daemon = await start_daemon(cfg, port, env={**os.environ, "FAKE_AIRFLOW_GATE": str(gate)})
        started.append(daemon)
        return Bridge(daemon, port, gate)

    yield start
    for daemon in started:
        assert await daemon.stop() == 0


# --- many requests and streams at once ----------------------------------------------------------


async def stream_until_gate(
    session: ClientSession, bridge: Bridge, started: asyncio.Event
) -> tuple[str, int, str]:
    """One stream of the fake's until_gate mode; ``started`` is set once its first line came
    (or it failed)."""
    marker = new_marker("s")
    try:
        params = fault(marker, "until_gate", stream="true")
        async with session.get(bridge.url + API, params=params) as response:
            seen = b""
            async for data in response.content.iter_any():
                seen += data
                if b"\n" in seen:
                    started.set()
            return marker, response.status, seen.decode()
    finally:
        started.set()


def check_stream(marker: str, status: int, text: str) -> int:
    """The stream's every line arrived, in order, then its result; returns the tick count."""
    assert status == 200, text[:500]
    *lines, result_line, end = text.split("\n")
    assert end == ""
    assert lines[0] == f"started {marker} until_gate"
    ticks = len(lines) - 2
    assert lines[1:-1] == [f"tick {n}" for n in range(ticks)]
    assert lines[-1] == f"done {ticks}"
    assert result_line.startswith(TEXT_RESULT_PREFIX)
    result = json.loads(result_line.removeprefix(TEXT_RESULT_PREFIX))
    assert (result["status"], result["exit_code"]) == ("OK", 0)
    return ticks


async def test_load_answers_200_or_429_loses_nothing_and_returns_every_descriptor(
    bridge: Any,
) -> None:
    b: Bridge = await bridge(
        f"max_concurrent_commands = {MAX_COMMANDS}\nmax_waiting_calls = {MAX_WAITING}"
    )
    fds_at_start = open_fds(b.pid)
    results: list[tuple[str, int, dict[str, Any], str | None]] = []
    connector = TCPConnector(limit=0)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=600)) as session:
        # The first command loads what the daemon imports lazily; RSS counts from after it.
        async with session.get(b.url + API, params=fault(new_marker(), "ok")) as response:
            assert response.status == 200
        rss_before = peak = rss_kib(b.pid)

        started = [asyncio.Event() for _ in range(STREAMS)]
        streams = [asyncio.create_task(stream_until_gate(session, b, e)) for e in started]
        await asyncio.gather(*(event.wait() for event in started))
        assert not [task for task in streams if task.done()], "a stream ended early"

        pending = [new_marker() for _ in range(REQUESTS)]
        # A refused client retries when a command has ended since it sent its request (a slot
        # was free then): an event, where a real client would sleep for Retry-After. One
        # waiter is woken per ended command, so that refusals do not turn into a stampede.
        finished = 0
        waiting: deque[asyncio.Future[None]] = deque()

        def command_ended() -> None:
            nonlocal finished
            finished += 1
            while waiting:
                if not (waiter := waiting.popleft()).done():
                    waiter.set_result(None)
                    return

        async def client() -> None:
            nonlocal peak
            while pending:
                marker = pending.pop()
                while True:
                    seen = finished
                    async with session.get(b.url + API, params=fault(marker, "ok")) as response:
                        body = await response.json()
                        retry = response.headers.get("Retry-After")
                        results.append((marker, response.status, body, retry))
                    peak = max(peak, rss_kib(b.pid))
                    if response.status != 429:
                        command_ended()
                        break
                    if finished == seen:
                        waiter = asyncio.get_running_loop().create_future()
                        waiting.append(waiter)
                        await waiter

        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        load_seconds = time.monotonic() - began
        b.gate.touch()
        streamed = await asyncio.gather(*streams)
        peak = max(peak, rss_kib(b.pid))
    await wait_idle(b.url)
    await fds_back_to(b.pid, fds_at_start)

    statuses = [status for _, status, _, _ in results]
    ok = statuses.count(200)
    busy = statuses.count(429)
    served = sorted(marker for marker, status, _, _ in results if status != 429)
    ticks = [check_stream(*one) for one in streamed]
    print(
        f"\n{REQUESTS} requests at {CONCURRENCY} concurrent + {STREAMS} streams in "
        f"{load_seconds:.1f} s: {ok} x 200, {busy} x 429 (retried); stream ticks {min(ticks)}-"
        f"{max(ticks)}; RSS {rss_before} KiB -> peak {peak} KiB; "
        f"fds {len(fds_at_start)} at start and after"
    )
    assert set(statuses) <= {200, 429, 503}, sorted(set(statuses))
    assert len(served) == len(set(served)) == REQUESTS  # each request answered once
    assert busy > 0, "the limit was never reached: the test did not load the daemon"
    for marker, status, body, retry in results:
        assert body["http_response_code"] == status
        if status == 200:
            assert (body["status"], body["exit_code"]) == ("OK", 0)
            # Its own output, whole: nothing lost, nothing from another request.
            assert body["output"]["stdout"] == f"started {marker} ok\nhello\n"
        elif status == 429:
            assert retry == "1" and "max_concurrent_commands" in body["output"]
    # Bound: the daemon idles at ~40 MiB; each of the 88 connections in flight holds an
    # aiohttp protocol, parser and a 64 KiB read buffer, each of the 48 commands two pipes
    # and a 64-chunk queue that these few-line outputs never fill. 64 MiB over the starting
    # point is about twice what that needs; a leak of 256 KiB a request would exceed it.
    assert peak - rss_before <= 64 * 1024, (rss_before, peak)


# --- slow clients ------------------------------------------------------------------------------

SLOW_CLIENTS = 200
PARTIAL = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: "


async def slow_client(port: int, connected: asyncio.Event, trickle: bool) -> None:
    """Headers a byte at a time that never end (trickle), or a few bytes and then silence;
    ``connected`` is set once the first bytes are sent (or the client failed)."""
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(PARTIAL[:5])
            await writer.drain()
            connected.set()
            for byte in (PARTIAL[5:] + b"a" * 10_000) if trickle else b"":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)  # the client's pace, not synchronisation
            await asyncio.Event().wait()  # then hold the connection until cancelled
        finally:
            writer.close()
    finally:
        connected.set()


async def test_slow_clients_do_not_starve_a_normal_request(bridge: Any) -> None:
    b: Bridge = await bridge()
    port = int(b.url.rsplit(":", 1)[1])
    fds_at_start = open_fds(b.pid)
    connected = [asyncio.Event() for _ in range(SLOW_CLIENTS)]
    slow = []
    for n, event in enumerate(connected):
        slow.append(asyncio.create_task(slow_client(port, event, trickle=n % 2 == 0)))
        if n % 20 == 19:
            await asyncio.sleep(0)  # a turn for the loop: in debug mode a task costs its stack
    try:
        for event in connected:
            await event.wait()
        await until(
            lambda: len(open_fds(b.pid)) >= len(fds_at_start) + SLOW_CLIENTS,
            "the daemon to accept every slow client",
        )
        async with ClientSession(timeout=ClientTimeout(total=60)) as session:
            marker = new_marker()
            async with session.get(b.url + API, params=fault(marker, "ok")) as response:
                body = await response.json()
            assert response.status == 200
            assert body["output"]["stdout"] == f"started {marker} ok\nhello\n"
            async with session.get(b.url + "/health") as response:
                assert response.status == 200
        # They were all still connected while the request was served: neither side let go.
        assert not [task for task in slow if task.done()]
        assert len(open_fds(b.pid)) >= len(fds_at_start) + SLOW_CLIENTS
        print(f"\n{SLOW_CLIENTS} slow clients held {SLOW_CLIENTS} daemon sockets; served anyway")
    finally:
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
    await fds_back_to(b.pid, fds_at_start)


HEADER_TIMEOUT_BOUND = 75.0  # what web.run_app would have applied (STYLE.md's cli.py)


async def test_a_client_that_never_finishes_its_headers_is_timed_out(tmp_path: Path) -> None:
    # aiohttp's only guard against a request that never completes is keepalive_timeout:
    # armed when the connection opens, not reset by arriving bytes, it closes a connection
    # whose request has not been parsed by then (checked against aiohttp 3.14's
    # web_protocol.py). Waiting that long here would take an hour, so the test reads the
    # value a connection of the daemon's app gets.
    settings = config.Settings(
        airflow_home=tmp_path,
        dags_folder=tmp_path,
        airflow_executable=str(FAKE_AIRFLOW),
        warm_helper=False,
    )
    app = create_app(settings, AirflowInfo(str(FAKE_AIRFLOW), "3.3.2", 3, frozenset()))
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    try:
        assert runner.server is not None
        timeout = runner.server().keepalive_timeout
    finally:
        await runner.cleanup()
    assert timeout <= HEADER_TIMEOUT_BOUND


# --- a command that prints 1 GiB -----------------------------------------------------------------

FLOOD_MIB = 1024
# The streamed bytes pass through a 64-chunk queue of 64 KiB reads (4 MiB) and the socket's
# write buffer, whatever the total: 32 MiB over the idle daemon is 8 times that queue.
FLOOD_RSS_BOUND_KIB = 32 * 1024
FLAT_KIB = 8 * 1024  # from the first to the last sample: no growth with the bytes sent


async def test_a_1_gib_stream_arrives_whole_with_flat_memory(bridge: Any) -> None:
    b: Bridge = await bridge("max_output_size = 1M")
    marker = new_marker()
    samples: list[int] = []
    other: list[bytes] = []
    flood_lines = received = 0
    async with ClientSession(timeout=ClientTimeout(total=600)) as session:
        async with session.get(b.url + API, params=fault(new_marker(), "flood1")) as response:
            assert response.status == 200  # warm-up: buffers the first flood allocates
        rss_start = rss_kib(b.pid)
        began = time.monotonic()
        params = fault(marker, f"flood{FLOOD_MIB}", stream="true")
        async with session.get(b.url + API, params=params) as response:
            assert response.status == 200
            rest = b""
            next_sample = 64 * MIB
            async for data in response.content.iter_any():
                received += len(data)
                lines = (rest + data).split(b"\n")
                rest = lines.pop()
                count = lines.count(FLOOD_LINE)
                flood_lines += count
                if count != len(lines):
                    other += [line for line in lines if line != FLOOD_LINE]
                if received >= next_sample:  # sampled as the bytes arrive
                    samples.append(rss_kib(b.pid))
                    next_sample += 64 * MIB
        seconds = time.monotonic() - began
    print(
        f"\n{received} bytes streamed in {seconds:.1f} s ({received / MIB / seconds:.0f} MiB/s); "
        f"daemon RSS {rss_start} KiB before, samples every 64 MiB {min(samples)}-"
        f"{max(samples)} KiB"
    )
    assert rest == b""
    assert flood_lines == FLOOD_MIB * 1024
    assert len(other) == 2, other[:5]
    assert other[0] == f"started {marker} flood{FLOOD_MIB}".encode()
    result = json.loads(other[1].decode().removeprefix(TEXT_RESULT_PREFIX))
    assert (result["status"], result["exit_code"]) == ("OK", 0)
    assert len(samples) == FLOOD_MIB // 64
    assert max(samples) - rss_start <= FLOOD_RSS_BOUND_KIB, (rss_start, samples)
    assert samples[-1] - samples[0] <= FLAT_KIB, samples


async def test_a_1_gib_buffered_answer_is_capped_at_max_output_size(bridge: Any) -> None:
    b: Bridge = await bridge("max_output_size = 1M")
    async with ClientSession(timeout=ClientTimeout(total=600)) as session:
        async with session.get(b.url + API, params=fault(new_marker(), "flood1")) as response:
            assert response.status == 200  # warm-up
        rss_start = rss_kib(b.pid)
        samples: list[int] = []
        sampler = RssSampler(b.pid, samples)
        began = time.monotonic()
        params = fault(new_marker(), f"flood{FLOOD_MIB}")
        try:
            async with session.get(b.url + API, params=params) as response:
                body = await response.json()
        finally:
            await sampler.stop()
        seconds = time.monotonic() - began
    print(
        f"\n{FLOOD_MIB} MiB buffered in {seconds:.1f} s: stdout {len(body['output']['stdout'])} "
        f"characters; daemon RSS {rss_start} KiB before, {min(samples)}-{max(samples)} KiB "
        f"during ({len(samples)} samples)"
    )
    assert response.status == 200
    assert (body["status"], body["exit_code"]) == ("OK", 0)
    assert len(body["output"]["stdout"]) <= MIB
    assert body["output"]["stdout"].startswith("started ")
    assert "max_output_size" in body["warning"]
    # 1 MiB kept (as str pieces, then joined and JSON-encoded once): well under the bound.
    assert max(samples) - rss_start <= FLOOD_RSS_BOUND_KIB, (rss_start, samples)


# --- 20 jobs of 100 MiB each at once --------------------------------------------------------------

JOBS_AT_ONCE = 20
JOB_MIB = 100
# Each job's command passes through a 64-chunk queue of 64 KiB reads (4 MiB) at most, and
# its chunks' copies on their way (decoded, filtered, encoded for the spool): with 20 busy
# commands on two cores the queues run full (measured: +116 MiB, the same from the first
# second to the last). The spooled output goes to disk, what is past job_output_limit to no
# one (nobody follows). What must not happen is growth with the bytes written.
JOBS_RSS_BOUND_KIB = JOBS_AT_ONCE * 8 * 1024


async def test_20_jobs_of_100_mib_each_keep_memory_flat(bridge: Any) -> None:
    b: Bridge = await bridge(f"max_concurrent_commands = {JOBS_AT_ONCE}", "job_output_limit = 8M")

    async def ended(session: ClientSession, location: str) -> dict[str, Any]:
        # An offset past what is kept: the answer is the job's result, once it ended.
        params = {"offset": str(10**12)}
        async with session.get(f"{b.url}{location}/output", params=params) as response:
            text = await response.text()
        result: dict[str, Any] = json.loads(text.removeprefix(TEXT_RESULT_PREFIX))
        return result

    async with ClientSession(timeout=ClientTimeout(total=600)) as session:
        async with session.get(b.url + API, params=fault(new_marker(), "flood1")) as response:
            assert response.status == 200  # warm-up
        rss_start = rss_kib(b.pid)
        samples: list[int] = []
        sampler = RssSampler(b.pid, samples)
        began = time.monotonic()
        try:
            locations = []
            for _ in range(JOBS_AT_ONCE):
                params = {**fault(new_marker(), f"flood{JOB_MIB}"), "detach": "true"}
                async with session.get(b.url + API, params=params) as response:
                    assert response.status == 202, await response.text()
                    locations.append(response.headers["Location"])
            results = await asyncio.gather(*(ended(session, where) for where in locations))
        finally:
            await sampler.stop()
        seconds = time.monotonic() - began
    print(
        f"\n{JOBS_AT_ONCE} jobs of {JOB_MIB} MiB in {seconds:.1f} s; daemon RSS {rss_start} KiB "
        f"before, {min(samples)}-{max(samples)} KiB during ({len(samples)} samples)"
    )
    assert [r["state"] for r in results] == ["succeeded"] * JOBS_AT_ONCE
    assert all(r["output_cut"] and r["output_size"] > 8 * MIB for r in results)
    assert max(samples) - rss_start <= JOBS_RSS_BOUND_KIB, (rss_start, max(samples))
    half = len(samples) // 2  # the second half holds as much as the first: nothing grows
    assert max(samples[half:]) - max(samples[:half]) <= FLAT_KIB, samples
