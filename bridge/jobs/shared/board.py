"""Jobs kept in a PostgreSQL database that several bridges share (``jobs_database``): every
bridge naming it lists, follows and cancels every job, whichever bridge runs it. The tables
are :mod:`.schema`'s, the statements :mod:`.queries`'.

A follower on another bridge wakes at a notification and reads the new pieces: nothing polls
the output. A cancel asked on bridge B is noted on the job and notified; the bridge A that
runs it stops its command (as a DELETE on A would) and writes the ended record, which B waits
for.

Liveness: each bridge updates its heartbeat every ``jobs_heartbeat`` seconds (the database's
clock, so the hosts' clocks do not matter). At each beat it also marks ``lost`` the running
jobs of every other start of a bridge silent for :data:`LAPSE` beats (or stopped), naming the
bridge that lost them; carries out the cancels asked for its jobs that a missed notification
did not bring; and writes the records it could not write before. A bridge only ever stops its
own start's commands, and only marks another start's jobs once that one is silent: a bridge
that starts again leaves a live peer's jobs alone.

When the database goes away (a restart, a full disk, a lost connection), commands run on: their
output is not kept until it is back (the job's record then says how many bytes are missing,
and where), records are written once it is back, and the listener reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from bridge.errors import RequestError
from bridge.jobs.board import Jobs, Kept, past_keeping
from bridge.jobs.job import RUNNING_STATES, Job
from bridge.jobs.shared import queries
from bridge.jobs.shared.link import DatabaseLink
from bridge.jobs.shared.schema import FAILED, PIECE, UNREACHABLE, JobsDatabaseUnusable, said
from bridge.jobs.spool import JOB_ID, READ_BLOCK, Piece, new_job_id

log = logging.getLogger(__name__)

LAPSE = 3  # heartbeats a bridge may miss before its running jobs are lost


class DatabaseStore:
    """One job's record and output in the jobs database."""

    resumable = True  # the database may come back: the job keeps writing then

    def __init__(self, link: DatabaseLink, job_id: str) -> None:
        self.link = link
        self.job_id = job_id

    async def append(self, stream: str, offset: int, data: bytes) -> None:
        pieces = [data[start : start + PIECE] for start in range(0, len(data), PIECE)]
        await self.link.append(self.job_id, stream, offset, pieces)

    async def write_record(self, record: dict[str, Any]) -> None:
        await self.link.write_record(self.job_id, record)

    async def read(self, offset: int, limit: int = READ_BLOCK) -> list[Piece]:
        return await self.link.read(self.job_id, offset, limit)

    async def finish(self, record: dict[str, Any]) -> None:
        await self.link.write_record(self.job_id, record)


