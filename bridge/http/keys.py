"""Typed application state. The factory creates what is there from the start; the startup
context adds what it finds (the installed Airflow, the warm helper) before the port opens,
so that a handler finds every key set, non-optional."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from bridge.calls.call import Daemon
from bridge.calls.follows import Follows
from bridge.calls.installation import Installation
from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import CurrentSettings, Settings
from bridge.http.bodies import BodyBudget
from bridge.jobs.board import Jobs
from bridge.jobs.webhooks import Webhooks
from bridge.process.path import CommandPath
from bridge.process.warm import WarmHelper

SETTINGS: Final = web.AppKey("settings", CurrentSettings)
COMMANDS: Final = web.AppKey("commands", CommandPath)
UPLOAD_LOCKS: Final = web.AppKey("upload_locks", dict[str, asyncio.Lock])
BODY_BUDGET: Final = web.AppKey("body_budget", BodyBudget)  # request bodies arriving now
# The installed Airflow, its CLI's commands as APIs: set by the startup context.
INSTALLATION: Final = web.AppKey("installation", Installation)
WARM_HELPER: Final = web.AppKey("warm_helper", WarmHelper)  # set when one runs
JOBS: Final = web.AppKey("jobs", Jobs)  # loaded from its folder by the startup context
FOLLOWS: Final = web.AppKey("follows", Follows)  # follows and waits open now
WEBHOOKS: Final = web.AppKey("webhooks", Webhooks)  # ended jobs told to job_webhooks
# The envelope a request started with, so that an error answered later keeps its arguments.
STARTED_ENVELOPE: Final = web.RequestKey("started_envelope", dict[str, Any])


def settings_of(app: web.Application) -> Settings:
    """The settings in force now (they change on reload)."""
    return app[SETTINGS].settings


def airflow_of(app: web.Application) -> AirflowInfo:
    """The installed Airflow now (detected again when the installation changes)."""
    return app[INSTALLATION].airflow


def cli_commands_of(app: web.Application) -> CliCommands:
    """The installed CLI's commands as APIs (none where its parser could not be read)."""
    return app[INSTALLATION].commands


def known_cli_commands(app: web.Application | None) -> CliCommands | None:
    """cli_commands_of(), or None before startup found them (an error or log line early)."""
    installation = app.get(INSTALLATION) if app is not None else None
    return installation.commands if installation is not None else None


def daemon_of(app: web.Application) -> Daemon:
    """The daemon's parts a call may use."""
    return Daemon(app[COMMANDS], app[JOBS], app[UPLOAD_LOCKS], app[FOLLOWS])
