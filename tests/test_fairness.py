"""Fairness between tokens in the slots (issue 25): one token never holds every slot or
every queue place; a waiter at its share is passed over, not in the way; the last slot is
kept for the privileged (the seed token, admin tokens), who are capped too."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest

from bridge.config.settings import Settings
from bridge.errors import RequestError
from bridge.process.slots import Owner, Slots

OPS = Owner("ops")
OTHER = Owner("other")
ADMIN = Owner("admin", privileged=True)


class Limits:
    def __init__(self, **values: object) -> None:
        self.settings = replace(Settings(), **values)  # type: ignore[arg-type]

    def __call__(self) -> Settings:
        return self.settings


class Holders:
    """Tasks that each take a slot for an owner and hold it until told to let go."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self.holding: list[str] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.letgo = asyncio.Event()
        self._changed = asyncio.Event()

    def start(self, name: str, owner: Owner | None) -> asyncio.Task[None]:
        async def hold() -> None:
            async with self.slots.slot(owner):
                self.holding.append(name)
                self._changed.set()
                await self.letgo.wait()

        task = asyncio.create_task(hold())
        self.tasks.append(task)
        return task

    async def until(self, count: int, waiting: int) -> None:
        """Until ``count`` hold a slot and ``waiting`` wait for one."""
        while len(self.holding) != count or self.slots.waiting != waiting:
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            queue = asyncio.ensure_future(self.slots.changed())
            await asyncio.wait({changed, queue}, return_when=asyncio.FIRST_COMPLETED)
            for task in (changed, queue):
                task.cancel()

    async def finish(self) -> None:
        self.letgo.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_one_token_holds_at_most_its_share_and_others_pass_its_waiters() -> None:
    slots = Slots(Limits(max_concurrent_commands=4, token_share=0.5))
    holders = Holders(slots)
    try:
        for number in range(3):
            holders.start(f"ops{number}", OPS)
        await holders.until(count=2, waiting=1)  # its share: 2 of 4
        holders.start("other", OTHER)
        await holders.until(count=3, waiting=1)  # passes the waiting ops call
        assert holders.holding == ["ops0", "ops1", "other"]
        holders.start("other2", OTHER)
        await holders.until(count=3, waiting=2)  # the last slot is kept for the privileged
        holders.start("admin", ADMIN)
        await holders.until(count=4, waiting=2)
        assert holders.holding[-1] == "admin"
    finally:
        await holders.finish()
    assert slots.busy == 0 and slots.waiting == 0


async def test_a_token_whose_queue_share_is_taken_gets_a_429_naming_it() -> None:
    slots = Slots(Limits(max_concurrent_commands=1, max_waiting_calls=4, token_share=0.5))
    holders = Holders(slots)
    try:
        holders.start("ops0", OPS)
        holders.start("ops1", OPS)
        holders.start("ops2", OPS)
        await holders.until(count=1, waiting=2)  # 2 of the queue's 4 places: its share
        with pytest.raises(RequestError) as refused:
            async with slots.slot(OPS):
                pass
        assert refused.value.status == 429 and refused.value.headers["Retry-After"]
        assert "token 'ops'" in str(refused.value) and "token_share" in str(refused.value)
        holders.start("other", OTHER)  # another token still finds a place
        await holders.until(count=1, waiting=3)
    finally:
        await holders.finish()


async def test_the_privileged_are_capped_too() -> None:
    slots = Slots(Limits(max_concurrent_commands=4, token_share=0.5))
    holders = Holders(slots)
    try:
        for number in range(3):
            holders.start(f"admin{number}", ADMIN)
        await holders.until(count=2, waiting=1)
    finally:
        await holders.finish()


async def test_without_tokens_there_is_no_share() -> None:
    slots = Slots(Limits(max_concurrent_commands=4, token_share=0.25))
    holders = Holders(slots)
    try:
        for number in range(4):
            holders.start(f"nobody{number}", None)
        await holders.until(count=4, waiting=0)
    finally:
        await holders.finish()


async def test_a_waiter_that_leaves_gives_back_its_place() -> None:
    slots = Slots(Limits(max_concurrent_commands=1, max_waiting_calls=2, token_share=0.5))
    holders = Holders(slots)
    try:
        holders.start("other", OTHER)
        leaving = holders.start("ops", OPS)
        await holders.until(count=1, waiting=1)
        leaving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leaving
        assert slots.waiting == 0
        holders.start("ops again", OPS)  # its one place is free again
        await holders.until(count=1, waiting=1)
    finally:
        await holders.finish()