class SharedJobs(Jobs):
    """The jobs of every bridge naming the same database. This bridge runs those in
    :attr:`jobs` (the base class's); the others' are views kept current by the database's
    notifications (:attr:`views`, while they run and someone looks at them)."""

    def __init__(
        self,
        url: str,
        instance: str,
        heartbeat: float,
        stop_wait: float,
        on_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(Path(os.devnull), on_end)  # no folder: every byte is in the database
        self.instance = self.name = instance
        self.heartbeat = heartbeat
        # How long a cancel waits for the bridge that runs the job to stop it: its grace,
        # and the time it takes to find that bridge gone.
        self.stop_wait = stop_wait + heartbeat * (LAPSE + 2)
        self.incarnation = uuid.uuid4().hex  # this start of this bridge
        self.link = DatabaseLink(url, instance, read_wait=heartbeat)
        self.views: dict[str, Job] = {}
        self._closing = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        # No peer's jobs are marked lost before this (loop time): after a start, or the
        # database's return, every live bridge gets a lapse to beat again first.
        self._judge_after = 0.0

    @property
    def reachable(self) -> asyncio.Event:
        """Set while the database answers."""
        return self.link.reachable

    async def load(self, keep: int, max_age: float) -> None:
        """Reach the database (or fail the start: a bridge told to share its jobs never keeps
        them alone), make or migrate the tables, register this start, then keep the
        heartbeat and the listener going."""
        version = await self.link.open()
        host, pid = socket.gethostname(), os.getpid()
        try:
            pool = self.link.connected()
            await queries.register(pool, self.incarnation, self.name, host, pid, self.heartbeat)
        except FAILED as exc:
            await self.link.close()
            raise JobsDatabaseUnusable(said(exc)) from None
        log.info("jobs are kept in jobs_database (schema %d), as bridge %r", version, self.name)
        self._give_peers_a_lapse()
        listening = self.link.listen(self._notified, self._back, self._closing)
        self._background = [
            asyncio.create_task(listening, name="jobs database listener"),
            asyncio.create_task(self._beat(), name="jobs database heartbeat"),
            asyncio.create_task(self._look_around(), name="jobs database peers"),
        ]
        await self.prune(keep, max_age)

    async def close(self) -> None:
        """After the jobs this bridge runs ended: their last records written, its start
        marked stopped (peers need not wait for the heartbeat to lapse), the connections
        closed."""
        await super().close()
        self._closing.set()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.link.pool is not None:
            with contextlib.suppress(*FAILED):
                await self.link.write_pending()
                await queries.stopped(self.link.connected(), self.incarnation)
        if self.link.pending:
            log.warning(
                "jobs database: the last records of %d job(s) could not be written; peers "
                "will mark those jobs lost",
                len(self.link.pending),
            )
        await self.link.close()

    # -- the jobs ------------------------------------------------------------------------

    async def create(self, record: dict[str, Any], limit: int) -> Job:
        job_id = new_job_id()
        now = time.time()
        record = {**record, "state": "queued", "created_at": now, "bridge": self.name}
        try:
            pool = self.link.connected()
            await queries.insert_job(pool, job_id, self.incarnation, self.name, record)
        except UNREACHABLE as exc:
            self.link.unreachable(exc)
            log.warning("jobs database: no job can start: %s", said(exc))
            raise RequestError(
                "the jobs database cannot be reached, so no job can start; try again", 503
            ) from None
        return self._add(Job(DatabaseStore(self.link, job_id), record, limit, self.on_end))

    async def find(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id):
            return None
        job = self.jobs.get(job_id) or self.views.get(job_id)
        if job is not None:
            return job
        row = await self.link.or_503(queries.job(self.link.connected(), job_id))
        if row is None:
            return None
        view = self._view(row)
        if view.ended:
            return view
        # Kept current while it runs, dropped once it ended; a view another request made
        # meanwhile is the one (its followers are woken, a second one's would not be).
        return self.views.setdefault(job_id, view)

    async def listing(self) -> list[Job]:
        rows = await self.link.or_503(queries.every_job(self.link.connected()))
        return [
            self.jobs.get(row["job_id"]) or self.views.get(row["job_id"]) or self._view(row)
            for row in rows
        ]

    def _view(self, row: asyncpg.Record) -> Job:
        """A job another bridge runs (or a previous start of this one ran), as stored."""
        job = Job(DatabaseStore(self.link, row["job_id"]), json.loads(row["record"]))
        job.size = int(row["output_size"])
        job.elsewhere = True
        return job

    async def cancel_elsewhere(self, job: Job, why: str) -> None:
        """Ask the bridge that runs ``job`` to stop it, and wait until its record says it
        ended: the answer comes once that bridge stopped it, or once it is found gone."""
        self.views.setdefault(job.job_id, job)
        asked = await self.link.or_503(queries.ask_cancel(self.link.connected(), job.job_id, why))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.stop_wait
        while asked and not job.ended:
            left = give_up - loop.time()
            if left <= 0:
                runner = job.record.get("bridge", "another bridge")
                raise RequestError(
                    f"bridge '{runner}' has not stopped job {job.job_id} within "
                    f"{self.stop_wait:g} s; the cancel stays asked for",
                    504,
                )
            pulse = job.pulse
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pulse.wait(), timeout=min(left, self.heartbeat))
            await self._refresh(job)
        await self._refresh(job)

    async def prune(self, keep: int, max_age: float) -> None:
        try:
            rows = await queries.retention(self.link.connected())
            kept = [Kept(row["job_id"], row["owner"], row["ended_at"]) for row in rows]
            old = past_keeping(kept, keep, max_age)
            if old:
                await queries.remove(self.link.connected(), old)
        except FAILED as exc:
            if isinstance(exc, UNREACHABLE):
                self.link.unreachable(exc)
            return  # the next end of a job prunes again
        # Gone from the database (here, or pruned by a peer): gone from memory.
        stored = {row["job_id"] for row in rows} - set(old)
        for job_id, job in list(self.jobs.items()):
            if job.ended and job_id not in stored:
                del self.jobs[job_id]
        for job_id in old:
            self.views.pop(job_id, None)

    # -- liveness ------------------------------------------------------------------------

    async def _beat(self) -> None:
        """Every heartbeat, on a connection of its own: this bridge lives. Nothing else
        shares the turn, so a slow peer or a busy pool never makes it late."""
        while await self._tick():
            try:
                await self.link.beat(self.incarnation, timeout=self.heartbeat)
            except UNREACHABLE as exc:
                self.link.unreachable(exc)
            except Exception as exc:  # the heartbeat outlives any one surprise
                log.warning("jobs database heartbeat: %s", said(exc))

    async def _look_around(self) -> None:
        """Every heartbeat: write what could not be written, mark silent bridges' jobs lost,
        carry out the cancels asked for here, refresh the views."""
        while await self._tick():
            try:
                pool = self.link.connected()
                await self.link.write_pending()
                if asyncio.get_running_loop().time() >= self._judge_after:
                    for row in await queries.mark_lost(pool, self.incarnation, LAPSE):
                        log.warning("job %s: lost by bridge %r, which went silent", *row[:2])
                for row in await queries.cancels_for(pool, self.incarnation):
                    self._cancel_here(row["job_id"], row["cancel_by"])
                for view in list(self.views.values()):
                    await self._refresh(view)
            except UNREACHABLE as exc:
                self.link.unreachable(exc)
            except Exception as exc:  # it outlives any one surprise
                log.warning("jobs database, looking at peers: %s", said(exc))

    async def _tick(self) -> bool:
        """Wait a heartbeat; False once the bridge closes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=self.heartbeat)
        return not self._closing.is_set()

    def _cancel_here(self, job_id: str, why: str | None) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.ended or job.cancelled:
            return
        self.start(job.cancel(why or "cancelled on another bridge"), f"job {job_id} cancel")

    async def _refresh(self, view: Job) -> None:
        """A view's record and size as the database has them; an ended view is dropped."""
        try:
            row = await queries.job(self.link.connected(), view.job_id)
        except FAILED as exc:
            if isinstance(exc, UNREACHABLE):
                self.link.unreachable(exc)
            return
        if row is None:  # removed: as good as ended for whoever waits
            record = dict(view.record)
            if view.state in RUNNING_STATES:
                record["state"] = "lost"
            view.seen(record, view.size)
        else:
            view.seen(json.loads(row["record"]), int(row["output_size"]))
        if view.ended:
            self.views.pop(view.job_id, None)

    # -- notifications -------------------------------------------------------------------

    def _notified(self, kind: str, job_id: str, size: str) -> None:
        """A notification: a cancel of a job here, or news of one another bridge runs."""
        if self._closing.is_set():
            return
        if kind == "c" and job_id in self.jobs:
            self.start(self._read_cancel(job_id), f"job {job_id} cancel")
            return
        view = self.views.get(job_id)
        if view is None:
            return
        if kind == "o" and size.isdigit():
            view.seen(view.record, int(size))
        elif kind == "r":
            self.start(self._refresh(view), f"job {job_id} refresh")

    def _give_peers_a_lapse(self) -> None:
        loop = asyncio.get_running_loop()
        self._judge_after = loop.time() + self.heartbeat * (LAPSE + 1)

    async def _back(self) -> None:
        """The database is back: the views read again (notifications may have been missed),
        and peers, who lost it too, get a lapse to beat again before any is judged silent."""
        self._give_peers_a_lapse()
        for view in list(self.views.values()):
            await self._refresh(view)

    async def _read_cancel(self, job_id: str) -> None:
        """A notified cancel: read who asked (the notification does not say)."""
        with contextlib.suppress(*FAILED):
            self._cancel_here(job_id, await queries.cancel_asked(self.link.connected(), job_id))
