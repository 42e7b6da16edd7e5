"""How a command's process comes to be: exec'd cold, or handed to a launcher (the warm
helper) that may decline; and the ledger a running command is noted in."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

from bridge.offload import in_thread
from bridge.process.pipes import OutputPipes
from bridge.process.sessions import signal_session


class Launched(Protocol):
    """A started command's process, however it was started."""

    pid: int
    warm: bool
    # The process goes on once the command is over (a warm worker): from then on its
    # session is not the command's, and stopping the command must leave it alone.
    outlives_command: bool
    command_seconds: float | None
    returncode: int | None

    async def wait(self) -> int: ...

    def release(self) -> None: ...


class Launcher(Protocol):
    """Starts commands faster than a cold exec (the warm helper), or declines with None."""

    async def launch(
        self, argv: Sequence[str], env: Mapping[str, str], pipes: OutputPipes
    ) -> Launched | None: ...


class Witness(Protocol):
    """Notes which commands run, so that a restarted daemon can stop what a killed one left
    (blocking; called from a thread)."""

    def record(self, pid: int) -> None: ...

    def forget(self, pid: int) -> None: ...


class ExecProcess:
    """A command started cold: spawned in a session of its own, its exit watched on the loop.

    Not ``asyncio.create_subprocess_exec``: that forks and waits for the exec in the event
    loop's own thread, which on a loaded machine holds the loop for tens of milliseconds.
    Here ``subprocess.Popen`` spawns in a worker thread (its vfork + exec lets go of the GIL
    while it waits; ``os.posix_spawn`` does not) and a pidfd tells the loop when it exits.
    """

    warm: bool = False
    outlives_command: bool = False
    command_seconds: float | None = None

    def __init__(self) -> None:
        self.pid = 0
        self.returncode: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None
        self._exited = asyncio.Event()

    @classmethod
    async def start(
        cls, argv: Sequence[str], env: Mapping[str, str], pipes: OutputPipes
    ) -> ExecProcess:
        process = cls()
        try:
            pidfd = await in_thread(process._spawn, list(argv), dict(env), pipes.child_ends)
            asyncio.get_running_loop().add_reader(pidfd, process._reap)
        except BaseException:
            if process.pid:  # spawned before the caller gave up: nothing may outlive it
                await in_thread(signal_session, process.pid, signal.SIGKILL)
                process.release()
            raise
        return process

    def _spawn(self, argv: list[str], env: dict[str, str], outputs: tuple[int, int]) -> int:
        """In a thread: spawn, and note the process and its pidfd here before anything else
        can fail."""
        stdout, stderr = outputs
        self._popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
        self.pid = self._popen.pid
        self._pidfd = os.pidfd_open(self.pid)
        return self._pidfd

    def _reap(self) -> None:
        """The pidfd turned readable: the process exited; collect its status."""
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return
        self._close_pidfd()
        self.returncode = os.waitstatus_to_exitcode(status)
        assert self._popen is not None
        self._popen.returncode = self.returncode  # reaped here, not by Popen
        self._exited.set()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def release(self) -> None:
        """Stop watching; a process that has not exited yet is reaped by a thread later."""
        if self._pidfd is not None:
            with contextlib.suppress(RuntimeError):  # no loop: never watched
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._popen is not None and self.returncode is None:
            threading.Thread(target=self._popen.wait, daemon=True).start()
