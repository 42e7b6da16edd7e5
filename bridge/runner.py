"""Running one argv: output chunks as they come, the exit code, a timeout, process-group stop.

Never a shell: the argv goes to ``create_subprocess_exec`` as a list. The child gets its own
session (so its whole process group can be stopped), stdin from /dev/null (so a prompt can
never hang it) and ``PYTHONUNBUFFERED=1`` from the caller's environment (so output streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024  # read(n), not readline(): a long line must not break the reader
QUEUE_DEPTH = 64  # chunks in flight; a slow client slows the child instead of our memory
_POLL = 0.05  # how often to look whether a stopped group's last members are gone


@dataclass(frozen=True)
class Chunk:
    """Bytes the command wrote to one of its streams."""

    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)
class Outcome:
    """How the command ended."""

    exit_code: int | None
    duration: float
    timed_out: bool = False
    warm: bool = False  # run by a child of the warm helper, not a cold ``airflow``
    command_seconds: float | None = None  # time inside the child, as the warm helper saw it


class Launched(Protocol):
    """A process started some other way than ``create_subprocess_exec`` (bridge.warm)."""

    pid: int
    returncode: int | None
    command_seconds: float | None
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader
    exited: asyncio.Event  # set together with returncode

    def release(self) -> None: ...


class Witness(Protocol):
    """Notes which commands run, so that a restarted daemon can stop what a killed one left
    (bridge.leftovers)."""

    def record(self, pid: int) -> None: ...

    def forget(self, pid: int) -> None: ...


class Launcher(Protocol):
    """Starts commands faster than a cold exec, or declines (None) and the exec happens."""

    async def launch(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None
    ) -> Launched | None: ...


class Command:
    """One CLI command. Use as ``async with Command(...) as cmd: async for chunk in cmd``.

    Leaving the ``async with`` block always stops the command's whole process group (TERM, a
    grace period, KILL) if anything of it is still running, also when the block is left by
    cancellation or a client that went away.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout: float,
        grace: float,
        cwd: str | None = None,
        launcher: Launcher | None = None,
        witness: Witness | None = None,
    ) -> None:
        self.argv = list(argv)
        self._launcher = launcher
        self._witness = witness
        self._env = dict(env)
        self._timeout = timeout
        self._grace = grace
        self._cwd = cwd
        self._proc: asyncio.subprocess.Process | Launched | None = None
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(maxsize=QUEUE_DEPTH)
        self._readers: list[asyncio.Task[None]] = []
        self._started = 0.0
        self._detached = False
        self.outcome: Outcome | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def __aenter__(self) -> Command:
        self._started = time.monotonic()
        if self._launcher is not None:
            self._proc = await self._launcher.launch(self.argv, self._env, self._cwd)
        if self._proc is None:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
            )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        if self._witness is not None:
            self._witness.record(self._proc.pid)
        self._readers = [
            asyncio.create_task(self._pump(self._proc.stdout, "stdout")),
            asyncio.create_task(self._pump(self._proc.stderr, "stderr")),
        ]
        return self

    @property
    def warm(self) -> bool:
        return self._proc is not None and not isinstance(self._proc, asyncio.subprocess.Process)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._detached:
            return  # the task made by detach() owns the process now
        await _uncancellable(self._cleanup())

    def detach(self) -> asyncio.Task[None]:
        """Let the command run on without a reader (kill_on_disconnect = false).

        Its output is discarded from now on; the returned task waits for it to end (or for
        the timeout) and then cleans up its process group like a reader would.
        """
        self._detached = True
        while not self._queue.empty():
            self._queue.get_nowait()
        return asyncio.create_task(self._finish_detached())

    async def _finish_detached(self) -> None:
        assert self._proc is not None
        remaining = self._started + self._timeout - time.monotonic()
        try:
            if not await self._leader_exit(max(0.0, remaining)):
                log.warning("detached command timed out: %s", self.argv[:3])
        finally:
            await _uncancellable(self._cleanup())

    async def _pump(self, stream: asyncio.StreamReader, name: Literal["stdout", "stderr"]) -> None:
        try:
            while data := await stream.read(READ_SIZE):
                if not self._detached:
                    await self._queue.put(Chunk(name, data))
        except OSError as exc:  # a broken pipe ends this stream like EOF does
            log.warning("reading %s of %s failed: %s", name, self.argv[:3], exc)
        if not self._detached:
            await self._queue.put(None)

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[Chunk]:
        """Yield output until both streams close and the command exits, or the timeout."""
        assert self._proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        open_streams = 2
        drain_until: float | None = None
        group_stopped = False
        timed_out = False
        while open_streams:
            if drain_until is None and self._proc.returncode is not None:
                # The command is gone; whatever it left behind gets a grace period to
                # finish writing, then it is stopped so that the pipes close.
                drain_until = loop.time() + self._grace
            limit = deadline if drain_until is None else min(deadline, drain_until)
            remaining = limit - loop.time()
            if remaining <= 0:
                if drain_until is None or limit != drain_until:
                    timed_out = True
                    break
                if group_stopped:
                    # Something outside the command's session (a daemonized child that
                    # kept the pipe) holds the output open: stop reading it.
                    break
                await self._stop_group()
                group_stopped = True
                drain_until = loop.time() + self._grace
                continue
            # While the command runs, look at it every _POLL: asyncio's wait() only
            # returns once its pipes close too, which a child that left the process group
            # (Airflow 2's DagFileProcessorManager does) can put off forever.
            wait = remaining if drain_until is not None else min(remaining, _POLL)
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=wait)
            except TimeoutError:
                continue
            if item is None:
                open_streams -= 1
                continue
            yield item
        if timed_out:
            log.warning("command timed out after %.0f s: %s", self._timeout, self.argv[:3])
            await self._stop_group()
        await self._leader_exit(self._grace)
        exit_code = self._proc.returncode
        self.outcome = Outcome(
            exit_code=exit_code,
            duration=time.monotonic() - self._started,
            timed_out=timed_out,
            warm=self.warm,
            command_seconds=getattr(self._proc, "command_seconds", None),
        )

    async def stop(self) -> None:
        """Stop the command's process group now (TERM, the grace period, KILL); its reader
        then sees the output end and the command's outcome as usual."""
        await self._stop_group()

    async def _leader_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the command's own process to exit (not for its pipes)."""
        proc = self._proc
        assert proc is not None
        if not isinstance(proc, asyncio.subprocess.Process):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.exited.wait(), timeout)
            return proc.returncode is not None
        # asyncio tells an exec'd process's exit only together with its pipes closing (see
        # _chunks): look, quickly at first (most commands are done when their output ends).
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        pause = 0.001
        while proc.returncode is None and loop.time() < give_up:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL)
        return proc.returncode is not None

    async def _stop_group(self) -> None:
        """TERM everything the command started, give it the grace period, KILL what is left.

        "Everything" is the command's session: the process group it leads, and the processes
        that moved to a group of their own inside it (Airflow 2's scheduler does that).
        """
        proc = self._proc
        if proc is None or not signal_session(proc.pid, signal.SIGTERM):
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._grace
        while loop.time() < give_up:
            if not _session_alive(proc.pid):
                break
            await asyncio.sleep(_POLL)
        else:
            if signal_session(proc.pid, signal.SIGKILL):
                log.warning("command %s ignored SIGTERM; sent SIGKILL", self.argv[:3])
        await self._leader_exit(self._grace)

    async def _cleanup(self) -> None:
        try:
            await self._stop_group()
            if self._witness is not None and self._proc is not None:
                self._witness.forget(self._proc.pid)
        finally:
            for reader in self._readers:
                reader.cancel()
            await asyncio.gather(*self._readers, return_exceptions=True)
            self._release_pipes()

    def _release_pipes(self) -> None:
        """Close our ends of the pipes even if a process we could not stop holds the other
        ends (for an exec'd process asyncio offers no public way; its transport is already
        finished with the process itself, which has exited)."""
        proc = self._proc
        if proc is None:
            return
        if not isinstance(proc, asyncio.subprocess.Process):
            proc.release()
            return
        transport = getattr(proc, "_transport", None)
        if transport is not None and proc.returncode is not None:
            transport.close()


