"""One command forked by the warm helper, as the daemon sees it; and handing the helper a
command (its argv, environment and file descriptors) without blocking the loop.

The protocol is bridge/airflow_side/warm_protocol.py.
"""

from __future__ import annotations

import array
import asyncio
import logging
import signal
import socket
from collections.abc import Sequence

from bridge.airflow_side import warm_protocol as protocol
from bridge.offload import in_thread
from bridge.process.sessions import signal_session

log = logging.getLogger(__name__)


async def send_with_fds(
    sock: socket.socket, data: bytes, fds: Sequence[int], timeout: float
) -> None:
    """Send one datagram with file descriptors attached on a non-blocking socket, waiting
    (on the loop, not in a syscall) while the helper's queue is full."""
    loop = asyncio.get_running_loop()
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    give_up = loop.time() + timeout
    while True:
        try:
            sock.sendmsg([data], ancillary)
            return
        except BlockingIOError:
            pass
        writable: asyncio.Future[None] = loop.create_future()
        loop.add_writer(sock, _wake, writable)
        try:
            await asyncio.wait_for(writable, give_up - loop.time())
        finally:
            loop.remove_writer(sock)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class WarmProcess:
    """A command forked by the helper, with what :class:`~bridge.process.command.Command`
    reads from a process: pid, returncode, wait(), release()."""

    warm: bool = True

    def __init__(self, report: socket.socket) -> None:
        self._report = report
        self._watcher: asyncio.Task[None] | None = None
        self._report_writer: asyncio.StreamWriter | None = None
        self._exited = asyncio.Event()
        self.pid = 0
        self.outlives_command = False  # run by a worker of the helper, which goes on
        self.returncode: int | None = None
        self.command_seconds: float | None = None  # time inside the child, from the helper

    async def open(self, timeout: float) -> None:
        """Wait until the child leads its own session (it reports its pid then)."""
        # Keep the writer: a collected StreamWriter closes the connection.
        lines, self._report_writer = await asyncio.open_unix_connection(sock=self._report)
        line = await asyncio.wait_for(lines.readline(), timeout)
        # Exited first: the child died before it could tell (the helper tells its exit).
        first = protocol.decode(line, protocol.CommandStarted, protocol.CommandExited)
        self.pid = first.pid
        if isinstance(first, protocol.CommandStarted):
            self.outlives_command = first.outlives_command
        else:
            self._record(first)
        self._watcher = asyncio.create_task(self._watch(lines))

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def _record(self, exited: protocol.CommandExited) -> None:
        if self.returncode is None:
            self.command_seconds = float(exited.seconds)
            self.returncode = exited.code
            self._exited.set()

    async def _watch(self, lines: asyncio.StreamReader) -> None:
        while self.returncode is None:
            line = await lines.readline()
            try:
                exited = protocol.decode(line, protocol.CommandExited) if line else None
            except protocol.ProtocolError as exc:
                log.error("warm helper: command pid %s: %s", self.pid, exc)
                exited = None
            if exited is None:
                # The helper died and took the exit status with it: nothing could tell this
                # command's result any more, so it is stopped rather than left behind.
                log.warning("warm helper lost command pid %s; stopping it", self.pid)
                await in_thread(signal_session, self.pid, signal.SIGKILL)
                self.returncode = -signal.SIGKILL
                self._exited.set()
                return
            self._record(exited)

    async def abandon(self) -> None:
        """The launch failed half-way: stop what may have started and close everything."""
        if self.pid:
            await in_thread(signal_session, self.pid, signal.SIGKILL)
        self.release()

    def release(self) -> None:
        """Close the report socket."""
        if self._watcher is not None:
            self._watcher.cancel()
        if self._report_writer is not None:
            self._report_writer.close()
        self._report.close()
