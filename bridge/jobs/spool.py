"""A job's files: its record (``job.json``) and its output, on disk, so that both outlive the
connection that started it and the daemon itself.

One folder per job under ``jobs_folder``, named by its id. ``output`` holds the command's
text as a text stream would have sent it (stdout and stderr interleaved, in order), so that a
byte offset into it is what a client that read N bytes reattaches with; ``streams`` notes,
as ``OFFSET STREAM`` lines, where the text switches between stdout and stderr, which the ndjson
replay needs. The record is replaced whole (a temporary file renamed over it), so a reader
never sees half of one.

Everything here blocks on files: the job calls it from a worker thread, one call at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

RECORD = "job.json"
OUTPUT = "output"
STREAMS = "streams"
JOB_ID = re.compile(r"^[0-9a-f]{20}$")  # time_ns in hex (15-16 digits), then random hex
READ_BLOCK = 64 * 1024


@dataclass(frozen=True)
class Piece:
    """Output text of one stream, starting at byte ``offset`` of the job's output."""

    stream: str
    offset: int
    data: bytes


class JobFiles:
    """The files of one job. Writes go through one open output file, in order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._output: IO[bytes] | None = None
        self._streams: IO[str] | None = None
        self._last_stream: str | None = None

    @property
    def job_id(self) -> str:
        return self.folder.name

    def create(self, record: dict[str, Any]) -> None:
        self.folder.mkdir(mode=0o700, parents=True)
        self.write_record(record)
        self.open()

    def open(self) -> None:
        """Open the output for appending, for as long as the job runs (until close())."""
        self._output = open(self.folder / OUTPUT, "ab")
        self._streams = open(self.folder / STREAMS, "a", encoding="ascii")

    def append(self, stream: str, offset: int, data: bytes) -> None:
        """Add ``data`` (of ``stream``) at ``offset``; OSError (a full disk) goes to the caller."""
        assert self._output is not None and self._streams is not None  # created
        if stream != self._last_stream:
            self._streams.write(f"{offset} {stream}\n")
            self._streams.flush()
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
        with open(partial, "w", encoding="utf-8") as out:
            json.dump(record, out, default=str)
        os.replace(partial, self.folder / RECORD)

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
        switches = self._switches()
        try:
            with open(self.folder / OUTPUT, "rb") as output:
                output.seek(offset)
                data = output.read(limit)
        except FileNotFoundError:
            return []
        pieces: list[Piece] = []
        start = 0
        while start < len(data):
            at = offset + start
            stream = "stdout"
            end = len(data)
            for switch_at, name in switches:  # in offset order
                if switch_at <= at:
                    stream = name
                    continue
                end = min(end, switch_at - offset)
                break
            pieces.append(Piece(stream, at, data[start:end]))
            start = end
        return pieces

    def _switches(self) -> list[tuple[int, str]]:
        try:
            lines = (self.folder / STREAMS).read_text("ascii").splitlines()
        except FileNotFoundError:
            return []
        switches = []
        for line in lines:
            at, _, name = line.partition(" ")
            if at.isdigit() and name in ("stdout", "stderr"):
                switches.append((int(at), name))
        return switches


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
