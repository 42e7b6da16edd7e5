"""Running one argv: output chunks as they come, the exit code, a timeout, a session stop.

Never a shell: the argv goes to ``subprocess.Popen`` as a list (or to the warm helper,
which forks and runs the CLI's own ``main``). The child gets its own session (so that all of
it can be stopped), stdin from /dev/null (so that a prompt can never hang it), and
``PYTHONUNBUFFERED=1`` from the caller's environment (so that output streams). Policy (slots,
audit, the ledger, stopping everything on shutdown) is :mod:`bridge.process.path`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from bridge.offload import in_thread, to_the_end
from bridge.process.launching import ExecProcess, Launched, Launcher, Witness
from bridge.process.pipes import OutputPipes
from bridge.process.sessions import SessionCensus

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024  # read(n), not readline(): a long line must not break the reader
QUEUE_DEPTH = 64  # chunks in flight; a slow client slows the child instead of our memory
_POLL = 0.05  # how often to look whether a stopped session's last members are gone


@dataclass(frozen=True)
class Chunk:
    """Bytes the command wrote to one of its streams."""

    stream: Literal["stdout", "stderr"]
    data: bytes


class _Exited:
    """Queued after the output already read when the command's own process exits."""


EXITED = _Exited()


@dataclass(frozen=True)
class Outcome:
    """How the command ended."""

    exit_code: int | None
    duration: float
    timed_out: bool = False
    warm: bool = False  # run by a child of the warm helper, not a cold ``airflow``
    command_seconds: float | None = None  # time inside the child, as the warm helper saw it
    stopped: bool = False  # the bridge sent its session SIGTERM while it still ran
    # It was still there this many seconds (the grace period) after SIGTERM: SIGKILL followed.
    killed_after: float | None = None


