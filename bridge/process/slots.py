"""Concurrency slots: at most ``max_concurrent_commands`` calls run Airflow commands at once;
further callers wait their turn in arrival order, in a queue of at most
``max_waiting_calls``. Over that, 429 at once; a caller that waited ``slot_wait_timeout``
gets 503; a caller that leaves (its client went away: the handler is cancelled) leaves the
queue. A freed slot goes straight to the first waiter that may take it, so nobody arriving
later overtakes.

Fairness between tokens (an :class:`Owner` per call; None where no token is asked for, or
for the bridge's own work): one token holds at most its share (``token_share``) of the slots
and of the queue's places, so it can never take the daemon away from the others; a waiter
over its share is passed over until one of its own ends, and a token whose queue places
are all taken gets a 429 that names its share. When there are two slots or more, one is
kept for the privileged (the seed token, admin tokens): the others share the rest.
:func:`refusal` says these rules once, for the slots and for the follows
(bridge.calls.follows).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from bridge.config.settings import Settings
from bridge.errors import RequestError


@dataclass(frozen=True)
class Owner:
    """Whose call holds or waits for a slot: a token's identity (its name only for messages),
    and whether it is one of the privileged (the seed token or an admin token)."""

    identity: str
    privileged: bool = False
    name: str = ""


def share(total: int, settings: Settings) -> int:
    """How many of ``total`` one token may hold: its share, at least one."""
    return max(1, int(total * settings.token_share))


def token_cap(total: int, settings: Settings) -> int:
    """How many of ``total`` one token may hold at once: its share, and never all of them
    when there are two or more."""
    return min(share(total, settings), max(1, total - 1))


class Refusal(enum.Enum):
    """Why an owner may not take one more of a bounded thing (a slot, a follow)."""

    FULL = enum.auto()  # every one is taken
    SHARE = enum.auto()  # its token holds its share
    KEPT = enum.auto()  # the last one is kept for the privileged


def refusal(
    owner: Owner | None, held: int, busy: int, total: int, settings: Settings
) -> Refusal | None:
    """Whether ``owner``, holding ``held`` of the ``busy`` ones taken of ``total``, may take
    one more (None) or why not. Without an owner (no auth) only the total applies."""
    if busy >= total:
        return Refusal.FULL
    if owner is None:
        return None
    if held >= token_cap(total, settings):
        return Refusal.SHARE
    # The last one is kept for the privileged (when there are two or more).
    if not owner.privileged and total >= 2 and busy >= total - 1:
        return Refusal.KEPT
    return None


@dataclass(eq=False)
class _Waiter:
    turn: asyncio.Future[None]
    owner: Owner | None


class Slots:
    def __init__(self, current: Callable[[], Settings]) -> None:
        self._current = current  # the settings in force: a reload changes the limits
        self._waiting: collections.deque[_Waiter] = collections.deque()
        self._held: Counter[Owner] = Counter()  # slots held per owner
        self._queued: Counter[Owner] = Counter()  # places in the queue per owner
        self.busy = 0  # slots held
        self.idle = asyncio.Event()  # set while no slot is held
        self.idle.set()
        self.closed = False  # the daemon stops: waiters are sent away
        self._change = asyncio.Event()  # replaced at each change of the queue

    def changed(self) -> Awaitable[bool]:
        """Until the queue changes next (a caller joins, leaves or is admitted): the change
        after this call, even when the wait starts later (a task made of it)."""
        return self._change.wait()

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def slot(self, owner: Owner | None = None) -> AsyncIterator[None]:
        """Hold one slot for the block, after waiting for it if all are taken (or all that
        ``owner`` may take)."""
        await self._acquire(owner)
        try:
            yield
        finally:
            self._release(owner)

    def _may_take(self, owner: Owner | None, settings: Settings) -> bool:
        held = self._held[owner] if owner is not None else 0
        limit = settings.max_concurrent_commands
        return refusal(owner, held, self.busy, limit, settings) is None

    async def _acquire(self, owner: Owner | None) -> None:
        settings = self._current()
        if self.closed:
            raise RequestError("the daemon is stopping", status=503)
        if not self._waiting and self._may_take(owner, settings):
            self._take(owner)
            return
        if len(self._waiting) >= settings.max_waiting_calls:
            raise RequestError(
                f"{settings.max_concurrent_commands} commands are running and "
                f"{len(self._waiting)} calls wait for a slot (max_concurrent_commands, "
                "max_waiting_calls): retry shortly",
                status=429,
                headers={"Retry-After": "1"},
            )
        places = share(settings.max_waiting_calls, settings)
        if owner is not None and self._queued[owner] >= places:
            raise RequestError(
                f"the token '{owner.name or owner.identity}' already has "
                f"{self._queued[owner]} calls waiting for a slot, its share (token_share "
                f"{settings.token_share:g} of max_waiting_calls {settings.max_waiting_calls}): "
                "retry shortly",
                status=429,
                headers={"Retry-After": "1"},
            )
        turn = asyncio.get_running_loop().create_future()
        waiter = _Waiter(turn, owner)
        self._waiting.append(waiter)
        if owner is not None:
            self._queued[owner] += 1
        self._changed()
        self.admit()  # a free slot that those ahead may not take is this caller's
        try:
            async with asyncio.timeout(settings.slot_wait_timeout):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._release(owner)  # handed over just as the wait ended: pass it on
            else:
                turn.cancel()
                if self._leave(waiter):
                    self._changed()
            if isinstance(exc, TimeoutError):
                raise RequestError(
                    f"no slot was free within slot_wait_timeout ({settings.slot_wait_timeout:g} "
                    f"s; {settings.max_concurrent_commands} commands at once): retry later",
                    status=503,
                    headers={"Retry-After": "5"},
                ) from None
            raise

    def _take(self, owner: Owner | None) -> None:
        self.busy += 1
        if owner is not None:
            self._held[owner] += 1
        self.idle.clear()

    def _leave(self, waiter: _Waiter) -> bool:
        """A waiter is out of the queue (admitted, gone, or sent away); False if it was not
        in it. The caller says the queue changed, once the waiter knows its fate."""
        try:
            self._waiting.remove(waiter)
        except ValueError:
            return False
        if waiter.owner is not None:
            self._queued[waiter.owner] -= 1
            if not self._queued[waiter.owner]:
                del self._queued[waiter.owner]
        return True

    def _release(self, owner: Owner | None) -> None:
        """The slot goes to the first waiter that may take it, else back to the pool."""
        self.busy -= 1
        if owner is not None:
            self._held[owner] -= 1
            if not self._held[owner]:
                del self._held[owner]
        self.admit()
        if not self.busy:
            self.idle.set()

    def admit(self) -> None:
        """Hand free slots to waiters in order, passing over those at their share (also
        after a reload raised the limit)."""
        settings = self._current()
        for waiter in list(self._waiting):
            if self.busy >= settings.max_concurrent_commands:
                break
            if waiter.turn.done():  # its caller left
                self._leave(waiter)
                self._changed()
                continue
            if not self._may_take(waiter.owner, settings):
                continue
            self._leave(waiter)
            self._take(waiter.owner)
            waiter.turn.set_result(None)
            self._changed()

    def close(self) -> None:
        """The daemon stops: every waiter gets a 503, no one new is admitted."""
        self.closed = True
        for waiter in list(self._waiting):
            self._leave(waiter)
            if not waiter.turn.done():
                waiter.turn.set_exception(RequestError("the daemon is stopping", status=503))
        self._changed()
