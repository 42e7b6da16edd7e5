"""Looking for processes by a marker in their command line (Linux /proc)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def new_marker(prefix: str = "m") -> str:
    """A dag_id-safe string unique to one test."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def processes_with(marker: str) -> list[int]:
    """PIDs of live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _stat_fields(pid: int) -> list[str] | None:
    try:
        # Fields after the command name, which sits in parentheses and may contain spaces.
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_group_of(pid: int) -> int:
    fields = _stat_fields(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[2])


def session_of(pid: int) -> int:
    fields = _stat_fields(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[3])


def live_members(*, group: int | None = None, session: int | None = None) -> list[int]:
    """Live processes in a process group or session (Airflow renames its workers, so a
    command-line marker cannot find them all)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z":
            continue
        if (group is not None and int(fields[2]) == group) or (
            session is not None and int(fields[3]) == session
        ):
            found.append(int(entry.name))
    return found
