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


async def start_daemon(cfg: Path, port: int, **kwargs: Any) -> asyncio.subprocess.Process:
    """``python -m bridge`` as an operator starts it; returns once it logs 'serving on'."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "--config", str(cfg), "--port", str(port),
        stderr=asyncio.subprocess.PIPE, **kwargs,
    )  # fmt: skip
    assert proc.stderr is not None
    await asyncio.wait_for(line_containing(proc.stderr, "serving on"), timeout=120)
    return proc
