"""Typed application state: the keys and the one mutable container behind them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from bridge.airflow_info import AirflowInfo
from bridge.config import Settings
from bridge.runner import CommandSlots


@dataclass
class Runtime:
    """Mutable state, created in the factory and only mutated afterwards."""

    slots: CommandSlots
    airflow: AirflowInfo | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)
    upload_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a background task until it ends; cleanup cancels what is left."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)


SETTINGS: Final = web.AppKey("settings", Settings)
RUNTIME: Final = web.AppKey("runtime", Runtime)
