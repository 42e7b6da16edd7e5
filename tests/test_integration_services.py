"""Long-running services (scheduler): in the foreground they stream until the client leaves;
with daemon=true the CLI's own daemon mode detaches them and the call answers at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from bridge.config.load import own_files_folder
from tests.helpers import (
    API,
    ClientFactory,
    call_ok,
    commands_of,
    live_members,
    new_marker,
    process_group_of,
    processes_with,
    session_of,
)

pytestmark = pytest.mark.airflow


async def test_foreground_scheduler_streams_until_the_client_leaves(
    make_client: ClientFactory, airflow_home: Path
) -> None:
    client = await make_client(reattach_wait=0)
    commands = commands_of(client)
    marker = new_marker("sched")
    response = await client.get(
        API,
        params={"api": "scheduler", "stream": "ndjson", "log-file": f"{marker}.log"},
    )
    assert response.status == 200
    assert b'"event": "job"' in await response.content.readline()  # the stream's job first
    first = await response.content.readline()  # any output: the scheduler is up and streaming
    assert b'"event": "output"' in first
    started = processes_with(marker)[0]
    group, session = process_group_of(started), session_of(started)
    assert live_members(group=group)
    response.close()
    await asyncio.wait_for(commands.idle.wait(), timeout=60)
    # Airflow 2's DagFileProcessorManager moves to a process group of its own: the whole
    # session must be gone, not just the group.
    assert live_members(group=group) == []
    assert live_members(session=session) == []


async def _wait_for_file(path: Path, seconds: float) -> None:
    # The daemonized scheduler writes its pid file a moment after the CLI returns; there is
    # no event to await across that process boundary, so look for it, bounded in time.
    loop = asyncio.get_running_loop()
    give_up = loop.time() + seconds
    while not path.exists():
        assert loop.time() < give_up, f"{path} did not appear"
        await asyncio.sleep(0.2)


async def test_daemon_scheduler_detaches_and_answers_at_once(
    make_client: ClientFactory, airflow_home: Path
) -> None:
    client = await make_client()
    marker = new_marker("sched")
    # A name without a folder is inside allowed_paths: by default the bridge's own folder.
    pid_file = own_files_folder(airflow_home) / f"{marker}.pid"
    body = await call_ok(
        client,
        api="scheduler",
        daemon="true",
        pid=pid_file.name,
        stdout=f"{marker}.out",
        stderr=f"{marker}.err",
        **{"log-file": f"{marker}.log"},
    )
    assert body["exit_code"] == 0
    assert "--daemon" in body["airflow_cmd"]
    try:
        await _wait_for_file(pid_file, 60)
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)  # the detached scheduler is running, in a session of its own
        assert process_group_of(pid) not in live_members(group=os.getpgid(0))
    finally:
        await _stop_daemon_sessions(marker)


async def _stop_daemon_sessions(marker: str) -> None:
    """Stop every process of the daemonized scheduler: all share its session."""
    sessions = {session_of(pid) for pid in processes_with(marker)} - {os.getsid(0)}
    for pid in [m for sid in sessions for m in live_members(session=sid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for sid in sessions:
        assert await _gone(sid), f"session {sid} still has processes"


async def _gone(session: int) -> bool:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 30
    while live_members(session=session):
        if loop.time() > give_up:
            return False
        await asyncio.sleep(0.1)
    return True
