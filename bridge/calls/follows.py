"""Follows open at once: bounded, shared between tokens like the slots, and ended when their
token is revoked.

A follow waits on something that runs elsewhere for as long as it lasts: a job's output
followed (``GET .../jobs/<id>/output``), ``task_log&follow=true``, and
``trigger_dag&wait=true`` (the wait for its run, which holds a slot only while one of its
commands runs). Each takes a place here for its whole life: at most ``max_follows`` at once,
one token at most its ``token_share`` of them, the last kept for the seed token and admin
tokens (the slots' rules: :func:`bridge.process.slots.refusal`). Over that, a 429 that names
the limit, before anything starts.

A stream's own client follows its job too, but its job's slot bounds it: it takes an
uncounted place, bounded by nothing here, which ends like every other when its token is
revoked.

Revoking: a place whose token is a named one that the tokens in force no longer hold (after
a reload) has its ``stop`` set, and its follow ends with a warning that says so and
:data:`REVOKED_HTTP_CODE` (bridge.calls.stopping); a place taken by such a token in the
moment before the reload is stopped as it is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bridge.config.settings import Settings
from bridge.config.tokens import TokenTable
from bridge.errors import RequestError
from bridge.process.slots import Owner, Refusal, refusal

T = TypeVar("T")

# A revoked token's follow ends so: the token is no longer valid, as a new call would find.
REVOKED_HTTP_CODE = 403


@dataclass(eq=False)
class Follow:
    """One follow's place: whose it is, whether it counts towards max_follows, and the event
    that tells it to stop (its token was revoked)."""

    owner: Owner | None
    counted: bool = True
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def why(self) -> str:
        """Why it was stopped, for its warning."""
        name = (self.owner.name or self.owner.identity) if self.owner is not None else "-"
        return f"the token '{name}' was revoked"


class Follows:
    """Every follow's place, by owner."""

    def __init__(self, current: Callable[[], Settings]) -> None:
        self._current = current  # the settings in force: a reload changes the limit
        self._places: set[Follow] = set()
        self._held: Counter[Owner] = Counter()  # counted places per owner
        self.open = 0  # counted places taken

    @contextlib.asynccontextmanager
    async def place(self, owner: Owner | None, counted: bool = True) -> AsyncIterator[Follow]:
        """A place for the block: refused at once (429) when none is ``owner``'s. An
        uncounted place is never refused; it is only there to be stopped."""
        settings = self._current()
        if counted:
            self._admit(owner, settings)
        follow = Follow(owner, counted)
        self._places.add(follow)
        if counted:
            self.open += 1
            if owner is not None:
                self._held[owner] += 1
        if self._revoked(follow, settings.named_tokens):
            follow.stop.set()
        try:
            yield follow
        finally:
            self._places.discard(follow)
            if counted:
                self.open -= 1
                if owner is not None:
                    self._held[owner] -= 1
                    if not self._held[owner]:
                        del self._held[owner]

    def _admit(self, owner: Owner | None, settings: Settings) -> None:
        limit = settings.max_follows
        held = self._held[owner] if owner is not None else 0
        why = refusal(owner, held, self.open, limit, settings)
        if why is None:
            return
        if why is Refusal.SHARE and owner is not None:
            message = (
                f"the token '{owner.name or owner.identity}' already has {held} follows or "
                f"waits open, its share (token_share {settings.token_share:g} of max_follows "
                f"{limit}): retry shortly"
            )
        elif why is Refusal.KEPT:
            message = (
                f"{self.open} follows or waits are open and the last of max_follows ({limit}) "
                "is kept for the seed token and admin tokens: retry shortly"
            )
        else:
            message = f"{self.open} follows or waits are open (max_follows {limit}): retry shortly"
        raise RequestError(message, status=429, headers={"Retry-After": "1"})

    @staticmethod
    def _revoked(follow: Follow, tokens: TokenTable) -> bool:
        owner = follow.owner
        return owner is not None and tokens.revoked(owner.identity)

    def revoke(self, tokens: TokenTable) -> int:
        """Stop every follow whose token ``tokens`` (those in force after a reload) no longer
        hold; how many were stopped now."""
        stopped = 0
        for follow in self._places:
            if not follow.stop.is_set() and self._revoked(follow, tokens):
                follow.stop.set()
                stopped += 1
        return stopped


class Holding(AsyncGenerator[T, None]):
    """``events`` that keep what ``held`` holds (a follow's place) until they end or are
    closed, started or not: an async generator closed before its first step never runs its
    ``finally``, and an answer is closed so when its client leaves before the stream
    starts."""

    def __init__(self, events: AsyncGenerator[T, None], held: contextlib.AsyncExitStack) -> None:
        self._events = events
        self._held = held

    async def asend(self, value: None) -> T:
        try:
            return await self._events.asend(value)
        except BaseException:  # its end (StopAsyncIteration) included
            await self._held.aclose()
            raise

    async def athrow(self, typ: Any, val: Any = None, tb: Any = None) -> T:
        try:
            if val is None and tb is None:
                return await self._events.athrow(typ)
            return await self._events.athrow(typ, val, tb)
        except BaseException:
            await self._held.aclose()
            raise

    async def aclose(self) -> None:
        try:
            await self._events.aclose()
        finally:
            await self._held.aclose()


async def holding(
    events: Callable[[Follow], AsyncGenerator[T, None]],
    follows: Follows,
    owner: Owner | None,
    counted: bool = True,
) -> Holding[T]:
    """``events(place)`` with a place taken for ``owner`` first (a 429 when there is none),
    held until they end or are closed."""
    held = contextlib.AsyncExitStack()
    follow = await held.enter_async_context(follows.place(owner, counted))
    return Holding(events(follow), held)
