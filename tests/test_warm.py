"""The warm helper without Airflow: what happens when it cannot start, and the exit-code
rules its children follow (the console script's)."""

from __future__ import annotations

import array
import contextlib
import importlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.airflow_side import warm_child, warm_helper, warm_worker
from bridge.airflow_side import warm_protocol as protocol
from bridge.catalogue.installed import AirflowInfo
from bridge.config import settings as config
from bridge.http.app import create_app
from bridge.process import warm
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


# A stand-in Airflow that warm_up() can warm up: a parser, a configuration, command modules.
WARMING_AIRFLOW_FILES = {
    "__init__.py": "__version__ = '9.9.9'\n",
    "__main__.py": "def main():\n    return 0\n",
    "configuration.py": (
        "AIRFLOW_CONFIG = ''\n"
        "class _Conf:\n"
        "    def get(self, *args, **kwargs):\n"
        "        return ''\n"
        "conf = _Conf()\n"
    ),
    "cli/__init__.py": "",
    "cli/cli_parser.py": "def get_parser():\n    return None\n",
    "cli/commands/__init__.py": "",
    "cli/commands/fine_command.py": "",
    "cli/commands/broken_command.py": "raise RuntimeError('broken on purpose')\n",
}


def write_airflow(tmp_path: Path, files: dict[str, str]) -> dict[str, str]:
    """Write a stand-in Airflow into ``tmp_path``; the environment that imports it."""
    for name, text in files.items():
        (tmp_path / "airflow" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "airflow" / name).write_text(text)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}


def warmed_up(tmp_path: Path, files: dict[str, str]) -> dict[str, Any]:
    """What warm_up() reports for a stand-in Airflow, and (``patched_init``) the name of
    the cron timetables' __init__ once it is done, if the stand-in has one."""
    script = (
        "import json, sys; from bridge.airflow_side import warm_up as w; facts = w.warm_up(); "
        "cron = sys.modules.get('airflow.timetables._cron'); "
        "facts['patched_init'] = cron and cron.CronMixin.__init__.__qualname__; "
        "print(json.dumps(facts))"
    )
    env = write_airflow(tmp_path, files)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    facts: dict[str, Any] = json.loads(result.stdout)
    return facts


def test_the_helper_reports_the_modules_that_did_not_import(tmp_path: Path) -> None:
    """Warming up imports every CLI command module; one that fails is named (in /health),
    one of another Airflow major that simply does not exist is not."""
    facts = warmed_up(tmp_path, WARMING_AIRFLOW_FILES)
    assert facts["version"] == "9.9.9"
    failed = facts["failed_imports"]
    assert failed["airflow.cli.commands.broken_command"] == "RuntimeError: broken on purpose"
    assert "airflow.cli.commands.fine_command" not in failed
    assert "airflow.models" not in failed  # not in this Airflow at all: nothing to report


# Airflow's cron timetables, as the helper's patch expects them, with another signature, and
# with one that builds something else each time (what it shares would differ).
CRON_MIXINS = {
    "as expected": "class CronMixin:\n    def __init__(self, cron, timezone):\n"
    "        self.expression = cron\n",
    "another signature": "class CronMixin:\n    def __init__(self, expression, timezone):\n"
    "        self.expression = expression\n",
    "another behaviour": "import itertools\nbuilt = itertools.count()\n"
    "class CronMixin:\n    def __init__(self, cron, timezone):\n"
    "        self.number = next(built)\n",
}


@pytest.mark.parametrize(
    ("cron", "skipped"),
    [
        ("as expected", None),
        (
            "another signature",
            "airflow.timetables._cron.CronMixin.__init__ takes (self, expression, timezone), "
            "not (self, cron, timezone)",
        ),
        (
            "another behaviour",
            "airflow.timetables._cron.CronMixin.__init__: self-test failed "
            "(patched and unpatched results differ)",
        ),
    ],
    ids=list(CRON_MIXINS),
)
def test_an_internal_the_helper_replaces_is_checked_first(
    tmp_path: Path, cron: str, skipped: str | None
) -> None:
    """The helper replaces an internal only if it takes the parameters the replacement was
    written for and, replaced, gives what it gave before; else it stays and is named."""
    files = {
        **WARMING_AIRFLOW_FILES,
        "timetables/__init__.py": "",
        "timetables/_cron.py": CRON_MIXINS[cron],
    }
    facts = warmed_up(tmp_path, files)
    assert facts["skipped_patches"].get("cron schedules") == skipped
    assert "cron schedules" not in facts["failed_imports"]
    original = "CronMixin.__init__"
    assert (facts["patched_init"] == original) is (skipped is not None)


