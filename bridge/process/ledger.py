"""The ledger of running commands: written down while they run, so that the next start can
stop what a killed daemon left behind.

Every command runs in a session of its own, so that it can be stopped as a whole; a daemon
that is SIGKILLed (or crashes) stops nothing. Under systemd the unit's control group takes
care of that (KillMode=mixed); everywhere else this does: a running command has a small file
named by its session id holding its start time and its daemon's pid and start time, and the
next start stops whatever of it still runs, unless its daemon still lives (two daemons may
share an Airflow home). Start times (from /proc) keep a reused pid from being mistaken.
Everything here blocks on files and /proc: the command path calls it from a thread.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from bridge.process.sessions import signal_session, start_time

log = logging.getLogger(__name__)

FOLDER_NAME = ".airflow-rest-bridge-commands"


def folder_in(airflow_home: Path) -> Path:
    return airflow_home / FOLDER_NAME


class Ledger:
    """The files of running commands in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._warned = False

    def record(self, pid: int) -> None:
        started = start_time(pid)
        if started is None:
            return  # already gone
        me = os.getpid()
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            (self.folder / str(pid)).write_text(f"{started} {me} {start_time(me)}", "ascii")
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
        if start_time(int(daemon)) == daemon_started:
            continue  # a live daemon's command (another one's, or this one's own)
        if pid > 0 and start_time(pid) == started:
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
