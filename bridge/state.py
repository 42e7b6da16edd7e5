"""Typed application state: the keys and the one mutable container behind them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from bridge.airflow_info import AirflowInfo
from bridge.config import Settings
from bridge.leftovers import Ledger
from bridge.runner import Command, CommandSlots
from bridge.warm import WarmHelper


@dataclass
class Runtime:
    """Mutable state, created in the factory and only mutated afterwards. ``settings`` is
    replaced as a whole when SIGHUP reloads the configuration; a request reads it once."""

    settings: Settings
    slots: CommandSlots
    airflow: AirflowInfo | None = None
    warm: WarmHelper | None = None  # None: warm_helper = false, every command runs cold
    ledger: Ledger | None = None  # running commands, for the next start after a crash
    background: set[asyncio.Task[None]] = field(default_factory=set)
    commands: set[Command] = field(default_factory=set)  # running, for a graceful stop
    stopping: bool = False  # SIGTERM arrived: running commands are being stopped
    upload_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a background task until it ends; cleanup cancels what is left."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)


RUNTIME: Final = web.AppKey("runtime", Runtime)


def settings_of(app: web.Application) -> Settings:
    """The settings in force now (they change on reload)."""
    return app[RUNTIME].settings
