"""Staging a DAG file upload: the name checked, the bytes streamed under a size cap to a temp
file inside the dags folder (same filesystem, a name the DAG parser skips) and fsync'd, so
that installing it later is one ``os.replace``. File work runs in a thread, never on the loop.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import RequestError
from bridge.offload import in_thread

log = logging.getLogger(__name__)

STAGING_PREFIX = ".airflow-rest-bridge-upload-"
STAGING_SUFFIX = ".tmp"  # neither .py nor a complete zip while written: the parser skips it
ALLOWED_SUFFIXES = (".py", ".zip")
_RAW_FILENAME = re.compile(r'filename="([^"]*)"|filename=([^";\s]+)')
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_DEFAULT_UMASK = 0o022


@dataclass
class StagedUpload:
    """An uploaded file, complete and fsync'd, waiting in the dags folder under a temp name."""

    path: Path
    name: str
    size: int

    def discard(self) -> None:
        """Remove the temp file (a no-op once it was installed). Blocking: one unlink."""
        self.path.unlink(missing_ok=True)


def check_upload_name(filename: str) -> str:
    """The client's filename, accepted only as a plain visible .py/.zip base name."""
    if not filename or filename in (".", ".."):
        raise RequestError("dag_file has no filename")
    if "/" in filename or "\\" in filename or "\x00" in filename:
        raise RequestError(f"dag_file name {filename!r} must be a base name, without a path")
    if filename.startswith("."):
        raise RequestError(f"dag_file name {filename!r} is hidden (starts with '.')")
    if not filename.endswith(ALLOWED_SUFFIXES):
        raise RequestError(f"dag_file name {filename!r} must end with .py or .zip")
    if not _SAFE_NAME.match(filename):
        raise RequestError(
            f"dag_file name {filename!r} may only contain letters, digits, '_', '-' and '.'"
        )
    return filename


async def stage_upload(
    raw_header: str,
    filename: str | None,
    chunks: AsyncIterator[bytes],
    dags_folder: Path,
    max_size: int,
) -> StagedUpload:
    """Stream one uploaded file (``chunks``, as they arrive) to a temp file in the dags
    folder, under the size cap. Its name is checked as the client sent it: in the part's
    raw Content-Disposition header (a parser may drop a leading '/') and as parsed."""
    for match in _RAW_FILENAME.finditer(raw_header):
        check_upload_name(match[1] if match[1] is not None else match[2])
    name = check_upload_name(filename or "")
    temp = _TempFile()
    try:
        await in_thread(temp.create, dags_folder)
        async for chunk in chunks:
            if temp.size + len(chunk) > max_size:
                raise RequestError(
                    f"dag_file is larger than max_upload_size ({max_size} bytes)", status=413
                )
            await in_thread(temp.write, chunk)
        if temp.size == 0:
            raise RequestError("dag_file is empty")
        path = await in_thread(temp.seal)
    except BaseException:
        await in_thread(temp.remove)
        raise
    return StagedUpload(path, name, temp.size)


class _TempFile:
    """The file an upload is written to. Each step runs in a thread and records what it
    did here, so that the clean-up after a failure or a cancellation knows what to undo."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.path: Path | None = None
        self.size = 0

    def create(self, folder: Path) -> None:
        if not folder.is_dir():
            raise RequestError(f"the dags folder {folder} does not exist", status=500)
        self.fd, name = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=STAGING_SUFFIX, dir=folder)
        self.path = Path(name)

    def write(self, chunk: bytes) -> None:
        assert self.fd is not None
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(chunk)

    def seal(self) -> Path:
        """The mode a file written by this process gets (mkstemp's is private, and Airflow's
        other processes must read it), the bytes on disk, and the file closed."""
        assert self.fd is not None and self.path is not None
        os.fchmod(self.fd, 0o666 & ~process_umask())
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        return self.path

    def remove(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def process_umask() -> int:
    """The process's umask, read from /proc (os.umask can only read it by changing it, which
    would race with every other thread creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _DEFAULT_UMASK


def clean_stale_uploads(folder: Path) -> int:
    """Remove temp files a crashed daemon left behind; returns how many. Blocking."""
    removed = 0
    for stale in folder.glob(STAGING_PREFIX + "*" + STAGING_SUFFIX):
        stale.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.warning("removed %d stale upload temp file(s) from %s", removed, folder)
    return removed
