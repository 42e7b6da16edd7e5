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
