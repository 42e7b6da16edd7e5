"""One command forked by the warm helper, as the daemon sees it; and handing the helper a
command (its argv, environment and three file descriptors) without blocking the loop.

The protocol is described in bridge/airflow_side/warm_helper.py.
"""

from __future__ import annotations

import array
import asyncio
import json
import logging
import signal
import socket
from collections.abc import Sequence
from typing import Any

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
        first = json.loads(await asyncio.wait_for(lines.readline(), timeout) or b"null")
        if not isinstance(first, dict) or not isinstance(first.get("pid"), int):
            raise ValueError(f"unexpected first report {first!r}")
        self.pid = first["pid"]
        self.outlives_command = bool(first.get("worker"))
        self._record(first)
        self._watcher = asyncio.create_task(self._watch(lines))

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def _record(self, report: dict[str, Any]) -> None:
        if "exit" in report and self.returncode is None:
            self.command_seconds = float(report.get("seconds", 0.0))
            self.returncode = int(report["exit"])
            self._exited.set()

    async def _watch(self, lines: asyncio.StreamReader) -> None:
        while self.returncode is None:
            line = await lines.readline()
            if not line:
                # The helper died and took the exit status with it: nothing could tell this
                # command's result any more, so it is stopped rather than left behind.
                log.warning("warm helper lost command pid %s; stopping it", self.pid)
                await in_thread(signal_session, self.pid, signal.SIGKILL)
                self.returncode = -signal.SIGKILL
                self._exited.set()
                return
            self._record(json.loads(line))

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
