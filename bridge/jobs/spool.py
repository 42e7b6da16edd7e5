"""A job's files: its record (``job.json``) and its output, on disk, so that both outlive the
connection that started it and the daemon itself.

One folder per job under ``jobs_folder``, named by its id. ``output`` holds the command's
text as a text stream would have sent it (stdout and stderr interleaved, in order), so that a
byte offset into it is what a client that read N bytes reattaches with; ``streams`` notes,
as ``OFFSET STREAM`` lines, where the text switches between stdout and stderr, which the ndjson
replay needs. The record is replaced whole (a temporary file renamed over it), so a reader
never sees half of one. The folders are mode 0700 and the files 0600: the daemon's user's alone.

The switches are also kept in memory (:class:`Switches`), so that a follower's read does not
parse the whole ``streams`` file again for every block: a job this daemon runs adds each switch
there as it writes it to the file; a job a previous daemon left reads its file once, at its
first read (or open), and keeps what it read.

A running job's output is locked (``flock``, exclusive) by the daemon that runs it, from before
its first record until after its last: another daemon sharing the folder that finds the lock
free (:meth:`JobFiles.claimed`) knows no live daemon runs the job, and reads its final record
if it has one. Where the filesystem cannot lock (NFS without a lock manager), jobs run without
the lock, and one warning says that the guarantee is gone.

Everything here blocks on files and runs in worker threads: the job writes from one, one call
at a time, while its followers read from others; the switches in memory are shared under a lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

RECORD = "job.json"
OUTPUT = "output"
STREAMS = "streams"
JOB_ID = re.compile(r"^[0-9a-f]{20}$")  # time_ns in hex (15-16 digits), then random hex
READ_BLOCK = 64 * 1024
STREAM_NAMES = ("stdout", "stderr")
# flock's errors where the filesystem cannot lock at all (NFS without lockd, some FUSE mounts):
# nothing to wait for, unlike EWOULDBLOCK (another holds the lock).
CANNOT_LOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP})

log = logging.getLogger(__name__)
# Whether the "cannot lock" warning was logged: once a process, not once for every job.
_told_cannot_lock = False
_telling = threading.Lock()


@dataclass(frozen=True)
class Piece:
    """Output text of one stream, starting at byte ``offset`` of the job's output."""

    stream: str
    offset: int
    data: bytes


