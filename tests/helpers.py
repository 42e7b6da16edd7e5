"""What the tests share: settings for a test home, calling the bridge and the real CLI side
by side, reading streams, starting the real daemon, and looking for processes in /proc.

Test modules import from here (and get fixtures from conftest.py), never from each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from bridge.calls.formats import TEXT_RESULT_PREFIX
from bridge.catalogue.installed_cli import InstalledCli, parse_installed_cli
from bridge.config.load import load
from bridge.config.settings import Settings
from bridge.http.keys import COMMANDS
from bridge.http.metrics import METRICS
from bridge.jobs.webhooks import SIGNATURE_HEADER
from bridge.process.path import CommandPath
from bridge.service.loop_watch import BLOCKING_MESSAGE, HELD_MESSAGE
from bridge.text.noise import parse_json_output

TESTS = Path(__file__).parent
FAKE_AIRFLOW = TESTS / "fake_airflow.py"
API = "/admin/rest_api/api"  # the contract's endpoint, written out as users write it

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]

# A DAG file with one task, for deploy_dag; format with dag_id and task_id.
DAG_SOURCE = """
import datetime
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG
try:
    from airflow.providers.standard.operators.empty import EmptyOperator
except ImportError:
    from airflow.operators.empty import EmptyOperator

with DAG(dag_id="{dag_id}", start_date=datetime.datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="{task_id}")
"""


# -- settings and the environment ------------------------------------------------------------


def cli_argument(dest: str, *flags: str, kind: str = "value", **extra: Any) -> dict[str, Any]:
    """One argument as bridge/airflow_side/cli_parser.py describes it."""
    entry: dict[str, Any] = {"dest": dest, "flags": list(flags), "kind": kind, "nargs": None}
    entry["choices"] = None
    entry |= {"type": "bool" if kind == "flag" else "str", "required": False, "help": ""}
    return entry | extra


def installed_cli(version: str, *commands: tuple[list[str], list[dict[str, Any]]]) -> InstalledCli:
    """An installed CLI from commands in the shape cli_parser.py prints (words, arguments);
    the integration suite reads the real parser of each installed Airflow."""
    document = {
        "version": version,
        "commands": [{"words": w, "help": "", "arguments": a} for w, a in commands],
    }
    # Airflow's own warnings may come first on stdout's last lines; only the last one counts.
    return parse_installed_cli("a deprecation warning\n" + json.dumps(document) + "\n")


def settings_for(home: Path, airflow: str, **overrides: Any) -> Settings:
    environ = {"AIRFLOW_HOME": str(home)}
    settings = load(home / "airflow.cfg", environ)
    return replace(settings, airflow_executable=airflow, **overrides)


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment the bridge gives its children, for running the CLI directly."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return settings.child_environment(clean)


def warm_mode() -> bool:
    """`make test` runs the integration suite twice per Airflow version: through the warm
    helper (BRIDGE_TEST_WARM=1, the default) and with the cold CLI (BRIDGE_TEST_WARM=0)."""
    return os.environ.get("BRIDGE_TEST_WARM", "1") != "0"


def write_cfg(path: Path, section: str) -> Path:
    path.write_text(f"[core]\ndags_folder = {path.parent}\n\n[rest_api_plugin]\n{section}\n")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- calling the bridge and the CLI ------------------------------------------------------------


def app_of(client: TestClient[Any, Any]) -> web.Application:
    """The application a test client serves."""
    app = client.app
    assert app is not None  # a client made with aiohttp_client(app)
    return app


def commands_of(client: TestClient[Any, Any]) -> CommandPath:
    """The command path of the app a test client serves: its slots, running commands."""
    return app_of(client)[COMMANDS]


_days = itertools.count(1)


def unique_date(year: int = 2023) -> str:
    """A logical date no other test in this session uses (one day per call)."""
    n = next(_days)
    return f"{year}-{(n // 28) % 12 + 1:02d}-{n % 28 + 1:02d}T00:00:00"


async def call(client: TestClient[Any, Any], **params: str) -> tuple[int, dict[str, Any]]:
    """GET the API and return (HTTP status, envelope)."""
    response = await client.get(API, params=params)
    body = await response.json()
    assert body["http_response_code"] == response.status
    return response.status, body


async def call_ok(client: TestClient[Any, Any], **params: str) -> dict[str, Any]:
    status, body = await call(client, **params)
    assert status == 200, body
    assert body["status"] == "OK", body
    return body


async def upload(
    client: TestClient[Any, Any], filename: str, content: str, **fields: str
) -> tuple[int, dict[str, Any]]:
    """deploy_dag with ``content`` as the file ``filename``."""
    form = FormData()
    form.add_field("dag_file", content.encode(), filename=filename)
    for name, value in fields.items():
        form.add_field(name, value)
    response = await client.post(API, params={"api": "deploy_dag"}, data=form)
    return response.status, await response.json()


def raw_cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real Airflow CLI directly, the way the bridge would. Blocking: from an async
    test, use :func:`cli_async` (the loop must not block)."""
    result = subprocess.run(
        [settings.airflow_executable, *args],
        env=airflow_env(settings),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


async def cli_async(settings: Settings, *args: str, check: bool = True) -> str:
    """The CLI's stdout without Airflow's start-up noise, as an independent list of the
    noise lines each Airflow version prints defines it (never the bridge's own filter)."""
    result = await asyncio.to_thread(raw_cli, settings, *args, check=check)
    return without_known_noise(result.stdout)


async def cli_json(settings: Settings, *args: str) -> Any:
    return parse_json_output(await cli_async(settings, *args, "--output=json"))


async def dag_is_paused(settings: Settings, dag_id: str) -> bool:
    # `dags details`: before 2.9, `dags list` has no is_paused column.
    rows = await cli_json(settings, "dags", "details", dag_id)
    row = rows[0] if isinstance(rows, list) else rows
    return str(row["is_paused"]).lower() == "true"


# Lines Airflow 2.11 and 3.3 print on stdout at every CLI start in the suite's home, found by
# running the CLI by hand; written out here so that a bridge filter that drops more than these
# fails the parity tests.
KNOWN_NOISE_FRAGMENTS = (
    "Filling up the DagBag from",
    "DAG bundles loaded",
    "setup plugin",
    "Loading plugins",
    "Loaded API auth backend",
    "Using executor",
    "Could not import graphviz",
    "You might need to install the graphviz package",  # Airflow 3's second line of that
    "[py.warnings]",
    "Warning: ",  # a Python warning's first line (file.py:NN XyzWarning: ...)
)


def without_known_noise(text: str) -> str:
    """``text`` without the start-up lines listed in KNOWN_NOISE_FRAGMENTS (and the source
    line Python prints under a warning)."""
    kept: list[str] = []
    after_warning = False
    for line in text.splitlines(keepends=True):
        if any(fragment in line for fragment in KNOWN_NOISE_FRAGMENTS):
            after_warning = "Warning: " in line
            continue
        if after_warning and line.startswith("  "):
            after_warning = False
            continue
        after_warning = False
        kept.append(line)
    return "".join(kept)


def slow_lines(date: str, **extra: str) -> dict[str, str]:
    """The demo DAG's task that prints a line, sleeps, and prints another."""
    return {
        "api": "test",
        "dag_id": "bridge_demo",
        "task_id": "slow_lines",
        "execution_date": date,
        **extra,
    }


def fault(marker: str, mode: str, **extra: str) -> dict[str, str]:
    """The call that makes tests/fake_airflow.py run fault MODE, MARKER in its command line."""
    return {
        "api": "test",
        "dag_id": marker,
        "task_id": mode,
        "execution_date": "2024-01-02T03:04:05",
        **extra,
    }


def fuzzing_env(**extra: str) -> dict[str, str]:
    """The environment of a Schemathesis run with the bridge's own hooks and checks loaded
    (tests/schemathesis_hooks.py)."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    return env


def requests_served(app: web.Application) -> float:
    """How many requests ``app`` has answered (its bridge_requests_total, all labels)."""
    return sum(
        sample.value
        for metric in app[METRICS].registry.collect()
        for sample in metric.samples
        if sample.name == "bridge_requests_total"
    )


# A fuzzing run hangs when the daemon answers no request for this long: many times the
# slowest answer seen on a loaded machine, and no bound on the run as a whole (how long
# that takes is the machine's, not the bridge's).
FUZZING_STALL = 600.0


async def schemathesis(
    url: str,
    *options: str,
    cwd: Path,
    progress: Callable[[], float],
    env: dict[str, str] | None = None,
) -> str:
    """Run Schemathesis's CLI against the OpenAPI document at ``url``; its report. Fails the
    test when it finds a problem, or when ``progress`` (requests the daemon answered) stands
    still for FUZZING_STALL seconds: something hangs."""
    run = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "schemathesis.cli", "run", url, *options),
        *("--generation-database", "none", "--no-color", "--continue-on-failure"),
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    finished = asyncio.ensure_future(run.communicate())
    loop = asyncio.get_running_loop()
    seen, since = progress(), loop.time()
    try:
        while not finished.done():
            # a look every few seconds at a counter: no event tells "no request for long"
            await asyncio.wait({finished}, timeout=5.0)
            if (now := progress()) != seen:
                seen, since = now, loop.time()
            elif loop.time() - since > FUZZING_STALL:
                raise AssertionError(
                    f"schemathesis got no answer for {FUZZING_STALL:g} s: something hangs"
                )
    finally:
        if not finished.done():
            run.kill()
            await run.wait()
            finished.cancel()
            await asyncio.gather(finished, return_exceptions=True)
    output, _ = finished.result()
    report = output.decode(errors="replace")
    assert run.returncode == 0, report[-30000:]
    return report


# -- streams -----------------------------------------------------------------------------------


def split_result(text: bytes) -> tuple[bytes, dict[str, Any]]:
    """A text stream's (or a job's followed output's) bytes: the output and the result line."""
    output, _, result = text.rpartition(TEXT_RESULT_PREFIX.encode())
    return output, json.loads(result)


async def read_until(response: Any, needle: bytes) -> bytes:
    """Read a streamed response until ``needle`` has arrived; return all read so far."""
    seen = b""
    async for data in response.content.iter_any():
        seen += data
        if needle in seen:
            return seen
    raise AssertionError(f"{needle!r} never arrived: {seen[-500:]!r}")


async def hold_the_slot(client: TestClient[Any, Any]) -> tuple[Any, str]:
    """A stream of the fake's ``hang`` holding a slot (with max_concurrent_commands = 1, the
    only one), once its command runs: the response (close it to let go) and its marker."""
    marker = new_marker()
    held = await client.get(API, params=fault(marker, "hang", stream="true"))
    await read_until(held, b"started")
    return held, marker


async def until_waiting(commands: CommandPath, count: int) -> None:
    """Until exactly ``count`` calls wait in line for a slot."""
    while commands.slots.waiting != count:
        await commands.slots.changed()


# -- the real daemon ---------------------------------------------------------------------------


# A callback's CPU time depends on the machine: the same parsing of 200 form parts took
# under 20 ms here and 62 ms on a slower CI runner. Past the 50 ms limit a hold is shown as a
# warning; it fails a test only when it is gross (five times the limit), which no machine's
# speed explains. A blocking call always fails: that does not depend on the machine.
GROSS_HOLD_MS = 250


class LoopHeldWarning(UserWarning):
    """A callback held a loop past the limit, not grossly: shown in pytest's summary."""


_HELD_MS = re.compile(re.escape(HELD_MESSAGE) + r" (\d+) ms")


def counts(report: str) -> bool:
    """Whether a loop-watch report fails the test (else it is shown as a warning). Under
    mutation testing, mutmut's trampolines slow every call of the mutated modules: CPU time
    proves nothing then."""
    if BLOCKING_MESSAGE in report:
        return True
    held = _HELD_MS.search(report)
    gross = held is not None and int(held.group(1)) >= GROSS_HOLD_MS
    if gross and "MUTANT_UNDER_TEST" not in os.environ:
        return True
    warnings.warn(report, LoopHeldWarning, stacklevel=2)
    return False


class Daemon:
    """``python -m bridge`` as an operator starts it, its stderr read continuously (so that
    the pipe never fills) and searchable line by line. It runs in asyncio's debug mode, and
    :meth:`wait` fails when it logged a callback that held its loop (bridge.service.loop_watch)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.signalled = False
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := (await self.proc.stderr.readline()).decode():
            async with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        async with self._changed:
            self.lines.append("")  # end of output
            self._changed.notify_all()

    async def line_containing(self, needle: str, after: int = 0, timeout: float = 120) -> int:
        """Wait for a log line (at index >= ``after``) containing ``needle``; its index."""

        def found() -> int | None:
            for index in range(after, len(self.lines)):
                if needle in self.lines[index]:
                    return index
            return None

        async def wait() -> int:
            async with self._changed:
                while (index := found()) is None:
                    if self.lines and self.lines[-1] == "":
                        raise AssertionError(f"the daemon exited before logging {needle!r}")
                    await self._changed.wait()
                return index

        return await asyncio.wait_for(wait(), timeout=timeout)

    async def stop(self, signum: int = 15) -> int:
        """Signal the daemon (once) and return its exit code."""
        if self.proc.returncode is None and not self.signalled:
            self.signal(signum)
        return await self.wait()

    def signal(self, signum: int) -> None:
        self.signalled = signum in (2, 9, 15)  # the ones that end it
        self.proc.send_signal(signum)

    async def wait(self) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout=60)
        await self._reader
        held = [line for line in self.lines if BLOCKING_MESSAGE in line or HELD_MESSAGE in line]
        held = [line for line in held if counts(line)]
        assert not held, f"the daemon's event loop was held: {held}"
        return code


async def start_daemon(cfg: Path, port: int, python: str = sys.executable, **kwargs: Any) -> Daemon:
    """Start the daemon (in asyncio's debug mode) and return once it logs 'serving on'."""
    env = dict(kwargs.pop("env", None) or os.environ)
    env["PYTHONASYNCIODEBUG"] = "1"
    proc = await asyncio.create_subprocess_exec(
        python, "-m", "bridge", "--config", str(cfg), "--port", str(port),
        stderr=asyncio.subprocess.PIPE, env=env, **kwargs,
    )  # fmt: skip
    daemon = Daemon(proc)
    await daemon.line_containing("serving on")
    return daemon


async def start_fake_daemon(folder: Path, *settings: str) -> tuple[Daemon, int]:
    """The daemon on the fake airflow (tests/fake_airflow.py), its home and dags folder
    ``folder``, with extra ``[rest_api_plugin]`` lines; and its port."""
    cfg = write_cfg(
        folder / "airflow.cfg",
        f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\n" + "\n".join(settings),
    )
    port = free_port()
    return await start_daemon(cfg, port), port


# -- processes, from /proc ---------------------------------------------------------------------


def new_marker(prefix: str = "m") -> str:
    """A dag_id-safe string unique to one test."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def processes_with(marker: str) -> list[int]:
    """PIDs of live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _stat_fields(pid: int) -> list[str] | None:
    try:
        # Fields after the command name, which sits in parentheses and may contain spaces.
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_group_of(pid: int) -> int:
    fields = _stat_fields(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[2])


def session_of(pid: int) -> int:
    fields = _stat_fields(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[3])


def live_members(*, group: int | None = None, session: int | None = None) -> list[int]:
    """Live processes in a process group or session (Airflow renames its workers, so a
    command-line marker cannot find them all)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z":
            continue
        if (group is not None and int(fields[2]) == group) or (
            session is not None and int(fields[3]) == session
        ):
            found.append(int(entry.name))
    return found


def stop_services(started: list[subprocess.Popen[bytes]]) -> None:
    """Stop services a test started, each in a session of its own: SIGTERM to each whole
    group, then (after Airflow's own shutdown, bounded) SIGKILL to any member left. A group
    or member already gone is no reason to leave the others running."""
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for pid in live_members(session=proc.pid):  # a worker that outlived its parent
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def wait_for_port(port: int, server: subprocess.Popen[bytes], what: str) -> None:
    """Until ``server`` (``what`` it is) listens on ``port``. Another process's readiness
    has no event to await here: look, bounded in time."""
    give_up = time.monotonic() + 180
    while time.monotonic() < give_up:
        assert server.poll() is None, f"{what} exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{what} did not listen on {port}")


def git(cwd: Path, *args: str) -> str:
    """A git command in ``cwd`` that must succeed; its output."""
    done = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# The suite's PostgreSQL server (make integration sets it), for tests on Airflow's production
# backend: postgresql+psycopg2://user:password@host:port
POSTGRES = os.environ.get("BRIDGE_TEST_POSTGRES", "")


def pg(tool: str, database: str) -> None:
    """createdb or dropdb (if it exists) ``database`` on that server."""
    url = urlsplit(POSTGRES)
    env = dict(os.environ, PGPASSWORD=url.password or "")
    argv = [tool, "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432)]
    argv += ["-U", url.username or "postgres"]
    if tool == "dropdb":
        argv.append("--if-exists")
    subprocess.run([*argv, database], env=env, check=True, timeout=300)


# -- job webhooks ---------------------------------------------------------------------------

WEBHOOK_SECRET = "webhook-test-secret"


class Receiver:
    """An HTTP endpoint that keeps what it was sent; the first ``failing`` tries get 503."""

    def __init__(self, failing: int = 0) -> None:
        self.received: list[tuple[bytes, str]] = []  # body, its signature header
        self.refused = 0
        self.failing = failing
        self._changed = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._changed:
            if self.refused < self.failing:
                self.refused += 1
                self._changed.notify_all()
                return web.Response(status=503)
            self.received.append((body, request.headers.get(SIGNATURE_HEADER, "")))
            self._changed.notify_all()
        return web.Response(status=204)

    async def records(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` records, once they arrived, each checked for its signature."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.received) >= count), 60)
        records = []
        for body, signed in self.received[:count]:
            expected = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(signed, f"sha256={expected}"), signed
            records.append(json.loads(body))
        return records


async def detached(client: TestClient[Any, Any], **params: str) -> str:
    """The id of the job that ``params`` started with detach=true."""
    response = await client.get(API, params={**params, "detach": "true"})
    assert response.status == 202, await response.text()
    return str((await response.json())["job_id"])


async def start_receiver(aiohttp_server: Any, receiver: Receiver) -> str:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/hook?key=in-the-query"))