async def _uncancellable(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run ``cleanup`` to its end even if the caller is cancelled (again) meanwhile, and only
    then let the cancellation through: whoever waits for the caller (the slot it holds, a
    graceful stop) must not see it finished while its process group still runs."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


def _session_members(session: int) -> list[int]:
    """Live (not zombie) processes of a session, read from /proc (Linux)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z" and int(fields[3]) == session:
            members.append(int(entry.name))
    return members


def signal_session(session: int, signum: int) -> bool:
    """Signal the process group the command leads and every other member of its session;
    False when nothing of it is left."""
    signalled = _signal_group(session, signum)
    for pid in _session_members(session):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
            signalled = True
    return signalled


def _session_alive(session: int) -> bool:
    return _signal_group(session, 0) or bool(_session_members(session))


def _signal_group(pgid: int, signum: int) -> bool:
    """Signal a whole process group; False when none of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # the group id was reused by someone else's process
        return False
    return True


class CommandSlots:
    """The limit on concurrent commands: over it a request is refused (429), never queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.idle = asyncio.Event()  # set while no command runs (shutdown and tests wait on it)
        self.idle.set()

    def try_acquire(self) -> bool:
        if self.running >= self.limit:
            return False
        self.running += 1
        self.idle.clear()
        return True

    def release(self) -> None:
        self.running -= 1
        if self.running == 0:
            self.idle.set()


@dataclass(frozen=True)
class Captured:
    """A finished command's whole output (for the bridge's own bookkeeping calls)."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool


async def capture(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    grace: float,
    launcher: Launcher | None = None,
) -> Captured:
    """Run ``argv`` to the end and return its output, decoded."""
    streams: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    async with Command(argv, env=env, timeout=timeout, grace=grace, launcher=launcher) as command:
        async for chunk in command:
            streams[chunk.stream].append(chunk.data)
    outcome = command.outcome
    return Captured(
        exit_code=outcome.exit_code if outcome else None,
        stdout=b"".join(streams["stdout"]).decode("utf-8", "replace"),
        stderr=b"".join(streams["stderr"]).decode("utf-8", "replace"),
        timed_out=bool(outcome and outcome.timed_out),
    )