class Switches:
    """Where one job's output switches streams, in memory: byte offsets in the order they were
    written (never decreasing, as the output only grows), each with the stream that starts
    there. Added to by the job's writer thread, read by its followers' threads at once."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        # 9 bytes a switch, not a tuple's ~90: a job may switch at every line of 64 MiB.
        self._offsets = array("q")
        self._streams = bytearray()  # index into STREAM_NAMES
        self._lock = threading.Lock()
        for line in lines:  # the file's lines; ones that do not parse are skipped
            at, _, name = line.partition(" ")
            if at.isdigit():
                self.add(int(at), name)

    def add(self, offset: int, stream: str) -> None:
        if stream not in STREAM_NAMES:
            return  # as the file's reader skips its line: the bytes stay the last stream's
        with self._lock:
            self._offsets.append(offset)
            self._streams.append(STREAM_NAMES.index(stream))

    def stream_at(self, offset: int) -> tuple[str, int | None]:
        """The stream of the byte at ``offset`` (the last switch at or before it; stdout
        before any), and the offset of the next switch after it (None: none yet)."""
        with self._lock:
            index = bisect_right(self._offsets, offset)
            stream = STREAM_NAMES[self._streams[index - 1]] if index else "stdout"
            after = self._offsets[index] if index < len(self._offsets) else None
        return stream, after


class JobFiles:
    """The files of one job. Writes go through one open output file, in order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._output: IO[bytes] | None = None
        self._streams: IO[str] | None = None
        self._last_stream: str | None = None
        self._switches: Switches | None = None  # None: not read from the file yet
        self._loading = threading.Lock()

    @property
    def job_id(self) -> str:
        return self.folder.name

    def create(self, record: dict[str, Any]) -> None:
        """Make the job's folder, its output (locked) and its first record; on a failure
        part-way, nothing is left: no open file, no folder without a record."""
        self.folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.mkdir(mode=0o700)  # raises if it exists: then it is not ours to remove
        try:
            self._switches = Switches()  # a new job: no switch yet, none to read
            self.open()  # locked before its record says it runs: see claimed()
            self.write_record(record)
        except BaseException:
            self.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def open(self) -> None:
        """Open the output for appending, for as long as the job runs (until close()), and
        lock it: the kernel lets the lock go when this daemon ends, however it ends. On a
        failure part-way, what was opened is closed again."""
        self._known_switches()  # what is there already, before anything is added
        output = open(self.folder / OUTPUT, "ab", opener=_owner_only)
        try:
            _lock(output.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB, self.folder)
            streams = open(self.folder / STREAMS, "a", encoding="ascii", opener=_owner_only)
        except BaseException:
            output.close()
            raise
        self._output, self._streams = output, streams

    @contextlib.contextmanager
    def claimed(self) -> Iterator[bool]:
        """Hold the output's lock (exclusive, not waiting) for the ``with`` block: True if
        held, False if a live daemon (another one sharing the folder) runs this job now and
        holds it. While it is held no daemon runs the job, so a record read in the block is
        the last its daemon wrote (it wrote it before letting go). Also True where nothing can be
        locked: no output (a record is only written once its output is locked, so its
        daemon is gone) or a filesystem that cannot lock (the warning says what is lost)."""
        try:
            output = open(self.folder / OUTPUT, "rb")
        except FileNotFoundError:
            yield True
            return
        with output:
            try:
                _lock(output.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB, self.folder)
            except BlockingIOError:
                yield False
                return
            yield True  # let go when the file closes, after the block

    def append(self, stream: str, offset: int, data: bytes) -> None:
        """Add ``data`` (of ``stream``) at ``offset``; OSError (a full disk) goes to the caller."""
        assert self._output is not None and self._streams is not None  # created
        if stream != self._last_stream:
            self._streams.write(f"{offset} {stream}\n")  # for the next daemon
            self._streams.flush()
            # Before the data: a follower that reads a byte finds the switch to its stream.
            self._known_switches().add(offset, stream)
            self._last_stream = stream
        self._output.write(data)
        self._output.flush()

    def close(self) -> None:
        for handle in (self._output, self._streams):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        self._output = self._streams = None

    def write_record(self, record: dict[str, Any]) -> None:
        partial = self.folder / f".{RECORD}.partial"
        try:
            with open(partial, "w", encoding="utf-8", opener=_owner_only) as out:
                json.dump(record, out, default=str)
            os.replace(partial, self.folder / RECORD)
        except BaseException:
            with contextlib.suppress(OSError):  # half a record (a full disk) is no record
                partial.unlink()
            raise

    def read_record(self) -> dict[str, Any]:
        record: dict[str, Any] = json.loads((self.folder / RECORD).read_text("utf-8"))
        return record

    def size(self) -> int:
        try:
            return (self.folder / OUTPUT).stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, offset: int, limit: int = READ_BLOCK) -> list[Piece]:
        """Output from byte ``offset``, at most ``limit`` bytes, split where the stream changes."""
        try:
            with open(self.folder / OUTPUT, "rb") as output:
                output.seek(offset)
                data = output.read(limit)
        except FileNotFoundError:
            return []
        # Looked at after the data: each byte read was written after its switch was added.
        switches = self._known_switches()
        pieces: list[Piece] = []
        start = 0
        while start < len(data):
            at = offset + start
            stream, switch_at = switches.stream_at(at)
            end = len(data) if switch_at is None else min(len(data), switch_at - offset)
            pieces.append(Piece(stream, at, data[start:end]))
            start = end
        return pieces

    def _known_switches(self) -> Switches:
        """The switches in memory; a job a previous daemon left reads its file the first time."""
        with self._loading:
            if self._switches is None:
                try:
                    lines = (self.folder / STREAMS).read_text("ascii").splitlines()
                except FileNotFoundError:
                    lines = []
                self._switches = Switches(lines)
            return self._switches


def _lock(fd: int, operation: int, folder: Path) -> None:
    """``flock(fd, operation)``; BlockingIOError when another holds it. A filesystem that
    cannot lock is not a job's failure: the job goes on without the lock, and the first time
    a warning says what that costs."""
    try:
        fcntl.flock(fd, operation)
    except OSError as exc:
        if exc.errno not in CANNOT_LOCK:
            raise
        global _told_cannot_lock
        with _telling:
            if _told_cannot_lock:
                return
            _told_cannot_lock = True
        log.warning(
            "job files in %s cannot be locked (%s): jobs run without the lock, so a second "
            "daemon sharing this jobs folder can no longer tell this daemon's running jobs "
            "from a dead one's, and may mark them lost",
            folder.parent,
            exc,
        )


def _owner_only(path: str, flags: int) -> int:
    """``open``'s opener: a file it creates is mode 0600 (the umask can only narrow it)."""
    return os.open(path, flags, 0o600)


def new_job_id() -> str:
    """Sortable by creation (nanoseconds), unguessable enough to be no handle on its own."""
    return f"{time.time_ns():016x}"[-16:] + os.urandom(2).hex()


def existing(folder: Path) -> list[JobFiles]:
    """The jobs kept in ``folder``, oldest first; anything else there is left alone."""
    try:
        names = sorted(entry.name for entry in folder.iterdir() if JOB_ID.match(entry.name))
    except FileNotFoundError:
        return []
    return [JobFiles(folder / name) for name in names]


def remove(files: JobFiles) -> None:
    files.close()
    shutil.rmtree(files.folder, ignore_errors=True)
