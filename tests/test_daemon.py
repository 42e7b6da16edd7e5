"""The daemon as an operator starts it: the console script, its flags, config errors, and a
real start/serve/SIGTERM cycle against the real Airflow."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.helpers import (
    API,
    FAKE_AIRFLOW,
    Daemon,
    fault,
    free_port,
    new_marker,
    read_until,
    start_daemon,
    write_cfg,
)


def run_bridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_help_documents_the_flags() -> None:
    result = run_bridge("--help")
    assert result.returncode == 0
    for flag in ("--host", "--port", "--config", "AIRFLOW_CONFIG"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("listen_port = eighty", "listen_port"),
        ("max_concurrent_commands = 0", "max_concurrent_commands"),
        ("kill_on_disconnect = perhaps", "kill_on_disconnect"),
    ],
)
def test_a_malformed_value_is_one_clear_error(tmp_path: Path, section: str, key: str) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", section)
    result = run_bridge("--config", str(cfg))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and key in errors[0]


def test_under_journald_lines_carry_no_timestamp(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", "listen_port = eighty")
    plain = run_bridge("--config", str(cfg))
    journal = run_bridge("--config", str(cfg), env={**os.environ, "JOURNAL_STREAM": "8:123"})
    assert plain.stderr[:2] == "20" and plain.stderr.count("ERROR") == 1
    assert journal.stderr.startswith("ERROR bridge: configuration error")


def test_remote_bind_without_token_is_refused(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", "")
    result = run_bridge("--config", str(cfg), "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "allow_unauthenticated_remote_access" in result.stderr


def test_an_unusable_airflow_stops_startup(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", f"airflow_executable = {tmp_path / 'missing'}")
    result = run_bridge("--config", str(cfg), "--port", str(free_port()))
    assert result.returncode == 3
    assert "cannot use Airflow" in result.stderr
    assert "warm helper" not in result.stderr  # it is the airflow that is missing
    # One line, which says what to set; no traceback of a detection command left behind.
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "set airflow_executable" in result.stderr


def test_a_sighup_while_the_daemon_imports_is_kept_for_later() -> None:
    """SIGHUP's default action ends a process: bridge.launch catches it before the imports
    that take most of a second, and remembers it once."""
    code = (
        "import os, signal\n"
        "from bridge import launch\n"
        "launch.catch_early_sighups()\n"
        "os.kill(os.getpid(), signal.SIGHUP)\n"
        "import bridge.cli\n"
        "print(launch.sighup_pending(), launch.sighup_pending())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


def _catches_sighup(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGHUP - 1)))


async def test_a_sighup_as_soon_as_the_daemon_catches_one_does_not_end_it(
    tmp_path: Path,
) -> None:
    cfg = write_cfg(
        tmp_path / "airflow.cfg", f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "--config", str(cfg), "--port", str(free_port()),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    daemon = Daemon(proc)
    try:
        # No event says "the handler is set": look at the kernel's record of it.
        while not _catches_sighup(proc.pid):
            assert proc.returncode is None
            await asyncio.sleep(0.001)
        proc.send_signal(signal.SIGHUP)
        await daemon.line_containing("serving on")
        assert proc.returncode is None
    finally:
        await daemon.stop()


def test_an_airflow_python_that_is_not_there_stops_startup(tmp_path: Path) -> None:
    section = f"airflow_executable = {FAKE_AIRFLOW}\nairflow_python = {tmp_path / 'python'}"
    cfg = write_cfg(tmp_path / "airflow.cfg", section)
    result = run_bridge("--config", str(cfg), "--port", str(free_port()))
    assert result.returncode == 3
    assert f"airflow_python = {tmp_path / 'python'}: no such executable file" in result.stderr


def test_a_jobs_database_out_of_reach_is_exit_code_5_without_its_password(tmp_path: Path) -> None:
    nothing_there = free_port()
    url = f"postgresql://bridge:pa55word@127.0.0.1:{nothing_there}/jobs"
    section = f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\njobs_database = {url}"
    cfg = write_cfg(tmp_path / "airflow.cfg", section)
    result = run_bridge("--config", str(cfg), "--port", str(free_port()))
    assert result.returncode == 5, result.stderr
    said = [line for line in result.stderr.splitlines() if "cannot use jobs_database" in line]
    assert len(said) == 1 and "ConnectionRefusedError" in said[0], result.stderr
    assert "pa55word" not in result.stderr and "Traceback" not in result.stderr


async def _get(url: str, **params: str) -> tuple[int, Any]:
    async with ClientSession() as session, session.get(url, params=params) as response:
        return response.status, json.loads(await response.text())


@pytest.mark.airflow
async def test_real_daemon_serves_the_api(airflow_home: Path, airflow_bin: str) -> None:
    cfg = airflow_home / "airflow.cfg"
    daemon_cfg = tmp_cfg = airflow_home / "daemon.cfg"
    tmp_cfg.write_text(cfg.read_text() + f"airflow_executable = {airflow_bin}\n")
    port = free_port()
    daemon = await start_daemon(daemon_cfg, port)
    try:
        status, body = await _get(f"http://127.0.0.1:{port}{API}", api="list_dags")
        assert status == 200 and "bridge_demo" in body["output"]["stdout"]
        status, page = await _get(f"http://127.0.0.1:{port}/health")
        assert page["airflow_version"].split(".")[0] in ("2", "3")
    finally:
        assert await daemon.stop() == 0


def test_a_port_already_bound_is_exit_code_4_before_airflow_runs(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", f"airflow_executable = {FAKE_AIRFLOW}")
    record = tmp_path / "argv.jsonl"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "FAKE_AIRFLOW_RECORD": str(record)}
        result = run_bridge("--config", str(cfg), "--port", str(port), env=env)
    assert result.returncode == 4
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    # Found first: no Airflow detection, no warm helper (the fake records every command).
    assert not record.exists(), record.read_text()


async def test_sighup_reloads_limits_and_keeps_what_needs_a_restart(tmp_path: Path) -> None:
    """A reload changes max_concurrent_commands at once; the listen address, the airflow
    executable and the warm helper stay as they were until the next start, and the log says
    so."""
    gate = tmp_path / "gate"
    base = f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\n"
    limits = "max_concurrent_commands = 1\nmax_waiting_calls = 0"  # over the limit: 429
    cfg = write_cfg(tmp_path / "airflow.cfg", base + limits)
    port = free_port()
    daemon = await start_daemon(cfg, port, env={**os.environ, "FAKE_AIRFLOW_GATE": str(gate)})
    url = f"http://127.0.0.1:{port}{API}"
    try:
        async with (
            ClientSession() as session,
            session.get(url, params=fault(new_marker(), "until_gate", stream="true")) as held,
        ):
            await read_until(held, b"tick 0")
            assert (await _get(url, **fault(new_marker(), "ok")))[0] == 429
            changed = base.replace("warm_helper = false", "warm_helper = true")
            changed += "max_concurrent_commands = 2\nlisten_host = 127.0.0.2\n"
            write_cfg(cfg, changed.replace(str(FAKE_AIRFLOW), "/nowhere/airflow"))
            seen = len(daemon.lines)
            daemon.signal(signal.SIGHUP)
            await daemon.line_containing("configuration reloaded", after=seen)
            restart_only = daemon.lines[await daemon.line_containing("next start", after=seen)]
            for key in ("listen_host", "airflow_executable", "warm_helper"):
                assert key in restart_only
            status, body = await _get(url, **fault(new_marker(), "ok"))
            assert status == 200, body  # the new limit, at the old address, with the old airflow
            assert body["airflow_cmd"].startswith(str(FAKE_AIRFLOW))
            gate.touch()
            await held.read()
    finally:
        assert await daemon.stop() == 0


@pytest.mark.parametrize("value", ["70000", "0", "eighty"])
def test_a_malformed_port_flag_is_one_clear_error_before_airflow_is_asked(
    tmp_path: Path, value: str
) -> None:
    # An airflow that cannot run: asking it would be exit code 3, not 2.
    cfg = write_cfg(tmp_path / "airflow.cfg", "airflow_executable = /nowhere/airflow")
    result = run_bridge("--config", str(cfg), "--port", value)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and f"--port {value}: must be a TCP port" in errors[0]


async def test_sighup_while_airflow_is_detected_is_a_reload_once_serving(tmp_path: Path) -> None:
    """systemctl reload right after start: the daemon must not die of it (SIGHUP's default)."""
    record = tmp_path / "argv.jsonl"
    cfg = write_cfg(tmp_path / "airflow.cfg", f"airflow_executable = {FAKE_AIRFLOW}")
    env = {**os.environ, "FAKE_AIRFLOW_RECORD": str(record), "FAKE_AIRFLOW_SLOW_START": "3"}
    env["PYTHONASYNCIODEBUG"] = "1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "--config", str(cfg), "--port", str(free_port()),
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    daemon = Daemon(proc)
    try:
        async with asyncio.timeout(60):
            while not record.exists() or '"version"' not in record.read_text():
                await asyncio.sleep(0.05)  # until the (slow) detection runs: nothing tells
        daemon.signal(signal.SIGHUP)
        serving = await daemon.line_containing("serving on")
        await daemon.line_containing("configuration reloaded", after=serving)
    finally:
        assert await daemon.stop() == 0


async def test_a_second_daemon_on_the_jobs_folder_leaves_a_live_ones_jobs_alone(
    tmp_path: Path,
) -> None:
    """Two daemons may share an Airflow home, its jobs folder included: one that starts while
    the other runs a job neither takes it for its own nor marks it lost. Once its daemon is
    gone (SIGKILL: the kernel lets go of what it held), the next start marks it lost."""
    jobs_folder, gate = tmp_path / "jobs", tmp_path / "gate"
    env = {**os.environ, "FAKE_AIRFLOW_GATE": str(gate)}

    def cfg(name: str) -> Path:
        (tmp_path / name).mkdir(exist_ok=True)
        settings = f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\n"
        return write_cfg(tmp_path / name / "airflow.cfg", f"{settings}jobs_folder = {jobs_folder}")

    ports = {"first": free_port(), "second": free_port(), "third": free_port()}
    daemons = {"first": await start_daemon(cfg("first"), ports["first"], env=env)}

    async def job(session: ClientSession, daemon: str, location: str) -> tuple[int, Any]:
        async with session.get(f"http://127.0.0.1:{ports[daemon]}{location}") as response:
            return response.status, await response.json()

    try:
        async with ClientSession() as session:
            params = {**fault(new_marker(), "until_gate"), "detach": "true"}
            first = f"http://127.0.0.1:{ports['first']}"
            async with session.get(f"{first}{API}", params=params) as started:
                location = started.headers["Location"]
            async with session.get(f"{first}{location}/output") as following:
                await read_until(following, b"tick 0")  # it runs
            daemons["second"] = await start_daemon(cfg("second"), ports["second"], env=env)
            assert (await job(session, "second", location))[0] == 404
            status, listed = await job(session, "second", location.rsplit("/", 1)[0])
            assert status == 200 and listed["jobs"] == [], listed
            status, running = await job(session, "first", location)
            assert status == 200 and running["state"] == "running", running
            killed = daemons.pop("first")
            killed.signal(signal.SIGKILL)
            # Reaped before the next start: the kernel lets go of a process's locks as it
            # exits, which kill() returning does not mean; and no zombie outlives the test.
            assert await killed.wait() == -signal.SIGKILL
            # The first daemon's home: its ledger stops the command it left running.
            daemons["third"] = await start_daemon(cfg("first"), ports["third"], env=env)
            status, lost = await job(session, "third", location)
            assert status == 200 and lost["state"] == "lost", lost
    finally:
        gate.touch()
        for daemon in daemons.values():
            assert await daemon.stop() == 0
