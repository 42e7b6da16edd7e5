"""Small helpers shared by the tests: reading streams, starting the real daemon."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_cfg(path: Path, section: str) -> Path:
    path.write_text(f"[core]\ndags_folder = {path.parent}\n\n[rest_api_plugin]\n{section}\n")
    return path


async def read_until(response: Any, needle: bytes) -> bytes:
    """Read a streamed response until ``needle`` has arrived; return all read so far."""
    seen = b""
    async for data in response.content.iter_any():
        seen += data
        if needle in seen:
            return seen
    raise AssertionError(f"{needle!r} never arrived: {seen[-500:]!r}")


async def line_containing(stream: asyncio.StreamReader, needle: str) -> str:
    while line := (await stream.readline()).decode():
        if needle in line:
            return line
    raise AssertionError(f"the daemon exited before logging {needle!r}")


class Daemon:
    """``python -m bridge`` as an operator starts it, its stderr read continuously (so that
    the pipe never fills) and searchable line by line."""

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
        return code


async def start_daemon(cfg: Path, port: int, **kwargs: Any) -> Daemon:
    """Start the daemon and return once it logs 'serving on'."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "--config", str(cfg), "--port", str(port),
        stderr=asyncio.subprocess.PIPE, **kwargs,
    )  # fmt: skip
    daemon = Daemon(proc)
    await daemon.line_containing("serving on")
    return daemon


def fault(marker: str, mode: str, **extra: str) -> dict[str, str]:
    """The call that makes tests/fake_airflow.py run fault MODE, MARKER in its command line."""
    return {
        "api": "test",
        "dag_id": marker,
        "task_id": mode,
        "execution_date": "2024-01-02T03:04:05",
        **extra,
    }
