"""The daemon as a systemd service: the unit verifies, sd_notify readiness and stopping,
SIGTERM during a stream, SIGHUP rotating the token without dropping a running stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from aiohttp import ClientSession, FormData

from bridge.calls.formats import TEXT_RESULT_PREFIX
from tests.helpers import (
    API,
    DAG_SOURCE,
    Daemon,
    free_port,
    live_members,
    new_marker,
    process_group_of,
    processes_with,
    session_of,
    start_daemon,
    unique_date,
)

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "airflow-rest-bridge.service"


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on a copy whose ExecStart and EnvironmentFile exist here."""
    env_file = tmp_path / "bridge.env"
    env_file.write_text("AIRFLOW_HOME=/tmp\n")
    unit = tmp_path / "airflow-rest-bridge.service"
    unit.write_text(
        unit_text.replace("/opt/airflow-rest-bridge/bin/airflow-rest-bridge", "/bin/true").replace(
            "/etc/airflow-rest-bridge/airflow-rest-bridge.env", str(env_file)
        )
    )
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = UNIT.read_text()
    result = verify(text, tmp_path)
    # No warning either: systemd ignores a line it cannot parse and only says so.
    assert (result.returncode, result.stderr) == (0, "")
    assert "Type=notify" in text and "ExecReload=" in text
    # A configuration error (2) or an unusable Airflow (3) is not restarted every 5 s.
    assert "\nRestartPreventExitStatus=2 3\n" in text
    broken = verify(text.replace("Type=notify", "Type=notify\nRestart=sometimes"), tmp_path)
    assert "restart specifier" in broken.stderr  # the check can fail


def daemon_cfg(home: Path, airflow_bin: str, extra: str = "") -> Path:
    cfg = home / f"service-{free_port()}.cfg"
    cfg.write_text(
        (home / "airflow.cfg").read_text() + f"airflow_executable = {airflow_bin}\n" + extra
    )
    return cfg


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)

    async def next(self) -> str:
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 4096), 120)
        return data.decode()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.airflow
async def test_sd_notify_ready_then_stopping_and_exit_0(
    airflow_home: Path, airflow_bin: str, tmp_path: Path
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        # WatchdogSec=0.2 s: systemd would expect a ping at least every 0.2 s.
        env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"}
        daemon = await start_daemon(daemon_cfg(airflow_home, airflow_bin), free_port(), env=env)
        ready = await notify.next()
        assert "READY=1" in ready.splitlines() and "STATUS=serving on" in ready
        ping = await notify.next()
        assert "WATCHDOG=1" in ping.splitlines() and "command(s) running" in ping
        daemon.signal(signal.SIGTERM)
        assert "STOPPING=1" in (await notify.next()).splitlines()
        assert await daemon.stop() == 0
    finally:
        notify.close()


@pytest.mark.airflow
async def test_sigterm_during_a_stream_stops_the_command_and_ends_the_stream(
    airflow_home: Path, airflow_bin: str
) -> None:
    port = free_port()
    daemon = await start_daemon(
        daemon_cfg(airflow_home, airflow_bin, "kill_grace_period = 1\n"), port
    )
    marker = f"sigterm-{port}.log"
    url = f"http://127.0.0.1:{port}{API}"
    async with ClientSession() as http:
        response = await http.get(
            url, params={"api": "scheduler", "stream": "true", "log-file": marker}
        )
        await response.content.readline()  # the scheduler runs and streams
        started = processes_with(marker)[0]
        group, session = process_group_of(started), session_of(started)
        daemon.signal(signal.SIGTERM)
        rest = (await response.read()).decode()
    last = rest.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith(TEXT_RESULT_PREFIX)
    result = json.loads(last.removeprefix(TEXT_RESULT_PREFIX))
    assert "daemon is stopping" in result["warning"]
    assert await daemon.stop() == 0
    assert live_members(group=group) == []
    assert live_members(session=session) == []


@pytest.mark.airflow
async def test_sighup_rotates_the_token_without_dropping_a_stream(
    airflow_home: Path, airflow_bin: str
) -> None:
    cfg = daemon_cfg(airflow_home, airflow_bin, "rest_api_plugin_expected_http_token = old-token\n")
    port = free_port()
    daemon: Daemon = await start_daemon(cfg, port)
    url = f"http://127.0.0.1:{port}{API}"
    header = "rest_api_plugin_http_token"
    try:
        async with ClientSession() as session:
            params = {
                "api": "test",
                "dag_id": "bridge_demo",
                "task_id": "slow_lines",
                "execution_date": unique_date(2025),
                "stream": "true",
            }
            stream = await session.get(url, params=params, headers={header: "old-token"})
            assert stream.status == 200
            cfg.write_text(cfg.read_text().replace("old-token", "new-token"))
            mark = len(daemon.lines)
            daemon.signal(signal.SIGHUP)
            await daemon.line_containing("configuration reloaded", after=mark)
            old = await session.get(url, params={"api": "version"}, headers={header: "old-token"})
            assert old.status == 403
            new = await session.get(url, params={"api": "version"}, headers={header: "new-token"})
            assert new.status == 200
            text = (await stream.read()).decode()
        result = json.loads(text.rstrip("\n").rsplit("\n", 1)[-1].removeprefix(TEXT_RESULT_PREFIX))
        assert "second line" in text and result["exit_code"] == 0
        # A bad configuration is refused and the running one stays.
        cfg.write_text(cfg.read_text() + "listen_port = not-a-port\n")
        mark = len(daemon.lines)
        daemon.signal(signal.SIGHUP)
        await daemon.line_containing("reload refused", after=mark)
        async with ClientSession() as session:
            again = await session.get(url, params={"api": "version"}, headers={header: "new-token"})
            assert again.status == 200
    finally:
        assert await daemon.stop() == 0


@pytest.mark.airflow
async def test_sigterm_during_a_deploy_stops_its_import_check(
    airflow_home: Path, airflow_bin: str
) -> None:
    """deploy_dag's import check is a command like any other: SIGTERM stops it, the call
    says so, nothing lands, and the audit log has its line."""
    port = free_port()
    daemon = await start_daemon(
        daemon_cfg(airflow_home, airflow_bin, "kill_grace_period = 1\n"), port
    )
    marker = new_marker("sigterm_deploy")
    source = "import time\ntime.sleep(600)\n" + DAG_SOURCE.format(dag_id=marker, task_id="t")
    form = FormData()
    form.add_field("dag_file", source.encode(), filename=f"{marker}.py")
    async with ClientSession() as session:
        posting = asyncio.ensure_future(
            session.post(f"http://127.0.0.1:{port}{API}?api=deploy_dag", data=form)
        )
        async with asyncio.timeout(120):
            while not processes_with(marker):  # until the import check runs: nothing tells
                assert not posting.done(), await (await posting).text()
                await asyncio.sleep(0.05)
        daemon.signal(signal.SIGTERM)
        response = await asyncio.wait_for(posting, timeout=60)
        body = await response.json()
    assert response.status == 503, body
    assert body["output"] == "the daemon is stopping: nothing was deployed"
    assert await daemon.stop() == 0
    assert processes_with(marker) == []
    assert not (airflow_home / "dags" / f"{marker}.py").exists()
    audit = [line for line in daemon.lines if "bridge.audit" in line and "api=deploy_dag" in line]
    assert (
        len(audit) == 1
        and "dag_check.py" in audit[0]
        and audit[0].rstrip().endswith("import check")
    )
