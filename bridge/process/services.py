"""Services started with ``daemon=true``: the CLI forks them and returns at once, so its exit
code only says that the fork happened. Whether the service stayed up is told by its pid file:
a new one appears, and the process it names still runs a moment later. A service that died
at once is an error, with the end of its stderr file to say why.

Under systemd the bridge starts none: the unit's KillMode=mixed would SIGKILL a daemonized
service with the bridge at every stop, restart or crash, and it would inherit the bridge's
sandbox. Airflow's own units are the place for Airflow's services (docs/systemd.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.offload import in_thread

SETTLE = 2.0  # seconds the service must still run after its pid file appeared
_LOOK_EVERY = 0.2  # nothing announces a pid file: look for it
STDERR_TAIL = 2000  # characters of a dead service's stderr file in the answer

Stamp = tuple[int, int] | None


def under_systemd(environ: Mapping[str, str]) -> bool:
    """systemd sets INVOCATION_ID for every process of a unit it starts."""
    return bool(environ.get("INVOCATION_ID"))


@dataclass(frozen=True)
class ServiceFiles:
    """Where a daemonized service writes its pid and its output (Airflow's defaults, or
    the ones the call named)."""

    pid: Path
    stdout: Path
    stderr: Path

    @classmethod
    def of(cls, service: str, home: Path, named: Mapping[str, str]) -> ServiceFiles:
        def path(kind: str, suffix: str) -> Path:
            return Path(named[kind]) if named.get(kind) else home / f"airflow-{service}.{suffix}"

        return cls(path("pid", "pid"), path("stdout", "out"), path("stderr", "err"))

    def pid_stamp(self) -> Stamp:
        """What changes when the pid file is written anew. Blocking."""
        try:
            info = self.pid.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns)


@dataclass(frozen=True)
class Started:
    """How a daemonized service's start went."""

    pid: int | None
    problem: str | None  # None: it runs

    def describe(self, files: ServiceFiles) -> dict[str, object]:
        return {"pid": self.pid, "pid_file": str(files.pid), "stderr_file": str(files.stderr)}


async def confirm(files: ServiceFiles, before: Stamp, timeout: float) -> Started:
    """Wait up to ``timeout`` for a new pid file (not the one stamped ``before``), then for
    the service to be still running a moment later."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    pid = None
    while pid is None:
        if await in_thread(files.pid_stamp) != before:
            pid = await in_thread(_read_pid, files.pid)
        if pid is None:
            if loop.time() > give_up:
                return Started(None, f"no pid file {files.pid} within {timeout:g} s")
            await asyncio.sleep(_LOOK_EVERY)
    await asyncio.sleep(SETTLE)
    if not _alive(pid):
        return Started(pid, f"it exited right after it started (pid {pid})")
    return Started(pid, None)


def stderr_tail(files: ServiceFiles) -> str:
    """The end of the service's stderr file, where it says why it died. Blocking."""
    try:
        with open(files.stderr, "rb") as err:
            err.seek(0, os.SEEK_END)
            err.seek(max(0, err.tell() - STDERR_TAIL))
            return err.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    return True
