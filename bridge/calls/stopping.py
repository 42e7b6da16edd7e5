"""Waits that end when their call is stopped: its job cancelled (DELETE, or a stream's
client gone for good), the daemon stopping (SIGTERM), or its token revoked (a follow's place:
bridge.calls.follows). A loop that waits takes its pauses
and its bookkeeping commands through :func:`unless_stopped`, so none outlives what it waits
for, and says why it ended with the :class:`Stopped` it gets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from bridge.calls.call import Call
from bridge.calls.follows import REVOKED_HTTP_CODE
from bridge.errors import RequestError

T = TypeVar("T")

DAEMON_STOPPING = "the daemon is stopping (SIGTERM)"
CANCELLED = "cancelled (DELETE, or its client left and none came back)"


class Stopped(Exception):
    """The call was stopped while it waited; ``why`` says by what, ``http_code`` answers it."""

    def __init__(self, why: str, http_code: int) -> None:
        super().__init__(why)
        self.why = why
        self.http_code = http_code


def stopped(call: Call) -> Stopped | None:
    """Why the call must not wait any longer, if it must not."""
    if call.commands.closing.is_set():
        return Stopped(DAEMON_STOPPING, 503)
    if call.follow is not None and call.follow.stop.is_set():
        return Stopped(call.follow.why, REVOKED_HTTP_CODE)
    if call.stop.is_set():
        return Stopped(CANCELLED, 500)
    return None


async def unless_stopped(call: Call, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, unless the call is stopped first: then it is cancelled (a
    command it runs is stopped with it) and :class:`Stopped` is raised."""
    work = asyncio.ensure_future(awaitable)
    if (early := stopped(call)) is not None:
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        raise early
    stops = [call.stop, call.commands.closing, *([call.follow.stop] if call.follow else [])]
    watches = {asyncio.ensure_future(stop.wait()) for stop in stops}
    try:
        await asyncio.wait({work, *watches}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, *watches):
            if not task.done():
                task.cancel()
        await asyncio.gather(work, *watches, return_exceptions=True)
    if work.done() and not work.cancelled():
        return work.result()
    reason = stopped(call)
    assert reason is not None  # a watch ended the wait
    raise reason


def wait_seconds(call: Call) -> float:
    """How long the call's wait may last: its ``wait_timeout``, else ``command_timeout``;
    a wait_timeout over command_timeout is a 400 (checked before anything runs)."""
    asked_for = call.values.get("wait_timeout")
    limit = call.settings.command_timeout
    if asked_for is not None and float(asked_for) > limit:
        raise RequestError(f"wait_timeout may be at most command_timeout ({limit:g} s)")
    return float(asked_for) if asked_for is not None else limit


async def pause(call: Call, seconds: float) -> None:
    """Sleep ``seconds`` (a poll interval), unless the call is stopped first."""
    await unless_stopped(call, asyncio.sleep(seconds))
