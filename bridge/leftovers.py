"""Commands a killed daemon left behind: written down while they run, stopped at the next start.

Every command runs in a session of its own, so that it can be stopped as a whole; a daemon
that is SIGKILLed (or crashes) stops nothing. Under systemd the unit's control group takes
care of that (KillMode=mixed); everywhere else this does: a running command has a small file
named by its session id holding its start time and its daemon's pid and start time, and the
next start stops whatever of it still runs, unless its daemon still lives (two daemons may
share an Airflow home). Start times (from /proc) keep a reused pid from being mistaken.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from bridge.runner import signal_session

log = logging.getLogger(__name__)

FOLDER_NAME = ".airflow-rest-bridge-commands"


def folder_in(airflow_home: Path) -> Path:
    return airflow_home / FOLDER_NAME


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return fields[19].decode()


class Ledger:
    """The files of running commands in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._warned = False

    def record(self, pid: int) -> None:
        started = _start_time(pid)
        if started is None:
            return  # already gone
        me = os.getpid()
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            (self.folder / str(pid)).write_text(f"{started} {me} {_start_time(me)}", "ascii")
        except OSError as exc:
            if not self._warned:  # a read-only home: say it once, keep serving
                log.warning("cannot note running commands in %s: %s", self.folder, exc)
                self._warned = True

    def forget(self, pid: int) -> None:
        try:
            (self.folder / str(pid)).unlink(missing_ok=True)
        except OSError:
            pass


def stop_leftovers(folder: Path) -> list[int]:
    """Stop (SIGKILL) the sessions of commands a previous daemon left running; their pids."""
    stopped: list[int] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return stopped
    for entry in entries:
        try:
            pid = int(entry.name)
            started, daemon, daemon_started = entry.read_text(encoding="ascii").split()
        except (OSError, ValueError):
            pid, started, daemon, daemon_started = 0, "", "0", ""
        if daemon != str(os.getpid()) and _start_time(int(daemon)) == daemon_started:
            continue  # another live daemon's command
        if pid > 0 and _start_time(pid) == started:
            signal_session(pid, signal.SIGKILL)
            stopped.append(pid)
        try:
            entry.unlink()
        except OSError:
            pass
    if stopped:
        log.warning(
            "stopped %d command(s) a previous daemon left running: pids %s",
            len(stopped),
            ", ".join(map(str, stopped)),
        )
    return stopped
