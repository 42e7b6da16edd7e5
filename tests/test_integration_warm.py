"""The warm helper against the real Airflow: commands run through it with the cold CLI's
output, its faults (death mid-command, a changed airflow.cfg) fall back to the cold CLI and
heal, and nothing it started outlives it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.catalogue.installed import AirflowInfo
from bridge.config import settings as config
from bridge.http.app import create_app
from bridge.http.keys import WARM_HELPER
from bridge.offload import in_thread
from bridge.process.pipes import OutputPipes
from bridge.process.warm import HELPER_SCRIPT, WarmHelper
from tests.helpers import (
    API,
    airflow_env,
    app_of,
    call,
    call_ok,
    cli_async,
    commands_of,
    live_members,
    read_until,
    session_of,
    slow_lines,
    unique_date,
    warm_mode,
)

HELPER_FOLDER = HELPER_SCRIPT.parent  # warm_patches.py beside it, run as the helper runs it

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(not warm_mode(), reason="BRIDGE_TEST_WARM=0: the cold CLI run"),
]


@pytest.fixture
async def own_client(
    aiohttp_client: Any, settings: config.Settings, airflow_info: AirflowInfo
) -> AsyncIterator[TestClient[Any, Any]]:
    """An app that starts (and may lose) a helper of its own, not the session's."""
    app = create_app(replace(settings, warm_helper=True), airflow_info)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    yield client


def helper_of(client: TestClient[Any, Any]) -> WarmHelper:
    return app_of(client)[WARM_HELPER]


async def health(client: TestClient[Any, Any]) -> dict[str, Any]:
    response = await client.get("/health")
    body: dict[str, Any] = await response.json()
    return body["warm_helper"]


async def until_ready(client: TestClient[Any, Any], restarts: int) -> dict[str, Any]:
    """Wait (bounded) for the helper's restart number ``restarts`` to finish."""
    give_up = time.monotonic() + 240
    while time.monotonic() < give_up:
        state = await health(client)
        if state["state"] == "ready" and state["restarts"] >= restarts:
            return state
        await asyncio.sleep(0.2)
    pytest.fail(f"the warm helper did not come back: {await health(client)}")


async def test_commands_run_warm_with_the_cold_output(
    own_client: TestClient[Any, Any], settings: config.Settings
) -> None:
    before = await health(own_client)
    assert before["state"] == "ready"
    assert before["pid"] == helper_of(own_client).status().pid
    response = await own_client.get(API, params={"api": "list_tasks", "dag_id": "bridge_demo"})
    body = await response.json()
    assert response.status == 200, body
    assert 'desc="warm"' in response.headers["Server-Timing"]
    assert body["output"]["stdout"] == await cli_async(settings, "tasks", "list", "bridge_demo")
    assert (await health(own_client))["launched"] == before["launched"] + 1


async def test_exit_codes_and_stderr_match_the_cold_cli(
    own_client: TestClient[Any, Any], settings: config.Settings
) -> None:
    status, body = await call(own_client, api="list_tasks", dag_id="no_such_dag_anywhere")
    assert status == 500
    assert body["exit_code"] == 1
    assert "no_such_dag_anywhere" in body["output"]["stderr"]


async def test_the_child_leads_its_own_session_and_ps_shows_its_command(
    own_client: TestClient[Any, Any],
) -> None:
    date = unique_date(2022)
    response = await own_client.get(
        API,
        params=slow_lines(date, stream="true"),
    )
    await read_until(response, b"first line")
    (command,) = commands_of(own_client).running
    assert command.warm
    assert command.pid is not None
    assert session_of(command.pid) == command.pid
    assert session_of(command.pid) != session_of(helper_of(own_client).status().pid or 0)
    assert date.encode() in (Path("/proc") / str(command.pid) / "cmdline").read_bytes()
    rest = await response.read()
    assert b'"exit_code": 0' in rest


