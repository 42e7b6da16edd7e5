"""The jobs of one daemon, kept in its jobs folder (each one's files: :mod:`.spool`).

At startup the jobs a previous daemon kept are loaded: finished ones as they were, and one
that was still running when that daemon died as ``lost`` (the ledger has already stopped its
command), its output so far kept. A running job's output file is locked for as long as its
daemon lives, and let go only after the record says how the job ended: a second daemon
sharing the folder leaves the jobs of a live one alone (they are that one's to list, follow
and cancel), and marks a job lost only while it holds that lock itself. Finished jobs are
kept by count (per owner: one token's many jobs never push out another's) and age
(``jobs_to_keep``, ``job_max_age``). Jobs several bridges share are
:mod:`bridge.jobs.shared`'s: the same board, its jobs in a database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.jobs.job import ENDED_STATES, Job
from bridge.jobs.spool import JOB_ID, JobFiles, existing, new_job_id, remove
from bridge.jobs.store import FolderStore
from bridge.offload import in_thread

log = logging.getLogger(__name__)


class Jobs:
    """Every job this daemon knows, by id (oldest first), kept in its jobs folder. The jobs
    database's board (:class:`bridge.jobs.shared.board.SharedJobs`) is this with jobs other
    bridges run besides: it overrides where jobs are made, found, listed and removed."""

    instance: str | None = None  # the bridge's name among several (jobs_database)

    def __init__(
        self, folder: Path, on_end: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.folder = folder
        self.on_end = on_end  # each job created here is told it (job webhooks)
        self.jobs: dict[str, Job] = {}  # the jobs this daemon runs or ran, or loaded
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
        return self._add(Job(FolderStore(files), record, limit, self.on_end))

    def _add(self, job: Job) -> Job:
        self.jobs[job.job_id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        """A job this daemon runs, ran or loaded."""
        return self.jobs.get(job_id) if JOB_ID.match(job_id) else None

    async def find(self, job_id: str) -> Job | None:
        """The job with this id, wherever it runs; None if there is none."""
        return self.jobs.get(job_id) if JOB_ID.match(job_id) else None

    async def listing(self) -> list[Job]:
        """Every job kept, newest first."""
        return self.newest_first()

    def newest_first(self) -> list[Job]:
        """The jobs this daemon knows, newest first."""
        return list(reversed(self.jobs.values()))

    async def cancel_elsewhere(self, job: Job, why: str) -> None:
        """Have the bridge that runs ``job`` stop it; only the jobs database has such jobs."""
        raise AssertionError(f"job {job.job_id} runs on no other bridge")

    def start(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` (a job's command, a wait for its follower) in a task the daemon
        waits for on shutdown."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def prune(self, keep: int, max_age: float) -> None:
        """Remove finished jobs past ``keep`` of their owner's (each owner keeps its newest
        ``keep``) or older than ``max_age``."""
        old = [self.jobs[job_id] for job_id in past_keeping(self._kept(), keep, max_age)]
        for job in old:
            del self.jobs[job.job_id]
        for job in old:
            await in_thread(remove, job.files)

    def _kept(self) -> list[Kept]:
        return [Kept.of(job.job_id, job.record) for job in self.newest_first()]

    async def close(self) -> None:
        """Wait for the tasks of running jobs (the command path stops their commands)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(frozen=True)
class Kept:
    """What the retention rules look at in a job."""

    job_id: str
    owner: str | None  # None: kept from before owners were recorded
    ended_at: float | None  # None: it runs

    @classmethod
    def of(cls, job_id: str, record: dict[str, Any]) -> Kept:
        owner = record.get("owner")
        ended = record.get("state") in ENDED_STATES
        return cls(
            job_id,
            owner if isinstance(owner, str) else None,
            float(record.get("ended_at") or 0) if ended else None,
        )


def past_keeping(newest_first: list[Kept], keep: int, max_age: float) -> list[str]:
    """The ids of finished jobs past ``keep`` of their owner's (each owner keeps its newest
    ``keep``; 0 keeps all) or older than ``max_age``; running jobs are never among them."""
    now = time.time()
    seen: dict[str | None, int] = {}  # finished jobs of each owner so far, newest first
    old = []
    for job in newest_first:
        if job.ended_at is None:
            continue
        index = seen[job.owner] = seen.get(job.owner, 0) + 1
        if (keep and index > keep) or now - job.ended_at > max_age:
            old.append(job.job_id)
    return old


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
    job = Job(FolderStore(files), files.read_record())
    if not job.ended:
        with files.claimed() as ours:
            if not ours:
                return None
            # Read again under the lock: the job may have ended since the read above, its
            # daemon writing the last record and then letting go of the lock.
            job = Job(FolderStore(files), files.read_record())
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
