"""Where one job's record and output are kept: what :class:`bridge.jobs.job.Job` writes and
its followers read, whichever store holds them.

Two stores keep jobs: the daemon's folder (:class:`FolderStore`, the default: the files of
:mod:`.spool`, written from worker threads) and a PostgreSQL database that several bridges
share (``jobs_database``: :mod:`bridge.jobs.shared`). A job and its followers only
see this interface.

A store that fails to write raises :class:`StoreFailed` (an ``OSError``, as a full disk's).
Where the store may come back (a database that restarts), ``resumable`` says so: the job
keeps writing once it is back, and notes the gap; a folder that failed stays failed for the
job (today's behaviour: the spooling ends, with a warning).
"""

from __future__ import annotations

from typing import Any, Protocol

from bridge.jobs.spool import READ_BLOCK, JobFiles, Piece
from bridge.offload import in_thread


class StoreFailed(OSError):
    """Writing to the job's store failed (a full disk or database, a lost connection)."""


class JobStore(Protocol):
    """One job's record and output."""

    job_id: str
    resumable: bool  # a failed write may succeed later: the job tries again

    async def append(self, stream: str, offset: int, data: bytes) -> None:
        """Add ``data`` of ``stream`` at byte ``offset`` (the output's size so far)."""

    async def write_record(self, record: dict[str, Any]) -> None:
        """Replace the record (the status) with ``record``."""

    async def read(self, offset: int, limit: int = READ_BLOCK) -> list[Piece]:
        """Output from byte ``offset``, at most ``limit`` bytes, split where the stream
        changes; nothing past what is stored."""

    async def finish(self, record: dict[str, Any]) -> None:
        """The job ended: write its last record, then let go of what the job held."""


class FolderStore:
    """A job's files in the daemon's jobs folder, written and read from worker threads."""

    resumable = False

    def __init__(self, files: JobFiles) -> None:
        self.files = files
        self.job_id = files.job_id

    async def append(self, stream: str, offset: int, data: bytes) -> None:
        await in_thread(self.files.append, stream, offset, data)

    async def write_record(self, record: dict[str, Any]) -> None:
        await in_thread(self.files.write_record, record)

    async def read(self, offset: int, limit: int = READ_BLOCK) -> list[Piece]:
        return await in_thread(self.files.read, offset, limit)

    async def finish(self, record: dict[str, Any]) -> None:
        await in_thread(self._close, record)

    def _close(self, record: dict[str, Any]) -> None:
        """Blocking: write the final record, then close the output. Closing lets go of its
        lock, and a daemon sharing the folder that then finds the lock free takes the job for
        a dead daemon's: by then the record must say how it ended, or it is marked lost."""
        try:
            self.files.write_record(record)
        finally:
            self.files.close()