async def test_a_helper_killed_mid_command_takes_no_command_with_it_and_comes_back(
    own_client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    helper = helper_of(own_client)
    old_pid = helper.status().pid
    assert old_pid is not None
    response = await own_client.get(
        API,
        params=slow_lines(unique_date(2022), stream="ndjson"),
    )
    await read_until(response, b"first line")
    (command,) = commands_of(own_client).running
    assert command.pid is not None
    os.kill(old_pid, signal.SIGKILL)
    rest = (await response.read()).decode()
    assert '"exit_code": -9' in rest  # nobody can tell its result any more: it was stopped
    assert live_members(session=command.pid) == []
    # The next call is answered: cold while the helper is away, or warm if its successor is
    # ready already (how soon depends on the machine: no race to assert on).
    response = await own_client.get(API, params={"api": "list_tasks", "dag_id": "bridge_demo"})
    assert response.status == 200
    state = await until_ready(own_client, restarts=1)
    assert state["pid"] != old_pid
    assert "warm helper restarting: the helper exited (code -9)" in caplog.text
    response = await own_client.get(API, params={"api": "list_tasks", "dag_id": "bridge_demo"})
    assert 'desc="warm"' in response.headers["Server-Timing"]


def children_titled(helper_pid: int, title: bytes) -> dict[int, bytes]:
    """The helper's children whose title (what ps shows) contains ``title``: pid -> title."""
    task = Path("/proc") / str(helper_pid) / "task" / str(helper_pid) / "children"
    found = {}
    for pid in task.read_text().split():
        try:
            shown = (Path("/proc") / pid / "cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if title in shown:
            found[int(pid)] = shown
    return found


def pipes_of(pid: int) -> set[str]:
    """The pipes a process has open, as /proc names them (pipe:[inode])."""
    fds = Path("/proc") / str(pid) / "fd"
    targets = set()
    for fd in fds.iterdir():
        try:
            targets.add(os.readlink(fd))
        except FileNotFoundError:
            continue
    return {target for target in targets if target.startswith("pipe:")}


def spare_children(helper_pid: int) -> set[int]:
    """The helper's children that wait for a command (forked ahead of need)."""
    return set(children_titled(helper_pid, b"spare child"))


async def until_spare(helper_pid: int, other_than: int = 0) -> int:
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        spares = spare_children(helper_pid) - {other_than}
        if spares:
            (spare,) = spares
            return spare
        await asyncio.sleep(0.05)
    pytest.fail(f"the helper {helper_pid} forked no spare child")


async def until_gone(session: int) -> None:
    give_up = time.monotonic() + 30
    while live_members(session=session) and time.monotonic() < give_up:
        await asyncio.sleep(0.05)
    assert live_members(session=session) == []


async def test_a_child_forked_ahead_runs_the_next_command_and_goes_with_the_helper(
    own_client: TestClient[Any, Any],
) -> None:
    state = await until_ready(own_client, restarts=0)
    # The warm-up steps that spare every command work (migration scripts, providers).
    shared = {
        "migration scripts",
        "providers configuration",
        "TLS context",
        "cron translations",
        "cron schedules",
    }
    assert not shared & set(state["failed_imports"])
    assert state["skipped_patches"] == {}  # each internal it replaces is as it expects
    spare = await until_spare(state["pid"])
    assert session_of(spare) == spare  # already a session of its own
    response = await own_client.get(API, params=slow_lines(unique_date(2022), stream="true"))
    await read_until(response, b"first line")
    (command,) = commands_of(own_client).running
    assert command.pid == spare
    next_spare = await until_spare(state["pid"], other_than=spare)
    assert b'"exit_code": 0' in await response.read()
    os.kill(state["pid"], signal.SIGKILL)
    await until_gone(next_spare)  # it saw the helper go, and went


# Timetables of every kind of cron schedule, as repr()s of their attributes.
TIMETABLES = """
import json, sys
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.timetables.trigger import CronTriggerTimetable
import pendulum
sys.path.insert(0, sys.argv[1])
import warm_patches
schedules = ["0 0 * * *", "@daily", "*/5 * * * 1-5", "0 0 1 * 1", "0 0 * * * *", "not cron"]
zones = ["UTC", "Europe/Berlin", pendulum.timezone("Asia/Tokyo")]
def built():
    return [
        {name: repr(value) for name, value in sorted(vars(timetable).items())}
        for schedule in schedules for zone in zones
        for timetable in (
            CronDataIntervalTimetable(schedule, zone),
            CronTriggerTimetable(schedule, timezone=zone),
        )
    ]
plain = built()
warm_patches.share_cron_schedules()
print(json.dumps([plain, built(), built()]))
"""


async def test_cron_schedules_checked_once_build_the_same_timetables(
    settings: config.Settings, airflow_info: AirflowInfo
) -> None:
    """The helper checks and describes each cron schedule once: every timetable built later
    (the first time and again) has the attributes it has without that."""
    assert airflow_info.python is not None
    run = await asyncio.create_subprocess_exec(
        airflow_info.python,
        "-c",
        TIMETABLES,
        str(HELPER_FOLDER),
        env=airflow_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await run.communicate()
    assert run.returncode == 0, err.decode()
    plain, first, again = json.loads(out)
    assert plain == first == again
    assert len(plain) == 36
    assert {"description": "'At 00:00'"}.items() <= plain[0].items()


async def test_a_spare_child_killed_while_waiting_costs_nothing_but_a_fork(
    own_client: TestClient[Any, Any],
) -> None:
    state = await until_ready(own_client, restarts=0)
    spare = await until_spare(state["pid"])
    os.kill(spare, signal.SIGKILL)
    await until_gone(spare)  # (a spare killed while taking a command: that command's -9)
    # A command that changes something: reads go to a worker, not to the spare.
    response = await own_client.get(
        API, params={"api": "variables", "cmd": "set", "key": "spare_test", "value": "1"}
    )
    assert response.status == 200, await response.text()
    assert 'desc="warm"' in response.headers["Server-Timing"]
    await until_spare(state["pid"], other_than=spare)
    assert (await health(own_client))["restarts"] == 0


async def test_reads_run_one_after_another_in_a_worker_that_stays(
    own_client: TestClient[Any, Any], settings: config.Settings
) -> None:
    state = await until_ready(own_client, restarts=0)
    # A changed value is read again, not remembered. Airflow 3 masks every value it reads,
    # warning once per process about one too short to mask ("42"): the worker puts the
    # masker back, and stays.
    for value in ("first", "42", "second"):
        await call_ok(own_client, api="variables", cmd="set", key="worker_var", value=value)
        response = await own_client.get(API, params={"api": "variables", "get": "worker_var"})
        body = await response.json()
        assert response.status == 200, body
        assert 'desc="warm"' in response.headers["Server-Timing"]
        assert body["output"]["stdout"] == await cli_async(
            settings, "variables", "get", "worker_var"
        )
        assert body["output"]["stdout"].strip() == value
    # One worker ran the three reads, and stays for the next one, in a session of its own.
    ((worker, title),) = children_titled(state["pid"], b"warm helper: worker").items()
    assert b"commands run: 3" in title
    assert session_of(worker) == worker
    # It keeps no command's output pipe open (the daemon would wait for their end), not
    # even the one of the command it was forked for: only the helper's own stdio.
    assert pipes_of(worker) <= pipes_of(state["pid"])
    os.kill(worker, signal.SIGKILL)  # a worker that died costs nothing but a fork
    await until_gone(worker)
    status, body = await call(own_client, api="variables", get="worker_var")
    assert status == 200, body
    assert (await health(own_client))["restarts"] == 0
    (worker,) = children_titled(state["pid"], b"warm helper: worker")
    os.kill(state["pid"], signal.SIGKILL)
    await until_gone(worker)  # it saw the helper go, and went


async def test_reads_at_once_beyond_the_workers_all_get_their_whole_answer(
    own_client: TestClient[Any, Any], settings: config.Settings
) -> None:
    """More reads than workers, again and again: a worker is given the next read while it
    still puts things back after its last one; none is lost or stopped on the way."""
    await until_ready(own_client, restarts=0)
    await call_ok(own_client, api="variables", cmd="set", key="many_reads", value="whole")

    tasks = await cli_async(settings, "tasks", "list", "bridge_demo")
    reads = [
        ({"api": "variables", "get": "many_reads"}, "whole\n"),
        ({"api": "list_tasks", "dag_id": "bridge_demo"}, tasks),  # slower: they overlap
    ]

    async def read(params: dict[str, str]) -> tuple[int, str]:
        status, body = await call(own_client, **params)
        return status, body["output"]["stdout"]

    answers = await asyncio.gather(*(read(params) for params, _ in reads * 32))
    assert answers == [(200, stdout) for _, stdout in reads * 32]
    assert (await health(own_client))["restarts"] == 0


async def test_a_stuck_worker_is_stopped_with_its_command_and_replaced(
    aiohttp_client: Any, settings: config.Settings, airflow_info: AirflowInfo
) -> None:
    quick = replace(settings, warm_helper=True, command_timeout=5.0, kill_grace_period=0.5)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(quick, airflow_info))
    state = await until_ready(client, restarts=0)
    await call_ok(client, api="variables", cmd="list")
    (worker,) = children_titled(state["pid"], b"warm helper: worker")
    os.kill(worker, signal.SIGSTOP)  # stuck: the next read goes to it and times out
    status, body = await call(client, api="variables", cmd="list")
    assert status == 504, body
    assert "timed out" in body["warning"]
    await until_gone(worker)  # its session was stopped: TERM, then KILL
    response = await client.get(API, params={"api": "variables", "cmd": "list"})
    assert response.status == 200, await response.text()
    assert 'desc="warm"' in response.headers["Server-Timing"]
    assert (await health(client))["restarts"] == 0
    assert worker not in children_titled(state["pid"], b"warm helper: worker")


async def test_a_changed_airflow_cfg_restarts_the_helper(
    own_client: TestClient[Any, Any], settings: config.Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert settings.config_path is not None
    original = settings.config_path.read_bytes()
    section, note = (
        b"[rest_api_plugin]\n",
        b"# the bridge's own section: Airflow reads none of it\n",
    )
    ours = original.replace(section, section + note, 1)
    assert ours != original
    try:
        # The bridge's own settings changed: nothing the helper imported did.
        settings.config_path.write_bytes(ours)
        response = await own_client.get(API, params={"api": "variables", "cmd": "list"})
        assert response.status == 200
        assert 'desc="warm"' in response.headers["Server-Timing"]
        assert (await health(own_client))["restarts"] == 0
        core = b"[core]\n"
        settings.config_path.write_bytes(ours.replace(core, core + b"# touched by the test\n", 1))
        response = await own_client.get(API, params={"api": "variables", "cmd": "list"})
        assert response.status == 200
        assert 'desc="cold"' in response.headers["Server-Timing"]
        await until_ready(own_client, restarts=1)
        assert f"warm helper restarting: {settings.config_path} changed" in caplog.text
    finally:
        settings.config_path.write_bytes(original)


async def test_closing_the_helper_stops_what_it_runs(
    settings: config.Settings, airflow_info: AirflowInfo, aiohttp_client: Any
) -> None:
    """The daemon going away (EOF on the control socket) stops the helper's commands."""
    assert airflow_info.python is not None
    env = settings.child_environment(os.environ)
    helper = WarmHelper(airflow_info.python, settings.airflow_executable, env)
    helper.start()
    pipes = OutputPipes()
    try:
        await in_thread(helper.settled)
        argv = [settings.airflow_executable, "tasks", "test", "bridge_demo", "slow_lines"]
        argv.append(unique_date(2022))
        process = await helper.launch(argv, env, pipes)
        assert process is not None
        assert live_members(session=process.pid)
        await asyncio.to_thread(helper.close)
        assert live_members(session=process.pid) == []
        process.release()
    finally:
        pipes.close()
        await asyncio.to_thread(helper.close)


async def test_warm_helper_off_runs_cold(
    aiohttp_client: Any, settings: config.Settings, airflow_info: AirflowInfo
) -> None:
    client = await aiohttp_client(create_app(replace(settings, warm_helper=False), airflow_info))
    assert (await health(client))["state"] == "off"
    body = await call_ok(client, api="list_tasks", dag_id="bridge_demo")
    assert "hello" in body["output"]["stdout"]


# Top-level code of a DAG file that changes the interpreter parsing it (as DAG files that
# patch things for their own tests do), none of which a worker puts back.
DAG_FILE_CHANGES = {
    "a patched Variable.get": (
        "from airflow.models.variable import Variable\n"
        "Variable.get = classmethod(lambda cls, *args, **kwargs: 'the value of a DAG file')\n"
    ),
    "a configuration value": (
        "from airflow.configuration import conf\nconf.set('core', 'default_task_retries', '7')\n"
    ),
    # (logging.disable and warnings filters alone: `tasks list` resets them itself.)
    "logging": (
        "import logging\n"
        "logging.getLogger().addFilter(lambda record: False)\n"
        "logging.disable(logging.CRITICAL)\n"
    ),
}
CHANGING_DAG = """
import datetime
try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
{change}
with DAG({dag_id!r}, schedule=None, start_date=datetime.datetime(2024, 1, 1)):
    pass
"""


@pytest.mark.parametrize("change", DAG_FILE_CHANGES)
async def test_a_dag_file_that_changes_the_interpreter_leaves_later_reads_as_the_cli(
    own_client: TestClient[Any, Any], settings: config.Settings, change: str
) -> None:
    """The worker that parsed such a file answers that command and runs nothing more: every
    later read answers as the plain CLI does."""
    state = await until_ready(own_client, restarts=0)
    key = "warm_fingerprint_var"
    await call_ok(own_client, api="variables", cmd="set", key=key, value="its value")
    cli = await cli_async(settings, "variables", "get", key)
    assert cli.strip() == "its value"
    # A worker for it. One may go after a read, where something of the interpreter
    # changed (a thread Airflow started, on a busy machine): read again until one stays.
    workers: dict[int, bytes] = {}
    for _ in range(5):
        await call_ok(own_client, api="variables", get=key)
        if len(workers := children_titled(state["pid"], b"warm helper: worker")) == 1:
            break
    (worker,) = workers
    dag_id = f"bridge_warm_changes_{list(DAG_FILE_CHANGES).index(change)}_{os.getpid()}"
    dag_file = settings.dags_folder / f"{dag_id}.py"
    try:
        dag_file.write_text(CHANGING_DAG.format(change=DAG_FILE_CHANGES[change], dag_id=dag_id))
        body = await call_ok(own_client, api="list_tasks", dag_id=dag_id)  # it parses it
        assert body["exit_code"] == 0
        for _ in range(3):
            response = await own_client.get(API, params={"api": "variables", "get": key})
            body = await response.json()
            assert response.status == 200, body
            assert 'desc="warm"' in response.headers["Server-Timing"]
            assert body["output"]["stdout"] == cli
        await until_gone(worker)  # it ran nothing more
    finally:
        dag_file.unlink(missing_ok=True)
        await cli_async(settings, "dags", "delete", "--yes", dag_id, check=False)
