"""Typed application state. The factory creates what is there from the start; the startup
context adds what it finds (the installed Airflow, the warm helper) before the port opens,
so that a handler finds every key set, non-optional."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import CurrentSettings, Settings
from bridge.process.path import CommandPath
from bridge.process.warm import WarmHelper

SETTINGS: Final = web.AppKey("settings", CurrentSettings)
COMMANDS: Final = web.AppKey("commands", CommandPath)
UPLOAD_LOCKS: Final = web.AppKey("upload_locks", dict[str, asyncio.Lock])
AIRFLOW: Final = web.AppKey("airflow", AirflowInfo)  # set by the startup context
# The installed CLI's commands as APIs (empty where its parser could not be read).
CLI_COMMANDS: Final = web.AppKey("cli_commands", CliCommands)  # set by the startup context
WARM_HELPER: Final = web.AppKey("warm_helper", WarmHelper)  # set when one runs
# The envelope a request started with, so that an error answered later keeps its arguments.
STARTED_ENVELOPE: Final = web.RequestKey("started_envelope", dict[str, Any])


def settings_of(app: web.Application) -> Settings:
    """The settings in force now (they change on reload)."""
    return app[SETTINGS].settings
