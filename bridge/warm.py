"""The daemon's side of the warm Airflow interpreter (bridge/warm_helper.py).

:class:`WarmHelper` starts the helper with Airflow's own Python, keeps it fresh and launches
commands through it; :class:`WarmProcess` is one such command, looking to :mod:`bridge.runner`
like the process ``create_subprocess_exec`` would have made (pid, returncode, stdout, stderr).
Whenever the helper cannot take a command (not started yet, dead, restarting after airflow.cfg
or the installation changed, a different environment) :meth:`WarmHelper.launch` returns None
and the runner starts the cold CLI instead, so a request never fails because of the helper.

The helper is managed without an event loop of its own (a blocking start runs in a thread),
so one helper can serve applications on different loops (the test suite shares one).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.runner import signal_session

log = logging.getLogger(__name__)

HELPER_SCRIPT = Path(__file__).with_name("warm_helper.py")  # run by Airflow's interpreter
START_TIMEOUT = 180.0  # importing Airflow on a loaded 2-core machine can take a while
LAUNCH_TIMEOUT = 10.0  # from the request to the child leading its own session
SEND_TIMEOUT = 2.0  # a helper this busy is treated as unavailable: that call goes cold
RESTART_DELAYS = (1.0, 5.0, 30.0, 120.0)  # after a helper that died young, back off


class HelperUnavailable(RuntimeError):
    """The helper could not be started; the reason is in the message."""


@dataclass(frozen=True)
class HelperStatus:
    """What /health reports."""

    state: str  # off | starting | ready | failed
    pid: int | None
    airflow_version: str | None
    started: float | None  # time.time() of the last successful start
    restarts: int
    launched: int  # commands run through the helper since the daemon started
    reason: str | None  # why it is not ready, or why it last restarted


class WarmHelper:
    """One helper process for one Airflow installation and one child environment."""

    def __init__(self, python: str, executable: str, env: Mapping[str, str]) -> None:
        self.python = python
        self.executable = executable
        self.env = dict(env)
        self._lock = threading.Lock()  # guards starting and stopping
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._watch: list[tuple[str, tuple[int, int, int] | None]] = []
        self._state = "starting"
        self._reason: str | None = None
        self._version: str | None = None
        self._started: float | None = None
        self._restarts = 0
        self._failures = 0
        self._launched = 0
        self._restarting: threading.Thread | None = None
        self._closed = False

    # -- lifecycle (blocking; call from a thread) ------------------------------------------

    def start(self) -> None:
        """Start the helper and wait until it is warm. Raises HelperUnavailable."""
        with self._lock:
            self._stop_locked(retire=True)
            self._state = "starting"
            try:
                self._start_locked()
            except HelperUnavailable as exc:
                self._state, self._reason = "failed", str(exc)
                self._failures += 1
                raise
            self._state, self._failures = "ready", 0

    def _start_locked(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [self.python, str(HELPER_SCRIPT), str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=self.env,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # a terminal's Ctrl-C goes to the daemon, not to it
            )
        except OSError as exc:
            ours.close()
            raise HelperUnavailable(f"cannot run {self.python}: {exc}") from exc
        finally:
            theirs.close()
        ours.settimeout(START_TIMEOUT)
        try:
            facts = json.loads(ours.recv(1024 * 1024) or b"{}")
        except (OSError, ValueError) as exc:
            facts = {"error": f"no answer within {START_TIMEOUT:g} s ({exc})"}
        if not facts.get("ready"):
            ours.close()
            _end(process)
            error = str(facts.get("error") or f"it exited with code {process.returncode}")
            raise HelperUnavailable(f"the warm helper did not start: {error.strip()[-2000:]}")
        ours.settimeout(SEND_TIMEOUT)
        self._process, self._control = process, ours
        self._version = str(facts.get("version"))
        self._watch = [(path, _stamp(path)) for path in facts.get("watch", [])]
        self._started = time.time()
        self._reason = None
        log.info(
            "warm helper ready (pid %s, Airflow %s, warmed up in %.1f s)",
            process.pid,
            self._version,
            float(facts.get("warmup_seconds", 0.0)),
        )

    def close(self) -> None:
        """Stop the helper (it stops any command still running through it)."""
        with self._lock:
            self._closed = True
            self._stop_locked()
            self._state = "off"

    def _stop_locked(self, retire: bool = False) -> None:
        """Closing the control socket makes the helper stop its children and exit; a retired
        helper instead lets running commands finish (a restart must not cut them off)."""
        control, process = self._control, self._process
        self._control = self._process = None
        if control is not None:
            if retire:
                with contextlib.suppress(OSError):
                    control.send(json.dumps({"retire": True}).encode())
            control.close()
        if process is None:
            return
        if retire:
            threading.Thread(target=process.wait, name="warm-helper-retired", daemon=True).start()
        else:
            _end(process)

    # -- launching (on the caller's event loop) --------------------------------------------

    async def launch(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None
    ) -> WarmProcess | None:
        """Start ``argv`` through the helper; None when the cold CLI should run it."""
        if not argv or argv[0] != self.executable or not self._usable(env):
            return None
        control = self._control
        if control is None:
            return None
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            request = json.dumps({"argv": list(argv), "env": dict(env), "cwd": cwd}).encode()
            control.sendmsg(
                [request],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fd_array(out_write, err_write, theirs))],
            )
        except OSError as exc:
            for fd in (out_read, err_read):
                os.close(fd)
            mine.close()
            self._restart_soon(f"sending a command failed: {exc}")
            return None
        finally:
            os.close(out_write)
            os.close(err_write)
            theirs.close()
        process = WarmProcess(mine, out_read, err_read)
        try:
            await process.open(LAUNCH_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            await process.abandon()
            self._restart_soon(f"a command did not start through it: {exc!r}")
            return None
        self._launched += 1
        return process

    def _usable(self, env: Mapping[str, str]) -> bool:
        """Ready, alive, and still matching airflow.cfg, the installation and ``env``."""
        if self._state != "ready" or self._closed:
            return False
        process = self._process
        if process is None or process.poll() is not None:
            code = process.returncode if process else None
            self._restart_soon(f"the helper exited (code {code})")
            return False
        changed = [path for path, stamp in self._watch if _stamp(path) != stamp]
        if changed:
            self._restart_soon(f"{', '.join(changed)} changed")
            return False
        # The helper read airflow.cfg with its own environment: a command that needs another
        # configuration (a reload moved the Airflow home) must not inherit that one. The rest
        # of the environment is the child's own anyway (it gets ``env`` as its os.environ).
        return _configuration_of(env) == _configuration_of(self.env)

    def _restart_soon(self, reason: str) -> None:
        """Restart in a background thread; calls meanwhile run cold."""
        if self._closed or (self._restarting and self._restarting.is_alive()):
            return
        log.warning("warm helper restarting: %s; commands run cold until it is back", reason)
        self._state, self._reason = "starting", reason
        self._restarts += 1
        delay = RESTART_DELAYS[min(self._failures, len(RESTART_DELAYS) - 1)]
        self._restarting = threading.Thread(
            target=self._restart, args=(delay,), name="warm-helper-restart", daemon=True
        )
        self._restarting.start()

    def _restart(self, delay: float) -> None:
        time.sleep(delay)  # a helper that keeps dying must not spin
        if self._closed:
            return
        try:
            self.start()
        except HelperUnavailable as exc:
            log.error("%s; commands run with the cold CLI", exc)
            self._restarting = None
            self._restart_soon(str(exc))

    # -- reporting -------------------------------------------------------------------------

    @property
    def airflow_version(self) -> str | None:
        return self._version

    def status(self) -> HelperStatus:
        process = self._process
        return HelperStatus(
            state=self._state,
            pid=process.pid if process is not None and self._state == "ready" else None,
            airflow_version=self._version,
            started=self._started,
            restarts=self._restarts,
            launched=self._launched,
            reason=self._reason,
        )


class WarmProcess:
    """A command forked by the helper, with the attributes the runner reads from a process."""

    def __init__(self, report: socket.socket, stdout_fd: int, stderr_fd: int) -> None:
        self._report = report
        self._fds = [stdout_fd, stderr_fd]
        self._transports: list[asyncio.BaseTransport] = []
        self._watcher: asyncio.Task[None] | None = None
        self._report_writer: asyncio.StreamWriter | None = None
        self.pid = 0
        self.returncode: int | None = None
        self.exited = asyncio.Event()
        self.command_seconds: float | None = None  # time inside the child, from the helper
        self.stdout = asyncio.StreamReader()
        self.stderr = asyncio.StreamReader()

    async def open(self, timeout: float) -> None:
        """Connect the pipes and wait until the child leads its own session."""
        loop = asyncio.get_running_loop()
        for fd, reader in zip(self._fds, (self.stdout, self.stderr), strict=True):
            transport, _ = await loop.connect_read_pipe(
                _protocol_for(reader), os.fdopen(fd, "rb", buffering=0)
            )
            self._transports.append(transport)
        self._fds = []
        # Keep the writer: a collected StreamWriter closes the connection.
        lines, self._report_writer = await asyncio.open_unix_connection(sock=self._report)
        first = json.loads(await asyncio.wait_for(lines.readline(), timeout) or b"null")
        if not isinstance(first, dict) or not isinstance(first.get("pid"), int):
            raise ValueError(f"unexpected first report {first!r}")
        self.pid = first["pid"]
        self._record(first)
        self._watcher = asyncio.create_task(self._watch(lines))

    def _record(self, report: dict[str, Any]) -> None:
        if "exit" in report and self.returncode is None:
            self.command_seconds = float(report.get("seconds", 0.0))
            self.returncode = int(report["exit"])
            self.exited.set()

    async def _watch(self, lines: asyncio.StreamReader) -> None:
        while self.returncode is None:
            line = await lines.readline()
            if not line:
                # The helper died and took the exit status with it: nothing could tell this
                # command's result any more, so it is stopped rather than left behind.
                log.warning("warm helper lost command pid %s; stopping it", self.pid)
                signal_session(self.pid, signal.SIGKILL)
                self.returncode = -signal.SIGKILL
                self.exited.set()
                return
            self._record(json.loads(line))

    async def abandon(self) -> None:
        """The launch failed half-way: stop what may have started and close everything."""
        if self.pid:
            signal_session(self.pid, signal.SIGKILL)
        self.release()

    def release(self) -> None:
        """Close our ends of the pipes and the report socket."""
        if self._watcher is not None:
            self._watcher.cancel()
        for transport in self._transports:
            transport.close()
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        if self._report_writer is not None:
            self._report_writer.close()
        self._report.close()


def _protocol_for(reader: asyncio.StreamReader) -> Callable[[], asyncio.StreamReaderProtocol]:
    return lambda: asyncio.StreamReaderProtocol(reader)


def _fd_array(*items: int | socket.socket) -> bytes:
    fds = [item.fileno() if isinstance(item, socket.socket) else item for item in items]
    return array.array("i", fds).tobytes()


def _configuration_of(env: Mapping[str, str]) -> dict[str, str]:
    """The variables that decide what Airflow reads at import: its home, config and
    AIRFLOW__SECTION__KEY overrides, and where Python finds modules."""
    return {
        key: value
        for key, value in env.items()
        if key.startswith("AIRFLOW") or key in ("PYTHONPATH", "PYTHONHOME", "TZ")
    }


def _stamp(path: str) -> tuple[int, int, int] | None:
    """What changes when a file is edited or replaced, or a folder's entries change."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _end(process: subprocess.Popen[bytes]) -> None:
    """Wait for a helper told to exit; kill one that does not."""
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def describe(status: HelperStatus | None) -> dict[str, Any]:
    """The helper's status as /health shows it."""
    if status is None:
        return {"state": "off", "reason": "warm_helper = false"}
    return {
        "state": status.state,
        "pid": status.pid,
        "airflow_version": status.airflow_version,
        "restarts": status.restarts,
        "launched": status.launched,
        "reason": status.reason,
    }
