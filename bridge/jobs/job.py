"""One job: a command's record and output in its store (:mod:`.store`), and while it runs,
the live state that followers wait on.

A job is made by a call with ``detach=true`` (or a stream); a task of the HTTP layer runs its
command through the command path and writes here (:meth:`Job.write`, :meth:`Job.finish`).
Followers (``GET .../jobs/<id>/output``) read the stored output from any offset and wait for
more with :meth:`Job.changed`. A job another bridge runs (``jobs_database``) is a view: its
record and size follow what the database says (:meth:`Job.seen`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from bridge.jobs.spool import JobFiles
from bridge.jobs.store import FolderStore, JobStore
from bridge.process.command import Command

log = logging.getLogger(__name__)

RUNNING_STATES = ("queued", "running")
ENDED_STATES = ("succeeded", "failed", "cancelled", "timed_out", "lost")


class Job:
    """One job: its record (what the status shows) and, while it runs, its output's end."""

    def __init__(
        self,
        store: JobStore,
        record: dict[str, Any],
        limit: int = 0,
        on_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.on_end = on_end  # told the record once the job ended (job webhooks)
        self.record = record
        self.limit = limit  # output bytes kept on disk; 0: no more are taken
        self.size = int(record.get("output_size") or 0)
        self.command: Command | None = None  # while it runs
        self.followers = 0  # readers of its output now
        self.followers_beyond = 0  # of them, those who asked for bytes past what is kept
        # A stream's job: its command is stopped this long after its last follower left
        # (kill_on_disconnect); None: it runs on (a detached job, or kill_on_disconnect off).
        self.reattach_wait: float | None = None
        self.streamed = False
        self.cancelled = False  # DELETE, or no follower came back in time
        self.cancelled_by: str | None = None  # a DELETE's, in words: which token sent it
        self.abandoned = False  # the latter: a stream's client left and none came back
        # Set by stop(): what the job waits for besides its command (a run) ends too.
        self.stop_requested = asyncio.Event()
        self._pulse = asyncio.Event()
        self._spooling = True
        self.live: tuple[str, str] | None = None  # past the spool: the piece handed over now
        self.live_number = 0  # how many pieces were handed over
        self._taken = 0  # followers that took the current one
        # One writer of the record at a time, each writing the record as it is then: the
        # last write is the latest record (a note may come while the job's task writes).
        self._record_lock = asyncio.Lock()
        # Another bridge runs it (jobs_database): its record and size follow the database's,
        # and a cancel is that bridge's to carry out.
        self.elsewhere = False
        self._unkept = 0  # output bytes a resumable store failed to take since it last took some
        self._unkept_at = 0  # the output's size when that began
        self._unkept_why = ""

    @property
    def job_id(self) -> str:
        return self.store.job_id

    @property
    def files(self) -> JobFiles:
        """The job's files, where the daemon's folder keeps it."""
        assert isinstance(self.store, FolderStore), "a job of the jobs database has no files"
        return self.store.files

    @property
    def state(self) -> str:
        return str(self.record["state"])

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def describe(self) -> dict[str, Any]:
        """The status: the envelope as far as it goes, with the job's own fields."""
        return {**self.record, "job_id": self.job_id, "output_size": self.size}

    @property
    def pulse(self) -> asyncio.Event:
        """Set at the next change (more output, a new state); take it before looking."""
        return self._pulse

    async def changed(self) -> None:
        """Wait until more output arrives or the job ends (return at once if it has)."""
        if not self.ended:
            await self._pulse.wait()

    def notify(self) -> None:
        """Wake whoever waits on :attr:`pulse`: more output, a new state, a new follower."""
        self._pulse.set()
        self._pulse = asyncio.Event()

    async def stop(self, why: str) -> None:
        """Stop its command's session (TERM, grace, KILL), and any wait of its call; ``why``
        ends its audit line."""
        self.stop_requested.set()
        command = self.command
        if command is not None:
            command.ending = why
            await command.stop()

    async def cancel(self, why: str) -> None:
        """Stop the command of a job this bridge runs, as cancelled ``why`` (who asked, for
        its result's warning and audit line), and wait until it recorded its end."""
        if not self.cancelled:
            self.cancelled = True
            self.cancelled_by = why
            await self.stop(f"{why}: stopped")
        while not self.ended:
            await self.changed()

    async def set_state(self, state: str) -> None:
        self.record["state"] = state
        if state == "running":
            self.record["started_at"] = time.time()
        await self._write_record()
        self.notify()

    async def note(self, warning: str, **fields: Any) -> None:
        """Add ``warning`` (and ``fields``) to its record now; the warning stays in the
        record it ends with."""
        self.record.update(fields)
        self.record["warning"] = "; ".join(filter(None, [self.record.get("warning"), warning]))
        await self._write_record()
        self.notify()

    async def _write_record(self) -> None:
        async with self._record_lock:
            await self.store.write_record(self.describe())

    def seen(self, record: dict[str, Any], size: int) -> None:
        """A job another bridge runs: its record and size as the store has them now."""
        self.record = record
        self.size = max(self.size, size)
        self.notify()

    async def write(self, stream: str, text: str) -> None:
        """Spool output up to the limit. Past it (or a full disk, which ends the spooling,
        never the job) the output is handed to the followers there are, live, one piece at
        a time: a stream is never cut, what is kept is."""
        if not text:
            return
        if self._spooling:
            data = text.encode()
            room = self.limit - self.size
            if len(data) <= room:
                await self._spool(stream, data)
                return
            head = data[: max(0, room)].decode("utf-8", "ignore")
            self.record["output_cut"] = True
            await self._spool(stream, head.encode())
            self._spooling = False  # the marker is added at the end, after the live followers
            text = text[len(head) :]
        await self._hand_over(stream, text)

    async def _spool(self, stream: str, data: bytes) -> None:
        try:
            await self.store.append(stream, self.size, data)
        except OSError as exc:
            if self.store.resumable:  # a database that went away: kept again once it is back
                if not self._unkept:
                    self._unkept_at, self._unkept_why = self.size, str(exc)
                    log.warning("job %s: output not kept for now: %s", self.job_id, exc)
                self._unkept += len(data)
                return
            self._spooling = False
            warning = f"spooling the output stopped at byte {self.size}: {exc}"
            self.record["warning"] = "; ".join(filter(None, [self.record.get("warning"), warning]))
            log.warning("job %s: %s", self.job_id, warning)
            return
        self.size += len(data)
        if self._unkept:
            await self._note_gap()
        self.notify()

    async def _note_gap(self) -> None:
        """The store took output again after failing: the job's record says what is missing."""
        warning = (
            f"{self._unkept} bytes of output were not kept at byte {self._unkept_at} "
            f"({self._unkept_why})"
        )
        self._unkept = 0
        log.warning("job %s: %s", self.job_id, warning)
        self.record["warning"] = "; ".join(filter(None, [self.record.get("warning"), warning]))
        with contextlib.suppress(OSError):  # the final record carries it anyway
            await self._write_record()

    async def _hand_over(self, stream: str, text: str) -> None:
        """Give a piece past the spool to every follower, and wait until each took it (a
        slow one slows the command, as a slow client of a stream always did)."""
        if not self._takers():
            return
        self.live = (stream, text)
        self.live_number += 1
        self._taken = 0
        self.notify()
        while self._taken < self._takers():
            await self._pulse.wait()

    def _takers(self) -> int:
        """Followers a live piece is for: not those that asked for bytes past what is kept
        (they wait for the end)."""
        return self.followers - self.followers_beyond

    def took_live(self) -> None:
        """A follower sent the live piece on."""
        self._taken += 1
        self.notify()

    async def finish(self, state: str, result: dict[str, Any]) -> None:
        """The job ended: its record becomes the result envelope with the job's fields."""
        if self.record.get("output_cut"):
            self._spooling = True
            marker = (
                f"\n[airflow-rest-bridge: the output kept ends here, at {self.limit} bytes "
                "(job_output_limit); the command ran on]\n"
            )
            await self._spool("stderr", marker.encode())
        if self._unkept:
            self.record["warning"] = "; ".join(
                filter(
                    None,
                    [
                        self.record.get("warning"),
                        f"{self._unkept} bytes of output at its end were not kept "
                        f"({self._unkept_why})",
                    ],
                )
            )
            self._unkept = 0
        warning = self.record.get("warning")
        self.record = {**self.record, **result, "state": state, "ended_at": time.time()}
        if warning and warning not in str(self.record.get("warning", "")):
            self.record["warning"] = "; ".join(filter(None, [result.get("warning"), warning]))
        self.command = None
        async with self._record_lock:
            try:
                await self.store.finish(self.describe())
            except OSError as exc:
                log.warning("job %s: its record could not be written: %s", self.job_id, exc)
        self.notify()
        if self.on_end is not None:
            try:  # telling others (webhooks) never changes how the job ended
                self.on_end(self.describe())
            except Exception:
                log.exception("job %s: telling that it ended failed", self.job_id)
