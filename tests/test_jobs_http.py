"""Jobs through the real app, with the fake airflow's floods as the output (faults the real
CLI cannot make on demand): past job_output_limit the kept output ends with a marker while
a follower gets every byte live; a follower that asked for bytes past what is kept waits
for the end instead; the command of a stream whose client left in the middle of that
hand-over runs to its end. The integration suite runs real commands as jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.calls.formats import TEXT_RESULT_PREFIX
from tests.helpers import API, ClientFactory, commands_of, fault, new_marker, read_until

LINE = b"x" * 1023 + b"\n"  # tests/fake_airflow.py's flood lines
MIB = 1024 * 1024


async def output(client: TestClient[Any, Any], location: str, offset: int = 0) -> bytes:
    response = await client.get(f"{location}/output", params={"offset": str(offset)})
    assert response.status == 200
    return await response.read()


async def test_past_the_limit_kept_output_ends_with_a_marker_and_far_offsets_wait(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(job_output_limit=MIB)
    response = await client.get(API, params={**fault(new_marker(), "flood2"), "detach": "true"})
    location = response.headers["Location"]
    # Bytes past what is kept: nothing but the result, once the job ended.
    far = await output(client, location, offset=10**9)
    assert far.startswith(TEXT_RESULT_PREFIX.encode()) and b'"state": "succeeded"' in far
    whole = await output(client, location)
    kept, _, result = whole.partition(b"\n[airflow-rest-bridge: the output kept ends here")
    assert kept.count(LINE) == 1023 and b"(job_output_limit)" in result  # 1 MiB, a first line
    assert b'"output_cut": true' in result


async def test_a_stream_past_the_limit_is_whole_and_its_leaving_holds_nothing_up(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(job_output_limit=MIB, kill_on_disconnect=False)
    whole = await client.get(API, params=fault(new_marker(), "flood3", stream="true"))
    body = await whole.read()
    assert body.count(LINE) == 3 * 1024  # live past the kept MiB: nothing cut
    # A follower that leaves while a live piece waits for it: the command goes on to its end.
    left = await client.get(API, params=fault(new_marker(), "flood3", stream="true"))
    location = f"/admin/rest_api/jobs/{left.headers['X-Job-Id']}"
    seen = b""
    while len(seen) < MIB + 64 * 1024:
        seen += await read_until(left, b"x")
    left.close()
    await asyncio.wait_for(commands_of(client).none_running.wait(), timeout=30)
    ended = await output(client, location, offset=10**9)
    assert b'"state": "succeeded"' in ended


async def test_a_dropped_stream_is_reattached_within_reattach_wait(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    monkeypatch.setenv("FAKE_AIRFLOW_GATE", str(gate))
    client = await make_fake_client(reattach_wait=3.0)
    dropped = await client.get(API, params=fault(new_marker(), "until_gate", stream="true"))
    job_id = dropped.headers["X-Job-Id"]
    first = await read_until(dropped, b"tick 1\n")
    dropped.close()  # the connection drops; the client comes back at once, from where it was
    again = await client.get(f"/admin/rest_api/jobs/{job_id}/output", params={"offset": len(first)})
    # Ticks come every 0.1 s: tick 40 is well past the 3 s it would have had without us.
    rest = await read_until(again, b"tick 40\n")
    gate.touch()
    rest += await again.read()
    whole = first + rest
    ticks = [line for line in whole.splitlines() if line.startswith(b"tick ")]
    assert ticks == [f"tick {n}".encode() for n in range(len(ticks))]  # none lost (from 0)
    status = await (await client.get(f"/admin/rest_api/jobs/{job_id}")).json()
    assert status["state"] == "succeeded", status


async def test_a_dropped_stream_nobody_reattaches_is_stopped_and_says_why(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AIRFLOW_GATE", str(tmp_path / "never"))
    client = await make_fake_client(reattach_wait=0.2)
    dropped = await client.get(API, params=fault(new_marker(), "until_gate", stream="true"))
    job_id = dropped.headers["X-Job-Id"]
    await read_until(dropped, b"tick 1\n")
    dropped.close()
    await asyncio.wait_for(commands_of(client).none_running.wait(), timeout=30)
    status = await (await client.get(f"/admin/rest_api/jobs/{job_id}")).json()
    assert status["state"] == "cancelled", status
    assert "none came back within 0.2 s (reattach_wait)" in status["warning"]