def test_health_names_a_replacement_the_helper_skipped(tmp_path: Path) -> None:
    """What /health shows of the helper (its status) names the internal it left alone."""
    files = {
        **WARMING_AIRFLOW_FILES,
        "timetables/__init__.py": "",
        "timetables/_cron.py": CRON_MIXINS["another signature"],
    }
    helper = warm.WarmHelper(sys.executable, "airflow", write_airflow(tmp_path, files))
    helper.start()
    try:
        helper.settled()
        status = helper.status().describe()
    finally:
        helper.close()
    assert status["state"] == "ready", status
    assert "takes (self, expression, timezone)" in status["skipped_patches"]["cron schedules"]


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
            request = protocol.Command(["airflow", *words], {"BRIDGE_TEST": "1"})
            helper_end.sendmsg(
                [request.encode()],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [write_out, write_err]))],
            )
            os.close(write_out)
            os.close(write_err)
            helper_end.settimeout(60)
            done = protocol.decode(helper_end.recv(4096), protocol.CommandDone)
            assert done == protocol.CommandDone(len(words) + 1, last)
            with os.fdopen(read_out) as out, os.fdopen(read_err) as err:
                assert out.read() == " ".join(words) + "\n"  # whole, and ended: pipes closed
                assert err.read() == ""
            if not last:
                ready = protocol.decode(helper_end.recv(4096), protocol.WorkerReady)
                assert ready == protocol.WorkerReady()
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
    # its last command's exit is told
    worker = warm_worker.Worker(ours, state=protocol.WorkerState.RESTORING)
    helper.workers[4242] = worker
    opened: list[int] = []
    read = protocol.Command(["airflow", "version"], {})

    def command() -> list[int]:
        out, err, (report, daemon_end) = os.pipe(), os.pipe(), socket.socketpair()
        opened.extend([out[0], out[1], err[0], err[1], daemon_end.detach()])
        return [out[1], err[1], report.detach()]

    try:
        assert helper.hand_to_worker(read, command())  # better than a fork
        assert worker.report is not None
        helper.take_answer(4242, worker, protocol.WorkerReady())  # the last command's
        assert worker.state is protocol.WorkerState.BUSY
        second = command()
        assert not helper.hand_to_worker(read, second)  # busy: a child gets it
        os.close(second[2])
        helper.take_answer(4242, worker, protocol.CommandDone(0, last=False))  # the read's
        helper.take_answer(4242, worker, protocol.WorkerReady())
        assert worker.state is protocol.WorkerState.IDLE
        assert worker.report is None
        assert helper.hand_to_worker(read, command())
        helper.take_answer(4242, worker, protocol.CommandDone(0, last=True))
        assert 4242 not in helper.workers  # it takes no more: not even while it goes
    finally:
        for fd in opened:
            with contextlib.suppress(OSError):
                os.close(fd)
        for sock in (control, daemon, ours, theirs):
            sock.close()


