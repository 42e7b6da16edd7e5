"""The daemon's side of the warm Airflow interpreter (bridge/airflow_side/warm_helper.py).

Who owns what: a supervisor thread owns the helper process. It starts it (and retries with
back-off when that fails, at daemon start too), restarts it when it dies or when airflow.cfg
or the installation changed (the old one finishes its running commands first), and stops it
on close. It publishes two immutable snapshots, the live helper and its status, which the
event loop only reads. The loop owns launching: :meth:`WarmHelper.launch` hands a command to
the live helper over a non-blocking socket, or declines (None) whenever it cannot take it, and
the command runs with the cold CLI instead, so a request never fails because of the helper.

Having no event loop of its own, one helper can serve applications on different loops (the
test suite shares one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bridge.airflow_side import warm_protocol as protocol
from bridge.catalogue.cli_cache import configuration_of, shown, stamp
from bridge.catalogue.installed_cli import Stamp
from bridge.offload import in_thread
from bridge.process.pipes import OutputPipes
from bridge.process.warm_process import WarmProcess, send_with_fds

log = logging.getLogger(__name__)

HELPER_SCRIPT = Path(__file__).parents[1] / "airflow_side" / "warm_helper.py"
START_TIMEOUT = 180.0  # importing Airflow on a loaded 2-core machine can take a while
LAUNCH_TIMEOUT = 10.0  # from the request to the child leading its own session
SEND_TIMEOUT = 2.0  # a helper this busy is treated as unavailable: that call goes cold
HELPER_STATES = ("starting", "ready", "failed", "off")
RESTART_DELAYS = (1.0, 5.0, 30.0, 120.0)  # after starts that failed in a row, back off


class HelperUnavailable(RuntimeError):
    """The helper could not be started; the reason is in the message."""


@dataclass(frozen=True)
class HelperStatus:
    """What /health reports."""

    state: str  # starting | ready | failed | off
    pid: int | None = None
    started: float | None = None  # time.time() of the last successful start
    restarts: int = 0
    launched: int = 0  # commands run through the helper since the daemon started
    reason: str | None = None  # why it is not ready, or why it last restarted
    failed_imports: Mapping[str, str] = field(default_factory=dict)  # module -> error
    # Shared work whose internal was not what the helper expects, so not done -> why
    skipped_patches: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "launched": self.launched,
            "reason": self.reason,
            "failed_imports": dict(self.failed_imports),
            "skipped_patches": dict(self.skipped_patches),
        }


@dataclass(frozen=True)
class _Live:
    """A helper that is ready: its process, control socket and what to watch."""

    process: subprocess.Popen[bytes]
    control: socket.socket
    watch: tuple[tuple[str, Stamp], ...]

    def changed(self) -> list[str]:
        """The watched paths that changed since it started (blocking: stat)."""
        return [shown(path) for path, then in self.watch if stamp(path) != then]


@dataclass(frozen=True)
class _Event:
    """For the supervisor: restart ``live`` because of ``reason``; reason None: close."""

    live: _Live | None
    reason: str | None


class WarmHelper:
    """One helper process for one Airflow installation and one child environment."""

    def __init__(self, python: str, executable: str, env: Mapping[str, str]) -> None:
        self.python = python
        self.executable = executable
        self.env = dict(env)
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self._live: _Live | None = None  # written by the supervisor only
        self._status = HelperStatus("starting")  # written by the supervisor only
        self._settled = threading.Event()  # the first start attempt is over
        self._supervisor: threading.Thread | None = None
        self._starting: subprocess.Popen[bytes] | None = None  # while it warms up
        self._launched = 0  # written by launch() only

    # -- the supervisor thread -------------------------------------------------------------

    def start(self) -> None:
        """Start supervising; the helper warms up in the background (see :meth:`settled`)."""
        # A daemon thread: it holds nothing that outlives the daemon (a helper whose control
        # socket closes stops its commands and exits).
        self._supervisor = threading.Thread(target=self._supervise, name="warm-helper", daemon=True)
        self._supervisor.start()

    def settled(self) -> None:
        """Wait until the first start attempt is over (ready, or failed and retrying).
        Blocking."""
        self._settled.wait()

    def close(self) -> None:
        """Stop the helper (it stops any command still running through it). Blocking."""
        self._events.put(_Event(None, None))
        starting = self._starting
        if starting is not None:  # do not wait for a warm-up nobody needs any more
            with contextlib.suppress(ProcessLookupError):
                os.killpg(starting.pid, signal.SIGKILL)
        if self._supervisor is not None:
            self._supervisor.join()

    def _supervise(self) -> None:
        failures = 0
        while True:
            try:
                live, ready = self._spawn()
            except HelperUnavailable as exc:
                failures += 1
                self._status = replace(self._status, state="failed", pid=None, reason=str(exc))
                self._settled.set()
                delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1]
                log.error("%s; commands run with the cold CLI; next try in %g s", exc, delay)
                if self._closing_within(delay):
                    self._status = replace(self._status, state="off")
                    return
                self._status = replace(self._status, state="starting")
                continue
            failures = 0
            self._live = live
            self._status = replace(
                self._status,
                state="ready",
                pid=live.process.pid,
                started=time.time(),
                reason=None,
                failed_imports=ready.failed_imports,
                skipped_patches=ready.skipped_patches,
            )
            self._settled.set()
            threading.Thread(target=self._report_exit, args=(live,), daemon=True).start()
            reason = self._next_reason(live)
            self._live = None
            if reason is None:
                _stop(live)
                self._status = replace(self._status, state="off", pid=None)
                return
            log.warning("warm helper restarting: %s; commands run cold until it is back", reason)
            self._status = replace(
                self._status,
                state="starting",
                pid=None,
                reason=reason,
                restarts=self._status.restarts + 1,
            )
            _retire(live)
            if self._closing_within(RESTART_DELAYS[0]):  # a helper that keeps dying: no spin
                self._status = replace(self._status, state="off")
                return

    def _next_reason(self, live: _Live) -> str | None:
        """Block until ``live`` must go: a restart reason, or None to close."""
        while True:
            event = self._events.get()
            if event.reason is None:
                return None
            if event.live is live:
                return event.reason  # events about an earlier helper are stale

    def _closing_within(self, seconds: float) -> bool:
        """Wait ``seconds``; True as soon as close() was asked for."""
        give_up = time.monotonic() + seconds
        while (left := give_up - time.monotonic()) > 0:
            try:
                if self._events.get(timeout=left).reason is None:
                    return True
            except queue.Empty:
                return False
        return False

    def _report_exit(self, live: _Live) -> None:
        code = live.process.wait()
        self._events.put(_Event(live, f"the helper exited (code {code})"))

    def _spawn(self) -> tuple[_Live, protocol.HelperReady]:
        """Start a helper and wait until it is warm. Raises HelperUnavailable."""
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
        self._starting = process
        try:
            hello = _hello(ours)
        finally:
            self._starting = None
        if not isinstance(hello, protocol.HelperReady):
            ours.close()
            _end(process)
            error = hello or f"it exited with code {process.returncode}"
            raise HelperUnavailable(f"the warm helper did not start: {error.strip()[-2000:]}")
        ours.setblocking(False)  # from now on only the event loop sends on it
        watch = tuple((path, stamp(path)) for path in hello.watch)
        failed = hello.failed_imports
        log.info(
            "warm helper ready (pid %s, Airflow %s, warmed up in %.1f s%s)",
            process.pid,
            hello.airflow_version,
            hello.warmup_seconds,
            f"; {len(failed)} module(s) did not import: {', '.join(failed)}" if failed else "",
        )
        for name, why in hello.skipped_patches.items():
            log.warning("warm helper: %s not shared, commands run without it: %s", name, why)
        return _Live(process, ours, watch), hello

    # -- launching (on the caller's event loop) --------------------------------------------

    async def launch(
        self, argv: Sequence[str], env: Mapping[str, str], pipes: OutputPipes
    ) -> WarmProcess | None:
        """Start ``argv`` through the helper, writing into ``pipes``; None when the cold CLI
        should run it."""
        live = self._live
        if live is None or not argv or argv[0] != self.executable:
            return None
        # The helper read airflow.cfg with its own environment: a command that needs another
        # configuration (a reload moved the Airflow home) must not inherit that one. The rest
        # of the environment is the child's own anyway (it gets ``env`` as its os.environ).
        if configuration_of(env) != configuration_of(self.env):
            return None
        changed = await in_thread(live.changed)  # the pool's threads run already
        if changed:
            self._events.put(_Event(live, f"{', '.join(changed)} changed"))
            return None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            request = protocol.Command(list(argv), dict(env)).encode()
            fds = (*pipes.child_ends, theirs.fileno())  # protocol.HANDOVER_FDS
            await send_with_fds(live.control, request, fds, SEND_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            mine.close()
            self._events.put(_Event(live, f"sending a command failed: {exc!r}"))
            return None
        finally:
            theirs.close()
        process = WarmProcess(mine)
        try:
            await process.open(LAUNCH_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            await process.abandon()
            self._events.put(_Event(live, f"a command did not start through it: {exc!r}"))
            return None
        self._launched += 1
        return process

    def status(self) -> HelperStatus:
        return replace(self._status, launched=self._launched)


def _hello(control: socket.socket) -> protocol.HelperReady | str | None:
    """The helper's first message: ready, or why not (None: it exited without a word)."""
    try:
        data = control.recv(protocol.MAX_MESSAGE)
    except OSError as exc:
        return f"no answer within {START_TIMEOUT:g} s ({exc})"
    if not data:
        return None
    try:
        hello = protocol.decode(data, protocol.HelperReady, protocol.HelperFailed)
    except protocol.ProtocolError as exc:  # a helper of another bridge version, above all
        return str(exc)
    return hello if isinstance(hello, protocol.HelperReady) else hello.error


def _retire(live: _Live) -> None:
    """Let a helper that is being replaced finish its running commands, then exit; its
    control socket is closed once it has (closing it earlier would stop those commands)."""
    try:
        live.control.send(protocol.Retire().encode())
    except OSError:  # gone already, or not listening: closing makes it stop and exit
        live.control.close()

    def close_when_gone() -> None:
        live.process.wait()
        live.control.close()

    threading.Thread(target=close_when_gone, name="warm-helper-retired", daemon=True).start()


def _stop(live: _Live) -> None:
    """Closing the control socket makes the helper stop its children and exit."""
    live.control.close()
    _end(live.process)


def _end(process: subprocess.Popen[bytes]) -> None:
    """Wait for a helper told to exit; kill one that does not."""
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
