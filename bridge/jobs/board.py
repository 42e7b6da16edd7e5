"""The jobs of one daemon: each a command's record and output on disk (:mod:`.spool`), and
while it runs, the live state that followers wait on.

A job is made by a call with ``detach=true``; a task of the HTTP layer runs its command
through the command path and writes here (:meth:`Job.write`, :meth:`Job.finish`). Followers
(``GET .../jobs/<id>/output``) read the spooled output from any offset and wait for more with
:meth:`Job.changed`. At startup the jobs a previous daemon kept are loaded: finished ones as
they were, and one that was still running when that daemon died as ``lost`` (the ledger has
already stopped its command), its output so far kept. A running job's output file is locked
for as long as its daemon lives, and let go only after the record says how the job ended: a
second daemon sharing the folder leaves the jobs of a live one alone (they are that one's to
list, follow and cancel), and marks a job lost only while it holds that lock itself. Finished
jobs are kept by count (per owner: one token's many jobs never push out another's) and age
(``jobs_to_keep``, ``job_max_age``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bridge.jobs.spool import JOB_ID, JobFiles, existing, new_job_id, remove
from bridge.offload import in_thread
from bridge.process.command import Command

log = logging.getLogger(__name__)

RUNNING_STATES = ("queued", "running")
ENDED_STATES = ("succeeded", "failed", "cancelled", "timed_out", "lost")


class Job:
    """One job: its record (what the status shows) and, while it runs, its output's end."""

    def __init__(
        self,
        files: JobFiles,
        record: dict[str, Any],
        limit: int = 0,
        on_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.files = files
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

    @property
    def job_id(self) -> str:
        return self.files.job_id

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
            await in_thread(self.files.write_record, self.describe())

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
            await in_thread(self.files.append, stream, self.size, data)
        except OSError as exc:
            self._spooling = False
            warning = f"spooling the output stopped at byte {self.size}: {exc}"
            self.record["warning"] = "; ".join(filter(None, [self.record.get("warning"), warning]))
            log.warning("job %s: %s", self.job_id, warning)
            return
        self.size += len(data)
        self.notify()

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
        warning = self.record.get("warning")
        self.record = {**self.record, **result, "state": state, "ended_at": time.time()}
        if warning and warning not in str(self.record.get("warning", "")):
            self.record["warning"] = "; ".join(filter(None, [result.get("warning"), warning]))
        self.command = None
        async with self._record_lock:
            await in_thread(self._close_files)
        self.notify()
        if self.on_end is not None:
            try:  # telling others (webhooks) never changes how the job ended
                self.on_end(self.describe())
            except Exception:
                log.exception("job %s: telling that it ended failed", self.job_id)

    def _close_files(self) -> None:
        """Blocking: write the final record, then close the output. Closing lets go of its
        lock, and a daemon sharing the folder that then finds the lock free takes the job for
        a dead daemon's: by then the record must say how it ended, or it is marked lost."""
        try:
            self.files.write_record(self.describe())
        except OSError as exc:
            log.warning("job %s: its record could not be written: %s", self.job_id, exc)
        finally:
            self.files.close()


class Jobs:
    """Every job this daemon knows, by id (oldest first)."""

    def __init__(
        self, folder: Path, on_end: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.folder = folder
        self.on_end = on_end  # each job created here is told it (job webhooks)
        self.jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self, keep: int, max_age: float) -> None:
        """The jobs a previous daemon kept; what was running then is ``lost``."""
        for job in await in_thread(_kept_jobs, self.folder):
            self.jobs[job.job_id] = job
        await self.prune(keep, max_age)

    async def create(self, record: dict[str, Any], limit: int) -> Job:
        files = JobFiles(self.folder / new_job_id())
        record = {**record, "state": "queued", "created_at": time.time()}
        await in_thread(files.create, record)
        job = Job(files, record, limit, self.on_end)
        self.jobs[job.job_id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) if JOB_ID.match(job_id) else None

    def newest_first(self) -> list[Job]:
        return list(reversed(self.jobs.values()))

    def start(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` (a job's command, a wait for its follower) in a task the daemon
        waits for on shutdown."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def prune(self, keep: int, max_age: float) -> None:
        """Remove finished jobs past ``keep`` of their owner's (each owner keeps its newest
        ``keep``) or older than ``max_age``."""
        now = time.time()
        seen: dict[object, int] = {}  # finished jobs of each owner so far, newest first
        old = []
        for job in self.newest_first():
            if not job.ended:
                continue
            owner = job.record.get("owner")  # None: jobs kept from before owners were recorded
            owner = owner if isinstance(owner, str) else None
            index = seen[owner] = seen.get(owner, 0) + 1
            if (keep and index > keep) or now - float(job.record.get("ended_at") or 0) > max_age:
                old.append(job)
        for job in old:
            del self.jobs[job.job_id]
        for job in old:
            await in_thread(remove, job.files)

    async def close(self) -> None:
        """Wait for the tasks of running jobs (the command path stops their commands)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _kept_jobs(folder: Path) -> list[Job]:
    """Blocking: read the records in ``folder``; mark what was running ``lost``, unless
    another daemon sharing the folder still runs it."""
    jobs = []
    for files in existing(folder):
        try:
            job = _kept_job(files)
        except (OSError, ValueError) as exc:
            log.warning("ignoring job folder %s: %s", files.folder, exc)
            continue
        if job is not None:
            jobs.append(job)
    return jobs


def _kept_job(files: JobFiles) -> Job | None:
    """Blocking: the job in ``files``; None if another live daemon runs it (its job, not
    lost, and not this daemon's to show)."""
    job = Job(files, files.read_record())
    if not job.ended:
        with files.claimed() as ours:
            if not ours:
                return None
            # Read again under the lock: the job may have ended since the read above, its
            # daemon writing the last record and then letting go of the lock.
            job = Job(files, files.read_record())
            if not job.ended:
                job.size = files.size()
                job.record.update(
                    state="lost",
                    ended_at=time.time(),
                    warning="the daemon stopped while the job ran: its command was stopped "
                    "at the next start; the output up to then is kept",
                )
                try:
                    files.write_record(job.describe())
                except OSError as exc:
                    log.warning("job %s: %s", files.job_id, exc)
    job.size = files.size()  # a dead daemon's record may be behind its output
    return job