class Command:
    """One CLI command. Use as ``async with Command(...) as cmd: async for chunk in cmd``.

    Leaving the ``async with`` block always stops the command's whole session (TERM, a grace
    period, KILL) if anything of it is still running, also when the block is left by
    cancellation or a client that went away.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout: float,
        grace: float,
        census: SessionCensus,
        launcher: Launcher | None = None,
        witness: Witness | None = None,
    ) -> None:
        self.argv = list(argv)
        self._launcher = launcher
        self._census = census
        self._witness = witness
        self._env = dict(env)
        self._timeout = timeout
        self._grace = grace
        self._proc: Launched | None = None
        self._pipes: OutputPipes | None = None
        self._queue: asyncio.Queue[Chunk | _Exited | None] = asyncio.Queue(maxsize=QUEUE_DEPTH)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = 0.0
        self._detached = False
        self.outcome: Outcome | None = None
        self.ending: str | None = None  # how it ended, for the audit, where its owner knows
        self._stopped = False  # SIGTERM sent while its own process still ran
        self._killed_after: float | None = None  # SIGKILL sent this long after SIGTERM

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def warm(self) -> bool:
        return self._proc is not None and self._proc.warm

    async def __aenter__(self) -> Command:
        self._started = time.monotonic()
        try:
            self._proc, self._pipes = await self._start()
            stdout, stderr = await self._pipes.connect()
            if self._witness is not None:
                await in_thread(self._witness.record, self._proc.pid)
        except BaseException:
            await to_the_end(self._cleanup())
            raise
        self._tasks = [
            asyncio.create_task(self._pump(stdout, "stdout")),
            asyncio.create_task(self._pump(stderr, "stderr")),
            asyncio.create_task(self._watch_exit()),
        ]
        return self

    async def _start(self) -> tuple[Launched, OutputPipes]:
        """Through the launcher if it takes the command, else exec'd cold."""
        if self._launcher is not None:
            pipes = OutputPipes()
            try:
                launched = await self._launcher.launch(self.argv, self._env, pipes)
            except BaseException:
                pipes.close()
                raise
            pipes.close_child_ends()
            if launched is not None:
                return launched, pipes
            pipes.close()  # the helper may have been handed them: the cold run gets its own
        pipes = OutputPipes()
        try:
            return await ExecProcess.start(self.argv, self._env, pipes), pipes
        except BaseException:
            pipes.close()
            raise
        finally:
            pipes.close_child_ends()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._detached:
            return  # the task made by detach() owns the process now
        await to_the_end(self._cleanup())

    def detach(self) -> asyncio.Task[None]:
        """Let the command run on without a reader (kill_on_disconnect = false).

        Its output is discarded from now on; the returned task waits for it to end (or for
        the timeout) and then cleans up its session like a reader would.
        """
        self._detached = True
        while not self._queue.empty():
            self._queue.get_nowait()
        return asyncio.create_task(self._finish_detached())

    async def _finish_detached(self) -> None:
        remaining = self._started + self._timeout - time.monotonic()
        timed_out = False
        try:
            if not await self._leader_exit(max(0.0, remaining)):
                log.warning("detached command timed out: %s", self.argv[:3])
                timed_out = True
        finally:
            if timed_out:
                self.outcome = self._outcome(timed_out=True)  # before the stop changes it
            await to_the_end(self._cleanup())

    async def _pump(self, stream: asyncio.StreamReader, name: Literal["stdout", "stderr"]) -> None:
        try:
            while data := await stream.read(READ_SIZE):
                if not self._detached:
                    await self._queue.put(Chunk(name, data))
        except OSError as exc:  # a broken pipe ends this stream like EOF does
            log.warning("reading %s of %s failed: %s", name, self.argv[:3], exc)
        if not self._detached:
            await self._queue.put(None)

    async def _watch_exit(self) -> None:
        assert self._proc is not None
        await self._proc.wait()
        if not self._detached:
            await self._queue.put(EXITED)

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[Chunk]:
        """Yield output until both streams close and the command exits, or the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        open_streams = 2
        drain_until: float | None = None
        group_stopped = False
        timed_out = False
        while open_streams:
            limit = deadline if drain_until is None else min(deadline, drain_until)
            try:
                item = await asyncio.wait_for(self._queue.get(), limit - loop.time())
            except TimeoutError:
                if drain_until is None or deadline < drain_until:
                    timed_out = True
                    break
                if group_stopped:
                    # Something outside the command's session (a daemonized child that
                    # kept the pipe) holds the output open: stop reading it.
                    break
                await self._stop_session()
                group_stopped = True
                drain_until = loop.time() + self._grace
                continue
            if isinstance(item, _Exited):
                # The command is gone; whatever it left behind gets a grace period to
                # finish writing, then it is stopped so that the pipes close.
                drain_until = loop.time() + self._grace
            elif item is None:
                open_streams -= 1
            else:
                yield item
        if timed_out:
            log.warning("command timed out after %.0f s: %s", self._timeout, self.argv[:3])
            await self._stop_session()
        await self._leader_exit(self._grace)
        self.outcome = self._outcome(timed_out)

    def _outcome(self, timed_out: bool) -> Outcome:
        assert self._proc is not None
        return Outcome(
            exit_code=self._proc.returncode,
            duration=time.monotonic() - self._started,
            timed_out=timed_out,
            warm=self._proc.warm,
            command_seconds=self._proc.command_seconds,
            stopped=self._stopped,
            killed_after=self._killed_after,
        )

    async def stop(self) -> None:
        """Stop the command's session now (TERM, the grace period, KILL); its reader then
        sees the output end and the command's outcome as usual."""
        await self._stop_session()

    async def _leader_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the command's own process to exit (not for its pipes)."""
        proc = self._proc
        assert proc is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), timeout)
        return proc.returncode is not None

    async def _stop_session(self) -> None:
        """TERM everything the command started, give it the grace period, KILL what is left."""
        proc = self._proc
        if proc is None or (proc.outlives_command and proc.returncode is not None):
            return  # a warm worker that ran it is waiting for the next command now
        running = proc.returncode is None  # else only what it left behind is stopped
        # Set before the signal, as killed_after is below: the process may die, and its
        # outcome be read, before the signal's await returns.
        was_stopped, self._stopped = self._stopped, self._stopped or running
        if not await self._census.signal(proc.pid, signal.SIGTERM):
            self._stopped = was_stopped  # nothing was left to signal
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._grace
        while loop.time() < give_up:
            if not await self._census.alive(proc.pid):
                break
            await asyncio.sleep(_POLL)
        else:
            # Set before the signal: whoever reads the outcome once it died knows why.
            if proc.returncode is None:
                self._killed_after = self._grace
            if await self._census.signal(proc.pid, signal.SIGKILL):
                log.warning("command %s ignored SIGTERM; sent SIGKILL", self.argv[:3])
            else:
                self._killed_after = None  # it ended by itself just before
        await self._leader_exit(self._grace)

    async def _cleanup(self) -> None:
        try:
            await self._stop_session()
            if self._witness is not None and self._proc is not None:
                await in_thread(self._witness.forget, self._proc.pid)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._proc is not None:
                if self.outcome is None:  # left early (a client that went away): still say how
                    self.outcome = self._outcome(timed_out=False)
                self._proc.release()
            if self._pipes is not None:
                self._pipes.close()