def test_a_retiring_helper_keeps_a_worker_until_the_read_it_was_given_is_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retiring helper lets its workers go once they are idle; a worker given a read while
    it put things back is busy when that ``ready`` arrives, and must not be dropped then (the
    read's report would close without its exit, and the daemon stop the read)."""
    control, daemon = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    helper = warm_helper.Helper(control)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    worker = warm_worker.Worker(ours, state=protocol.WorkerState.RESTORING)
    helper.workers[4242] = worker
    out, err, (report, daemon_end) = os.pipe(), os.pipe(), socket.socketpair()
    try:
        read = protocol.Command(["airflow", "version"], {})
        assert helper.hand_to_worker(read, [out[1], err[1], report.detach()])
        helper.retiring = True
        helper.take_answer(4242, worker, protocol.WorkerReady())  # the command before's
        assert helper.workers == {4242: worker}
        helper.take_answer(4242, worker, protocol.CommandDone(0, last=False))  # the read's
        helper.take_answer(4242, worker, protocol.WorkerReady())
        assert 4242 not in helper.workers  # idle now: it goes
        daemon_end.settimeout(10)
        lines = daemon_end.makefile("rb").read().splitlines()
        assert protocol.decode(lines[0], protocol.CommandStarted).outlives_command
        assert protocol.decode(lines[1], protocol.CommandExited).code == 0
    finally:
        for fd in (*out, *err):
            with contextlib.suppress(OSError):
                os.close(fd)
        for sock in (control, daemon, ours, theirs, daemon_end):
            sock.close()


# A stand-in Airflow for a worker: main() shows the working directory and the secrets cache it
# found, then leaves both changed, as a command may (a DAG file that calls chdir, a variable
# read through the cache).
FAKE_AIRFLOW_FILES = {
    "__init__.py": "",
    "secrets/__init__.py": "",
    "secrets/cache.py": (
        "class SecretCache:\n"
        "    cached = {}\n"
        "    @classmethod\n"
        "    def reset(cls):\n"
        "        cls.cached = {}\n"
    ),
    "__main__.py": (
        "import json, os, sys\n"
        "from airflow.secrets.cache import SecretCache\n"
        "def main():\n"
        "    print(json.dumps({'cwd': os.getcwd(), 'cached': sorted(SecretCache.cached)}))\n"
        "    SecretCache.cached['a_variable'] = 'its value'\n"
        "    os.chdir(sys.argv[-1])\n"
    ),
}


@contextlib.contextmanager
def worker_in_a_process(
    tmp_path: Path, files: dict[str, str] = FAKE_AIRFLOW_FILES
) -> Iterator[tuple[socket.socket, subprocess.Popen[bytes]]]:
    """A worker serving a stand-in Airflow (``files``) from ``tmp_path / "start"``, its
    modules imported beforehand (as the helper's warm-up does); its socket's helper end."""
    for name, text in files.items():
        (tmp_path / "airflow" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "airflow" / name).write_text(text)
    (tmp_path / "start").mkdir()
    helper_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    modules = [
        "airflow." + name.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for name in files
        if name != "__init__.py"
    ]
    script = (
        f"import socket, sys, {', '.join(modules)}; from bridge.airflow_side import warm_worker; "
        f"sys.exit(warm_worker.serve(socket.socket(fileno={worker_end.fileno()})))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    worker = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path / "start",
        env=env,
        pass_fds=[worker_end.fileno()],
        stderr=subprocess.PIPE,
    )
    worker_end.close()
    helper_end.settimeout(60)
    try:
        yield helper_end, worker
    finally:
        helper_end.close()
        if worker.poll() is None:
            worker.kill()
        worker.communicate()


def hand_over(helper_end: socket.socket, message: bytes) -> tuple[int, int]:
    """Give the worker ``message`` with a command's stdout and stderr; their read ends."""
    read_out, write_out = os.pipe()
    read_err, write_err = os.pipe()
    fds = array.array("i", [write_out, write_err])
    helper_end.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    os.close(write_out)
    os.close(write_err)
    return read_out, read_err


def what_two_commands_found(tmp_path: Path) -> list[dict[str, Any]]:
    """What the stand-in's main() found in a worker, at its first command and its second."""
    (tmp_path / "elsewhere").mkdir()
    found = []
    with worker_in_a_process(tmp_path) as (helper_end, _):
        for _ in range(2):
            argv = ["airflow", "variables", "get", str(tmp_path / "elsewhere")]
            out, err = hand_over(helper_end, protocol.Command(argv, {}).encode())
            assert protocol.decode(helper_end.recv(4096), protocol.CommandDone).code == 0
            with os.fdopen(out) as stdout, os.fdopen(err) as stderr:
                found.append(json.loads(stdout.read()))
                assert stderr.read() == ""
            assert protocol.decode(helper_end.recv(4096), protocol.WorkerReady)
    return found


def test_a_worker_puts_its_working_directory_back_after_a_command(tmp_path: Path) -> None:
    first, second = what_two_commands_found(tmp_path)
    assert first["cwd"] == second["cwd"] == str(tmp_path / "start")


def test_a_worker_empties_airflows_secrets_cache_after_a_command(tmp_path: Path) -> None:
    """A new process starts with an empty cache: a variable changed since is read afresh."""
    first, second = what_two_commands_found(tmp_path)
    assert first["cached"] == second["cached"] == []


def test_a_worker_refuses_a_command_of_another_protocol_version(tmp_path: Path) -> None:
    """It runs nothing, says why (on the helper's stderr, the daemon's log) and exits: the
    helper tells that exit as the command's."""
    argv = ["airflow", "variables", "get", str(tmp_path)]
    fields = json.loads(protocol.Command(argv, {}).encode())
    with worker_in_a_process(tmp_path) as (helper_end, worker):
        out, err = hand_over(helper_end, json.dumps({**fields, "protocol": 0}).encode())
        assert worker.wait(timeout=60) == protocol.EXIT_NOT_RUN
        assert helper_end.recv(4096) == b""  # no CommandDone
        with os.fdopen(out) as stdout, os.fdopen(err) as stderr:
            assert stdout.read() == stderr.read() == ""  # nothing ran, the pipes are closed
        assert worker.stderr is not None
        said = worker.stderr.read().decode()
    assert "a worker refused a message: a message of version 0, where this side speaks" in said


def test_a_helper_of_another_protocol_version_is_refused_at_the_hand_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper script from another version of the bridge (one upgraded under a running
    daemon) is never handed a command: /health says why."""
    older = tmp_path / "warm_helper.py"  # as the helper spoke before protocol versions
    older.write_text(
        "import json, socket, sys\n"
        "control = socket.socket(fileno=int(sys.argv[1]))\n"
        "control.send(json.dumps({'ready': True, 'version': '3.3.2', 'watch': []}).encode())\n"
    )
    monkeypatch.setattr(warm, "HELPER_SCRIPT", older)
    helper = warm.WarmHelper(sys.executable, "airflow", dict(os.environ))
    helper.start()
    try:
        helper.settled()
        status = helper.status()
        assert status.state == "failed"
        assert status.reason is not None
        assert "a message without a protocol version, where this side speaks" in status.reason
    finally:
        helper.close()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"kind": "retire"}, "a 'retire' message where 'command' was expected"),
        ({"kind": "command", "argv": ["airflow"]}, "a malformed 'command' message"),
        ({"kind": "command", "argv": "airflow", "env": {}}, "argv is not list[str]"),
        ({"kind": "command", "argv": ["airflow"], "env": {"N": 1}}, "env is not dict[str, str]"),
        ({"kind": "command", "argv": [], "env": {}, "protocol": 99}, "a message of version 99"),
    ],
)
def test_a_message_that_is_not_what_comes_next_is_refused(
    fields: dict[str, Any], error: str
) -> None:
    data = json.dumps({"protocol": protocol.PROTOCOL_VERSION, **fields}).encode()
    with pytest.raises(protocol.ProtocolError, match=re.escape(error)):
        protocol.decode(data, protocol.Command)


# A stand-in Airflow whose main() changes one thing a DAG file's top-level code could change
# (its last word says which), none of which a worker puts back; and what the worker says.
CHANGES = {
    "warnings": ("warnings.simplefilter('error')", "warnings"),
    "umask": ("os.umask(0o000)", "the umask"),
    "function": (
        "Variable.get = classmethod(lambda cls, key: 'the value of a DAG file')",
        "airflow.models.variable.Variable.get",
    ),
    "configuration": ("conf.set('core', 'dags_folder', '/elsewhere')", "Airflow's configuration"),
    "logging.disable": ("logging.disable(logging.CRITICAL)", "logging"),
    "signal": ("signal.signal(signal.SIGUSR1, lambda *args: None)", "signal handlers"),
    "thread": (
        "threading.Thread(target=threading.Event().wait, daemon=True).start()",
        "threads",
    ),
    # A masker's own state is put back (below); its class is not a command's to change.
    "masker": ("type(_secrets_masker()).min_length_to_mask = 1", "the secrets masker"),
}
CHANGING_AIRFLOW_FILES = {
    "__init__.py": "",
    "configuration.py": (
        "import configparser\n"
        "conf = configparser.ConfigParser()\n"
        "conf.read_dict({'core': {'dags_folder': '/dags'}})\n"
    ),
    "models/__init__.py": "",
    "models/variable.py": (
        "class Variable:\n    @classmethod\n    def get(cls, key):\n        return 'its value'\n"
    ),
    "utils/__init__.py": "",
    "utils/log/__init__.py": "",
    "utils/log/secrets_masker.py": (
        "import functools\n"
        "class Replacer:\n"
        "    pass\n"
        "class SecretsMasker:\n"
        "    _has_warned_short_secret = False\n"
        "    def __init__(self):\n"
        "        self.patterns = set()\n"
        "        self.replacer = Replacer()  # Airflow 2 keeps its own regexp object\n"
        "@functools.cache\n"
        "def _secrets_masker():\n"
        "    return SecretsMasker()\n"
    ),
    "__main__.py": (
        "import logging, os, signal, sys, threading, warnings\n"
        "from airflow.configuration import conf\n"
        "from airflow.models.variable import Variable\n"
        "from airflow.utils.log.secrets_masker import _secrets_masker\n"
        "KEPT = []\n"
        "def main():\n"
        "    if sys.argv[-1] == 'show_masker':\n"
        "        masker = _secrets_masker()\n"
        "        print(sorted(masker.patterns), type(masker)._has_warned_short_secret)\n"
        "        return\n"
        "    if sys.argv[-1] == 'mask':\n"
        "        KEPT.append(dict(vars(_secrets_masker())))  # no id of them is reused\n"
        "        _secrets_masker().patterns.add('a secret')\n"
        "        _secrets_masker().replacer = None\n"
        "        type(_secrets_masker())._has_warned_short_secret = True\n"
        "    print(Variable.get('k'))\n"
        + "".join(
            f"    if sys.argv[-1] == {name!r}:\n        {change}\n"
            for name, (change, _) in CHANGES.items()
        )
    ),
}


def test_what_a_command_added_to_the_secrets_masker_is_gone_for_the_next(tmp_path: Path) -> None:
    """Airflow 3 masks every value a command reads, and warns once per process about one too
    short to mask: the next command starts with the masker as a new process would."""
    with worker_in_a_process(tmp_path, CHANGING_AIRFLOW_FILES) as (helper_end, _):
        said = []
        for last in ("mask", "show_masker"):
            argv = ["airflow", "variables", "get", last]
            out, err = hand_over(helper_end, protocol.Command(argv, {}).encode())
            done = protocol.decode(helper_end.recv(4096), protocol.CommandDone)
            assert done == protocol.CommandDone(0, last=False)  # the worker stays
            assert protocol.decode(helper_end.recv(4096), protocol.WorkerReady)
            with os.fdopen(out) as stdout, os.fdopen(err):
                said.append(stdout.read())
        assert said == ["its value\n", "[] False\n"]


@pytest.mark.parametrize("change", [*CHANGES, "nothing"])
def test_a_worker_exits_after_a_command_that_changed_what_it_does_not_put_back(
    tmp_path: Path, change: str
) -> None:
    """A DAG file's top-level code can change anything in the worker's interpreter: the
    command still gets its answer, but the worker runs nothing more, and says why."""
    with worker_in_a_process(tmp_path, CHANGING_AIRFLOW_FILES) as (helper_end, worker):
        argv = ["airflow", "variables", "get", change]
        out, err = hand_over(helper_end, protocol.Command(argv, {}).encode())
        done = protocol.decode(helper_end.recv(4096), protocol.CommandDone)
        with os.fdopen(out) as stdout, os.fdopen(err) as stderr:
            assert stdout.read() == "its value\n"
            assert stderr.read() == ""
        if change == "nothing":
            assert done == protocol.CommandDone(0, last=False)
            assert protocol.decode(helper_end.recv(4096), protocol.WorkerReady)
            return
        assert done == protocol.CommandDone(0, last=True)
        assert worker.wait(timeout=60) == 0
        assert helper_end.recv(4096) == b""
        assert worker.stderr is not None
        said = worker.stderr.read().decode()
    _, named = CHANGES[change]
    assert f"a worker exits after its command 1, which changed {named}" in said
