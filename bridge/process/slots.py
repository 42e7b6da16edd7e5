"""Concurrency slots: at most ``max_concurrent_commands`` calls run Airflow commands at once;
further callers wait their turn in arrival order, in a queue of at most
``max_waiting_calls``. Over that, 429 at once; a caller that waited ``slot_wait_timeout``
gets 503; a caller that leaves (its client went away: the handler is cancelled) leaves the
queue. A freed slot goes straight to the first waiter, so nobody arriving later overtakes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable

from bridge.config.settings import Settings
from bridge.errors import RequestError


class Slots:
    def __init__(self, current: Callable[[], Settings]) -> None:
        self._current = current  # the settings in force: a reload changes the limits
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self.busy = 0  # slots held
        self.idle = asyncio.Event()  # set while no slot is held
        self.idle.set()
        self.closed = False  # the daemon stops: waiters are sent away
        self._change = asyncio.Event()  # replaced at each change of the queue

    async def changed(self) -> None:
        """Until the queue changes next (a caller joins, leaves or is admitted)."""
        await self._change.wait()

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the block, after waiting for it if all are taken."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        settings = self._current()
        if self.closed:
            raise RequestError("the daemon is stopping", status=503)
        if self.busy < settings.max_concurrent_commands and not self._waiting:
            self._take()
            return
        if len(self._waiting) >= settings.max_waiting_calls:
            raise RequestError(
                f"{settings.max_concurrent_commands} commands are running and "
                f"{len(self._waiting)} calls wait for a slot (max_concurrent_commands, "
                "max_waiting_calls): retry shortly",
                status=429,
                headers={"Retry-After": "1"},
            )
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        self._changed()
        try:
            async with asyncio.timeout(settings.slot_wait_timeout):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._release()  # handed over just as the wait ended: pass it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    self._waiting.remove(turn)
                    self._changed()
            if isinstance(exc, TimeoutError):
                raise RequestError(
                    f"no slot was free within slot_wait_timeout ({settings.slot_wait_timeout:g} "
                    f"s; {settings.max_concurrent_commands} commands at once): retry later",
                    status=503,
                    headers={"Retry-After": "5"},
                ) from None
            raise

    def _take(self) -> None:
        self.busy += 1
        self.idle.clear()

    def _release(self) -> None:
        """The slot goes to the first waiter still waiting, else back to the pool."""
        self.busy -= 1
        self.admit()
        if not self.busy:
            self.idle.set()

    def admit(self) -> None:
        """Hand free slots to waiters in order (also after a reload raised the limit)."""
        limit = self._current().max_concurrent_commands
        while self._waiting and self.busy < limit:
            turn = self._waiting.popleft()
            if turn.done():  # its caller left
                continue
            self._take()
            turn.set_result(None)
            self._changed()

    def close(self) -> None:
        """The daemon stops: every waiter gets a 503, no one new is admitted."""
        self.closed = True
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_exception(RequestError("the daemon is stopping", status=503))
        self._changed()
