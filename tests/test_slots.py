"""Slots (bridge.process.slots): callers over max_concurrent_commands wait in arrival order,
a freed slot goes to the first waiter, a caller that leaves leaves the queue, a full queue
is a 429, a wait past its limit a 503, a reload that raises the limit admits waiters, and a
stopping daemon sends every waiter away. No slot is ever lost or made up."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bridge.config.settings import Settings
from bridge.errors import RequestError
from bridge.process.slots import Slots


class Limits:
    """The settings in force, changeable as a reload changes them."""

    def __init__(self, **values: object) -> None:
        self.settings = replace(Settings(), **values)  # type: ignore[arg-type]

    def __call__(self) -> Settings:
        return self.settings


async def hold(slots: Slots, name: str, order: list[str], release: asyncio.Event) -> None:
    async with slots.slot():
        order.append(name)
        await release.wait()


async def queued(slots: Slots, count: int) -> None:
    while slots.waiting != count:
        await slots.changed()


async def test_waiters_are_admitted_in_arrival_order() -> None:
    slots = Slots(Limits(max_concurrent_commands=1))
    order: list[str] = []
    releases = {name: asyncio.Event() for name in "abcd"}
    tasks = []
    for count, name in enumerate("abcd"):
        tasks.append(asyncio.create_task(hold(slots, name, order, releases[name])))
        await queued(slots, count)  # "a" holds the slot; the others queue one by one
    for name in "abcd":
        while order[-1:] != [name]:
            await slots.changed()
        assert slots.busy == 1
        releases[name].set()
    await asyncio.gather(*tasks)
    assert order == list("abcd") and slots.busy == 0 and slots.idle.is_set()


async def test_a_caller_that_leaves_leaves_the_queue() -> None:
    slots = Slots(Limits(max_concurrent_commands=1))
    order: list[str] = []
    first, later = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold(slots, "a", order, first))
    await queued(slots, 0)
    leaving = asyncio.create_task(hold(slots, "b", order, later))
    await queued(slots, 1)
    staying = asyncio.create_task(hold(slots, "c", order, later))
    await queued(slots, 2)
    leaving.cancel()
    await queued(slots, 1)
    first.set()
    later.set()
    await asyncio.gather(holder, staying)
    assert order == ["a", "c"] and slots.busy == 0


async def test_a_full_queue_is_429_and_a_long_wait_503() -> None:
    limits = Limits(max_concurrent_commands=1, max_waiting_calls=1, slot_wait_timeout=0.05)
    slots = Slots(limits)
    release = asyncio.Event()
    holder = asyncio.create_task(hold(slots, "a", [], release))
    await queued(slots, 0)
    waiter = asyncio.create_task(hold(slots, "b", [], release))
    await queued(slots, 1)
    with pytest.raises(RequestError) as full:
        async with slots.slot():
            pass
    assert full.value.status == 429 and full.value.headers["Retry-After"] == "1"
    with pytest.raises(RequestError) as waited:
        await waiter
    assert waited.value.status == 503 and "slot_wait_timeout" in str(waited.value)
    assert waited.value.headers["Retry-After"] == "5"
    assert slots.waiting == 0
    release.set()
    await holder
    assert slots.busy == 0


async def test_a_reload_that_raises_the_limit_admits_waiters() -> None:
    limits = Limits(max_concurrent_commands=1)
    slots = Slots(limits)
    release = asyncio.Event()
    order: list[str] = []
    tasks = [asyncio.create_task(hold(slots, "a", order, release))]
    await queued(slots, 0)
    tasks.append(asyncio.create_task(hold(slots, "b", order, release)))
    await queued(slots, 1)
    limits.settings = replace(limits.settings, max_concurrent_commands=2)
    slots.admit()
    assert slots.waiting == 0 and slots.busy == 2
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "b"] and slots.busy == 0


async def test_a_stopping_daemon_sends_waiters_away() -> None:
    slots = Slots(Limits(max_concurrent_commands=1))
    release = asyncio.Event()
    holder = asyncio.create_task(hold(slots, "a", [], release))
    await queued(slots, 0)
    waiter = asyncio.create_task(hold(slots, "b", [], release))
    await queued(slots, 1)
    slots.close()
    with pytest.raises(RequestError) as stopped:
        await waiter
    assert stopped.value.status == 503
    with pytest.raises(RequestError) as refused:  # a newcomer is sent away at once
        async with slots.slot():
            pass
    assert refused.value.status == 503 and "stopping" in str(refused.value)
    release.set()
    await holder
    assert slots.busy == 0


async def test_a_slot_handed_over_as_the_wait_ends_is_passed_on() -> None:
    """The first waiter is handed the slot and cancelled before it could run: the slot goes
    on to the next waiter, not lost."""
    slots = Slots(Limits(max_concurrent_commands=1))
    release = asyncio.Event()
    order: list[str] = []
    held = slots.slot()
    await held.__aenter__()
    unlucky = asyncio.create_task(hold(slots, "b", order, release))
    await queued(slots, 1)
    lucky = asyncio.create_task(hold(slots, "c", order, release))
    await queued(slots, 2)
    await held.__aexit__(None, None, None)  # hands the slot to "b", which has not run yet
    assert slots.waiting == 1 and slots.busy == 1
    unlucky.cancel()
    release.set()
    await asyncio.wait_for(lucky, timeout=10)  # a lost slot would leave it waiting
    assert order == ["c"] and unlucky.cancelled()
    assert slots.busy == 0 and slots.idle.is_set()
