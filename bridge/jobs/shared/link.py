"""The bridge's connection to the jobs database: a pool for statements, one connection that
LISTENs, whether the database answers now, and the records still to write.

When the database goes away (a restart, a full disk, a lost connection), commands run on:
output is refused (:class:`~bridge.jobs.store.StoreFailed`, the job counts what is missing),
records wait here to be written, reads come back empty after a wait, and calls that need the
database answer 503. The listener reconnects with backoff; once it is back, the pool's old
connections are dropped, the records written, and the board told (``on_back``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import asyncpg

from bridge.errors import RequestError
from bridge.jobs.job import ENDED_STATES
from bridge.jobs.shared import queries
from bridge.jobs.shared.schema import (
    CHANNEL,
    FAILED,
    UNREACHABLE,
    JobsDatabaseUnusable,
    connection_string,
    migrate,
    said,
)
from bridge.jobs.spool import Piece
from bridge.jobs.store import StoreFailed
from bridge.waiting import until_any

log = logging.getLogger(__name__)

T = TypeVar("T")
QUERY_TIMEOUT = 10.0  # seconds any one statement may take (a database that hangs)
RECONNECT_BACKOFF = (0.2, 5.0)  # seconds between tries to reach the database: first, most
Notice = Callable[[str, str, str], None]  # kind, job id, the rest


class DatabaseLink:
    """The pool, the listener and what waits for the database to come back."""

    def __init__(self, url: str, name: str, read_wait: float) -> None:
        self.url = url
        self.name = name  # the bridge's, shown in pg_stat_activity
        self.read_wait = read_wait  # how long a read waits for a database that went away
        self.pool: asyncpg.Pool | None = None
        self.reachable = asyncio.Event()  # set while the database answers
        self.pending: dict[str, dict[str, Any]] = {}  # records not written yet
        self._listening: asyncpg.Connection | None = None
        self._writing = asyncio.Lock()  # one writer of the kept records at a time

    async def open(self) -> int:
        """The pool, and the tables made or migrated; the schema's version. Raises
        JobsDatabaseUnusable (without the URL) when the database cannot be used."""
        try:
            self.pool = await asyncpg.create_pool(
                connection_string(self.url),
                min_size=1,
                max_size=4,
                command_timeout=QUERY_TIMEOUT,
                timeout=QUERY_TIMEOUT,
                server_settings=self._named(),
            )
            async with self.pool.acquire() as connection:
                version = await migrate(connection)
        except BaseException as exc:
            if self.pool is not None:  # a schema too new, as much as a database not there
                await self.pool.close()
            if isinstance(exc, FAILED):  # not reached, the login refused, not allowed
                raise JobsDatabaseUnusable(f"{said(exc)}") from None
            raise
        self.reachable.set()
        return version

    def _named(self) -> dict[str, str]:
        """How its connections are named in pg_stat_activity."""
        return {"application_name": f"airflow-rest-bridge {self.name}"}

    def connected(self) -> asyncpg.Pool:
        assert self.pool is not None, "open() first"
        return self.pool

    async def close(self) -> None:
        """Close the connections, bounded: one that does not close in time is cut."""
        if self._listening is not None and not self._listening.is_closed():
            with contextlib.suppress(*UNREACHABLE):
                await self._listening.close(timeout=QUERY_TIMEOUT)
        self._let_go()
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), timeout=QUERY_TIMEOUT)
            except TimeoutError:
                self.pool.terminate()

    def _let_go(self) -> None:
        """Drop the listening connection at once (a broken one has nothing to say)."""
        if self._listening is not None and not self._listening.is_closed():
            self._listening.terminate()
        self._listening = None

    def unreachable(self, exc: BaseException) -> None:
        """A statement failed for the database's sake: taken for gone until the listener
        reconnects."""
        if self.reachable.is_set():
            log.warning("jobs database: cannot be reached: %s", said(exc))
        self.reachable.clear()
        if self._listening is not None and not self._listening.is_closed():
            self._listening.terminate()  # the listener may not have noticed yet: make it

    async def or_503(self, query: Coroutine[Any, Any, T]) -> T:
        """The query's answer; a 503 for the caller while the database cannot be reached
        (the reason is logged, not told: it names the database's host and user)."""
        try:
            return await query
        except UNREACHABLE as exc:
            self.unreachable(exc)
            raise RequestError("the jobs database cannot be reached; try again", 503) from None

    async def beat(self, incarnation: str, timeout: float) -> None:
        """This bridge's heartbeat, on the listening connection: the pool's connections may
        all be busy with output, and a late heartbeat has a live bridge's jobs marked lost."""
        connection = self._listening
        if connection is None or connection.is_closed():
            raise ConnectionError("the jobs database is being reconnected to")
        await queries.beat(connection, incarnation, timeout)

    # -- what a job's store does -----------------------------------------------------------

    async def append(self, job_id: str, stream: str, offset: int, pieces: list[bytes]) -> None:
        """Store ``pieces`` from ``offset``, all or none. Raises StoreFailed, never anything
        else: whatever happened, it never fails the command."""
        if not self.reachable.is_set():
            raise StoreFailed("the jobs database cannot be reached")
        try:
            await queries.append(self.connected(), job_id, stream, offset, pieces)
        except Exception as exc:
            if isinstance(exc, UNREACHABLE):
                self.unreachable(exc)
            else:  # a full disk, or a surprise: this write is lost, the next one may not be
                log.warning("jobs database: output of job %s not kept: %s", job_id, said(exc))
            raise StoreFailed(f"the jobs database did not take it: {said(exc)}") from None

    async def write_record(self, job_id: str, record: dict[str, Any]) -> None:
        """Write the record now, or keep it to write once the database is back: a job's
        record never fails its command."""
        self.pending[job_id] = record
        if self.reachable.is_set():
            with contextlib.suppress(*UNREACHABLE):
                await self.write_pending()

    async def write_pending(self) -> None:
        """Write the records kept, one writer at a time (so that an older record never
        lands after a newer one), each as it is when its turn comes."""
        async with self._writing:
            for job_id in list(self.pending):
                record = self.pending.get(job_id)
                if record is None:
                    continue
                ended = record.get("state") in ENDED_STATES
                ended_at = float(record.get("ended_at") or 0) if ended else None
                try:
                    await queries.write_record(self.connected(), job_id, record, ended_at)
                except UNREACHABLE as exc:
                    self.unreachable(exc)
                    raise
                except asyncpg.PostgresError as exc:  # this record cannot be written at all
                    log.warning("jobs database: record of job %s not written: %s", job_id, exc)
                if self.pending.get(job_id) is record:
                    del self.pending[job_id]

    async def read(self, job_id: str, offset: int, limit: int) -> list[Piece]:
        """Output from byte ``offset``, at most ``limit`` bytes; none past what is stored.
        While the database cannot be reached: StoreFailed, after waiting a while for it to
        come back."""
        try:
            rows = await queries.pieces(self.connected(), job_id, offset, limit)
        except UNREACHABLE as exc:
            self.unreachable(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.reachable.wait(), timeout=self.read_wait)
            raise StoreFailed(f"the jobs database cannot be reached: {said(exc)}") from None
        found = []
        for row in rows:
            start, data = int(row["start_at"]), bytes(row["data"])
            if start < offset:
                start, data = offset, data[offset - start :]
            data = data[: offset + limit - start]
            if data:
                found.append(Piece(row["stream"], start, data))
        return found

    # -- notifications -------------------------------------------------------------------

    async def listen(
        self, notice: Notice, on_back: Callable[[], Awaitable[None]], closing: asyncio.Event
    ) -> None:
        """LISTEN on one connection, telling ``notice`` each notification, until
        ``closing``. When the connection breaks, the database is taken for gone until a new
        one is made (with backoff); then ``on_back``."""

        def notified(_connection: Any, _pid: int, _channel: str, payload: object) -> None:
            kind, _, rest = str(payload).partition(" ")
            job_id, _, more = rest.partition(" ")
            notice(kind, job_id, more)

        backoff = RECONNECT_BACKOFF[0]
        while not closing.is_set():
            lost = asyncio.Event()
            self._let_go()  # the connection before, which broke
            try:
                url = connection_string(self.url)
                self._listening = await asyncpg.connect(
                    url, timeout=QUERY_TIMEOUT, server_settings=self._named()
                )
                self._listening.add_termination_listener(lambda *_: lost.set())  # noqa: B023 (this turn's)
                await self._listening.add_listener(CHANNEL, notified)
            except FAILED as exc:  # a login refused is as good as no database
                self.unreachable(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closing.wait(), timeout=backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF[1])
                continue
            backoff = RECONNECT_BACKOFF[0]
            if not self.reachable.is_set():
                try:
                    await self._back(on_back)
                except Exception as exc:  # the listener outlives any one surprise
                    log.warning("jobs database: after reconnecting: %s", said(exc))
            await until_any(closing, lost)
            if lost.is_set():
                self.unreachable(ConnectionError("the listening connection was closed"))

    async def _back(self, on_back: Callable[[], Awaitable[None]]) -> None:
        log.warning("jobs database: reachable again")
        await self.connected().expire_connections()  # the old ones died with it
        self.reachable.set()
        with contextlib.suppress(*UNREACHABLE):
            await self.write_pending()
        await on_back()
