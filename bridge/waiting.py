"""Waiting on several things at once, without leaving a waiter behind."""

from __future__ import annotations

import asyncio


async def until_any(*events: asyncio.Event) -> None:
    """Until one of ``events`` is set; the waits on the others are cancelled, however this
    ends (its caller cancelled included)."""
    waits = {asyncio.ensure_future(event.wait()) for event in events}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
