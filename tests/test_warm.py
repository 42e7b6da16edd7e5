"""The warm helper without Airflow: what happens when it cannot start, and the exit-code
rules its children follow (the console script's)."""

from __future__ import annotations

import array
import contextlib
import importlib
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.airflow_side import warm_child, warm_helper, warm_worker
from bridge.catalogue.installed import AirflowInfo
from bridge.config import settings as config
from bridge.http.app import create_app
from tests.helpers import API, FAKE_AIRFLOW

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize(
    ("value", "code"),
    [(None, 0), (0, 0), (3, 3), (256, 0), (-1, 255), ("a message", 1)],
)
def test_exit_codes_follow_sys_exit(
    value: object, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert warm_child.exit_code(value) == code
    if isinstance(value, str):
        assert capsys.readouterr().err == "a message\n"


async def test_a_helper_that_cannot_start_leaves_the_cold_cli_working(
    aiohttp_client: Any,
    tmp_path: Path,
    fake_airflow_info: AirflowInfo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "dags").mkdir()
    settings = config.Settings(
        airflow_home=tmp_path,
        dags_folder=tmp_path / "dags",
        airflow_executable=str(FAKE_AIRFLOW),
        airflow_python=sys.executable,  # this interpreter has no Airflow to import
        warm_helper=True,
    )
    client = await aiohttp_client(create_app(settings, fake_airflow_info))
    state = (await (await client.get("/health")).json())["warm_helper"]
    assert state["state"] == "failed"
    assert "No module named 'airflow'" in state["reason"]
    assert "commands run with the cold CLI" in caplog.text
    response = await client.get(
        API, params={"api": "test", "dag_id": "m", "task_id": "ok", "execution_date": "2024-01-01"}
    )
    assert response.status == 200
    assert 'desc="cold"' in response.headers["Server-Timing"]


def test_the_helper_reports_the_modules_that_did_not_import(tmp_path: Path) -> None:
    """Warming up imports every CLI command module; one that fails is named (in /health),
    one of another Airflow major that simply does not exist is not."""
    package = tmp_path / "airflow"
    commands = package / "cli" / "commands"
    commands.mkdir(parents=True)
    files = {
        package / "__init__.py": "__version__ = '9.9.9'\n",
        package / "__main__.py": "def main():\n    return 0\n",
        package / "configuration.py": (
            "AIRFLOW_CONFIG = ''\n"
            "class _Conf:\n"
            "    def get(self, *args, **kwargs):\n"
            "        return ''\n"
            "conf = _Conf()\n"
        ),
        package / "cli" / "__init__.py": "",
        package / "cli" / "cli_parser.py": "def get_parser():\n    return None\n",
        commands / "__init__.py": "",
        commands / "fine_command.py": "",
        commands / "broken_command.py": "raise RuntimeError('broken on purpose')\n",
    }
    for path, text in files.items():
        path.write_text(text)
    script = (
        "import json; from bridge.airflow_side import warm_up as w; print(json.dumps(w.warm_up()))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["version"] == "9.9.9"
    failed = facts["failed_imports"]
    assert failed["airflow.cli.commands.broken_command"] == "RuntimeError: broken on purpose"
    assert "airflow.cli.commands.fine_command" not in failed
    assert "airflow.models" not in failed  # not in this Airflow at all: nothing to report


@pytest.mark.parametrize(
    ("words", "taken"),
    [
        (["variables", "get", "--", "k"], True),
        (["dags", "list", "-o", "json"], True),
        (["tasks", "state", "--", "d", "t", "2024-01-01"], True),
        (["version"], True),
        (["variables", "set", "--", "k", "v"], False),
        (["tasks", "test", "--", "d", "t"], False),
        (["dags", "--", "list"], False),
        (["--help"], False),
        ([], False),
    ],
)
def test_workers_take_only_the_read_only_commands(words: list[str], taken: bool) -> None:
    assert warm_worker.takes(["airflow", *words]) is taken


def test_a_worker_forgets_what_a_command_left_behind(tmp_path: Path) -> None:
    """Modules from outside the installation (DAG folders), sys.path entries and logging
    changes go; what the installation provides stays imported."""
    (tmp_path / "left_by_a_dag_file.py").write_text("VALUE = 1\n")
    logger = logging.getLogger("bridge.tests.worker")
    console = logging.StreamHandler(sys.stdout)
    logger.addHandler(console)
    sys.path.insert(0, str(tmp_path))
    try:
        baseline = warm_worker.Baseline()
        importlib.import_module("left_by_a_dag_file")
        stdlib = next(name for name in ("colorsys", "sched", "netrc") if name not in sys.modules)
        importlib.import_module(stdlib)
        console.setStream(sys.stderr)  # as Airflow 3 does for commands taking -o
        sys.path.append(str(tmp_path / "added_by_a_dag_file"))
        os.environ["BRIDGE_TEST_SET_BY_A_COMMAND"] = "1"
        extra = logging.NullHandler()
        logger.addHandler(extra)
        logger.setLevel(logging.DEBUG)
        assert baseline.end_command(3) == 3
        assert baseline.restore()
        assert "left_by_a_dag_file" not in sys.modules
        assert stdlib in sys.modules
        assert console.stream is sys.stdout
        assert logger.handlers == [console]
        assert logger.level == logging.NOTSET
        assert str(tmp_path / "added_by_a_dag_file") not in sys.path
        assert "BRIDGE_TEST_SET_BY_A_COMMAND" not in os.environ
    finally:
        sys.path.remove(str(tmp_path))
        logger.removeHandler(console)


def test_a_worker_tells_the_exit_first_and_takes_the_next_command_once_ready(
    tmp_path: Path,
) -> None:
    """The protocol a worker speaks with the helper: per command its exit (the output pipes
    already closed), then ``ready``; after its last command (MAX_COMMANDS) it says so and
    goes."""
    package = tmp_path / "airflow"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import sys\ndef main():\n    print(' '.join(sys.argv[1:]))\n    return len(sys.argv)\n"
    )
    helper_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    script = (
        "import socket, sys; from bridge.airflow_side import warm_worker as w; "
        f"w.MAX_COMMANDS = 2; sys.exit(w.serve(socket.socket(fileno={worker_end.fileno()})))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    worker = subprocess.Popen(
        [sys.executable, "-c", script], env=env, pass_fds=[worker_end.fileno()]
    )
    worker_end.close()
    try:
        for words, last in ((["variables", "get", "k"], False), (["version"], True)):
            read_out, write_out = os.pipe()
            read_err, write_err = os.pipe()
            request = {"argv": ["airflow", *words], "env": {"BRIDGE_TEST": "1"}}
            helper_end.sendmsg(
                [json.dumps(request).encode()],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [write_out, write_err]))],
            )
            os.close(write_out)
            os.close(write_err)
            helper_end.settimeout(60)
            assert json.loads(helper_end.recv(4096)) == {"exit": len(words) + 1, "last": last}
            with os.fdopen(read_out) as out, os.fdopen(read_err) as err:
                assert out.read() == " ".join(words) + "\n"  # whole, and ended: pipes closed
                assert err.read() == ""
            if not last:
                assert json.loads(helper_end.recv(4096)) == {"ready": True}
        assert worker.wait(timeout=60) == 0  # its last command: it went on its own
        assert helper_end.recv(4096) == b""
    finally:
        helper_end.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_worker_given_a_read_while_it_puts_things_back_takes_no_other_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The helper gives a read to a worker still putting things back after its last command
    (it reads it once ready); that worker's ``ready`` for the last command must not make it
    look idle while the read it was given runs."""
    monkeypatch.setattr(warm_helper, "MAX_WORKERS", 1)  # no new worker: a child would run it
    control, daemon = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    helper = warm_helper.Helper(control)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    worker = warm_worker.Worker(ours, ready=False)  # its last command's exit is told
    helper.workers[4242] = worker
    opened: list[int] = []

    def command() -> array.array[int]:
        out, err, (report, daemon_end) = os.pipe(), os.pipe(), socket.socketpair()
        opened.extend([out[0], out[1], err[0], err[1], daemon_end.detach()])
        return array.array("i", [out[1], err[1], report.detach()])

    try:
        assert helper.hand_to_worker(b"{}", command())  # better than a fork
        assert worker.report is not None
        helper.take_answer(4242, worker, {"ready": True})  # the last command's
        assert not worker.ready
        second = command()
        assert not helper.hand_to_worker(b"{}", second)  # busy: a child gets it
        os.close(second[2])
        helper.take_answer(4242, worker, {"exit": 0, "last": False})  # the read's
        helper.take_answer(4242, worker, {"ready": True})
        assert worker.ready
        assert worker.report is None
        assert helper.hand_to_worker(b"{}", command())
        helper.take_answer(4242, worker, {"exit": 0, "last": True})
        assert 4242 not in helper.workers  # it takes no more: not even while it goes
    finally:
        for fd in opened:
            with contextlib.suppress(OSError):
                os.close(fd)
        for sock in (control, daemon, ours, theirs):
            sock.close()
