"""A daemon SIGKILLed mid-command stops nothing; the next start stops what it left."""

from __future__ import annotations

import signal
from pathlib import Path

from aiohttp import ClientSession

from bridge.process.ledger import FOLDER_NAME
from tests.helpers import (
    API,
    FAKE_AIRFLOW,
    fault,
    free_port,
    new_marker,
    processes_with,
    read_until,
    start_daemon,
)


async def test_the_next_start_stops_what_a_killed_daemon_left_running(tmp_path: Path) -> None:
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(
        f"[core]\ndags_folder = {tmp_path / 'dags'}\n\n"
        f"[rest_api_plugin]\nairflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\n"
    )
    port = free_port()
    daemon = await start_daemon(cfg, port)
    marker = new_marker()
    params = fault(marker, "grandchildren", stream="true")
    async with ClientSession() as session:
        response = await session.get(f"http://127.0.0.1:{port}{API}", params=params)
        await read_until(response, b"spawned")
        assert len(processes_with(marker)) == 3  # the command and its two children
        await daemon.stop(signal.SIGKILL)  # no cleanup code of the daemon runs
        response.close()
    assert len(processes_with(marker)) == 3, "nothing stopped them: they are orphans now"
    assert len(list((tmp_path / FOLDER_NAME).iterdir())) == 1

    daemon = await start_daemon(cfg, port)
    try:
        assert processes_with(marker) == []
        assert any("left running" in line for line in daemon.lines)
        assert list((tmp_path / FOLDER_NAME).iterdir()) == []
    finally:
        assert await daemon.stop() == 0
