"""The application's lifecycle, run by aiohttp: what happens before the port opens and after
the last request.

Startup (a cleanup context): start the worker threads that take blocking work off the loop,
stop what a killed daemon left running, remove its half-staged uploads, load the page's
template, start the warm helper and, at the same time, detect Airflow through the command
path (bridge.calls.installation, which then watches for a changed installation); both are in
place, under their keys, before the first request. Shutdown: running
commands get the grace period, then their sessions are stopped (``on_shutdown``, while
their requests can still answer); at cleanup the helper this app started is stopped. A
reload (SIGHUP, bridge.service.serve) ends with :func:`reloaded`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable

import aiohttp_jinja2
from aiohttp import web

from bridge.calls import revoking
from bridge.calls.installation import Installation
from bridge.catalogue.installed import AirflowInfo, interpreter
from bridge.catalogue.table import NAMES
from bridge.config.load import own_files_folder
from bridge.config.settings import Settings
from bridge.deploy.staging import clean_stale_uploads
from bridge.http.keys import (
    COMMANDS,
    INSTALLATION,
    JOBS,
    SETTINGS,
    WARM_HELPER,
    WEBHOOKS,
    cli_commands_of,
    daemon_of,
    settings_of,
)
from bridge.http.page import PAGE_TEMPLATE
from bridge.offload import in_thread, start_workers
from bridge.process.ledger import folder_in, stop_leftovers
from bridge.process.warm import WarmHelper

log = logging.getLogger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def startup(airflow: AirflowInfo | None, warm: WarmHelper | None) -> CleanupContext:
    """The startup context; ``airflow`` skips detection, ``warm`` is a helper the caller owns."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = settings_of(app)
        commands = app[COMMANDS]
        await start_workers()
        await in_thread(_tidy_up, settings)
        await app[JOBS].load(settings.jobs_to_keep, settings.job_max_age)  # after the ledger
        serving = False
        try:
            python = await in_thread(
                interpreter, settings.airflow_executable, settings.airflow_python
            )
            await in_thread(aiohttp_jinja2.get_env(app).get_template, PAGE_TEMPLATE)
            owned = None if warm is not None else await _new_warm_helper(settings, python)
            helper = warm or owned
            if owned is not None:
                owned.start()  # warms up while Airflow is detected
            watching: asyncio.Future[None] | None = None
            try:
                if airflow is None:
                    installation = await Installation.detect(commands, settings)
                    watching = asyncio.ensure_future(installation.watch(commands, app[SETTINGS]))
                else:
                    installation = Installation(airflow)
                app[INSTALLATION] = installation
                found = installation.airflow
                log.info("Airflow %s at %s", found.version, found.executable)
                warn_unknown_disabled(app)
                if settings.log_loading:
                    log.info("settings: %s", settings)  # the token is excluded from the repr
                if helper is not None:
                    await in_thread(helper.settled)
                    app[WARM_HELPER] = helper
                    commands.launcher = helper
                serving = True
                yield
            finally:
                if watching is not None:
                    watching.cancel()
                    await asyncio.gather(watching, return_exceptions=True)
                commands.launcher = None
                if owned is not None:
                    await in_thread(owned.close)
        except BaseException:
            if not serving:  # a start that failed: nothing else closes the jobs' store
                await app[JOBS].close()
            raise

    return context


async def stop_commands(app: web.Application) -> None:
    """on_shutdown: the grace period for running commands, then their sessions stopped;
    the jobs among them end as ``lost``."""
    await app[COMMANDS].shut_down()
    await app[JOBS].close()  # their commands were stopped: they record how they ended
    await app[WEBHOOKS].close()  # what is not delivered by now is given up


async def reloaded(app: web.Application) -> None:
    """What a reload (SIGHUP) changes at once, with the new settings in force: callers
    waiting for a slot get those a higher max_concurrent_commands frees, and the tokens the
    tokens file no longer holds lose their follows and have their running jobs marked
    (bridge.calls.revoking)."""
    app[COMMANDS].slots.admit()
    warn_unknown_disabled(app)
    await revoking.revoke(daemon_of(app), settings_of(app).named_tokens)


def warn_unknown_disabled(app: web.Application) -> None:
    """disabled_apis names that are no API and no command of this Airflow disable nothing
    (a typo leaves the API it meant on): say so at start and at each reload."""
    known = set(NAMES) | set(cli_commands_of(app).commands)
    for name in sorted(settings_of(app).disabled_apis - known):
        log.warning(
            "disabled_apis names %r, which is no API and no command of this Airflow: "
            "it disables nothing",
            name,
        )


def _tidy_up(settings: Settings) -> None:
    """What a killed daemon left behind: its running commands, its half-staged uploads; and
    the bridge's own files folder, when allowed_paths names it (a service writes its pid
    file there, and Airflow does not make the folder)."""
    stop_leftovers(folder_in(settings.airflow_home))
    if settings.dags_folder.is_dir():
        clean_stale_uploads(settings.dags_folder)
    own = own_files_folder(settings.airflow_home)
    if own in settings.allowed_paths:
        own.mkdir(mode=0o700, parents=True, exist_ok=True)


async def _new_warm_helper(settings: Settings, python: str | None) -> WarmHelper | None:
    if not settings.warm_helper:
        return None
    executable = settings.airflow_executable
    if python is None:
        if not await in_thread(shutil.which, executable):
            return None  # detection says it: the airflow itself cannot be run
        log.warning(
            "warm helper off: no Python interpreter found for %s (set airflow_python); "
            "commands run with the cold CLI",
            executable,
        )
        return None
    return WarmHelper(python, executable, settings.child_environment(os.environ))
