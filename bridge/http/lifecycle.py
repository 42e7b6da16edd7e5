"""The application's lifecycle, run by aiohttp: what happens before the port opens and after
the last request.

Startup (a cleanup context): start the worker threads that take blocking work off the loop,
stop what a killed daemon left running, remove its half-staged uploads, load the page's
template, start the warm helper and, at the same time, detect Airflow through the command
path; both are in place, under their keys, before the first request. Shutdown: running
commands get the grace period, then their sessions are stopped (``on_shutdown``, while
their requests can still answer); at cleanup the helper this app started is stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import aiohttp_jinja2
from aiohttp import web

from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import (
    DETECTION_COMMANDS,
    AirflowInfo,
    AirflowNotUsable,
    interpreter,
    read_installation,
)
from bridge.catalogue.installed_cli import CLI_PARSER, InstalledCli, parse_installed_cli
from bridge.config.settings import Settings
from bridge.deploy.staging import clean_stale_uploads
from bridge.http.keys import AIRFLOW, CLI_COMMANDS, COMMANDS, WARM_HELPER, settings_of
from bridge.http.page import PAGE_TEMPLATE
from bridge.offload import in_thread, start_workers
from bridge.process.ledger import folder_in, stop_leftovers
from bridge.process.path import CommandPath, CommandSpec
from bridge.process.warm import WarmHelper

log = logging.getLogger(__name__)
DETECTION_TIMEOUT = 120.0

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def startup(airflow: AirflowInfo | None, warm: WarmHelper | None) -> CleanupContext:
    """The startup context; ``airflow`` skips detection, ``warm`` is a helper the caller owns."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = settings_of(app)
        commands = app[COMMANDS]
        await start_workers()
        await in_thread(_tidy_up, settings)
        python = await in_thread(interpreter, settings.airflow_executable, settings.airflow_python)
        await in_thread(aiohttp_jinja2.get_env(app).get_template, PAGE_TEMPLATE)
        owned = None if warm is not None else await _new_warm_helper(settings, python)
        helper = warm or owned
        if owned is not None:
            owned.start()  # warms up while Airflow is detected
        try:
            app[AIRFLOW] = airflow or await detect(commands, settings, python)
            app[CLI_COMMANDS] = CliCommands.of(app[AIRFLOW].cli, app[AIRFLOW].major)
            log.info("Airflow %s at %s", app[AIRFLOW].version, app[AIRFLOW].executable)
            if settings.log_loading:
                log.info("settings: %s", settings)  # the token is excluded from the repr
            if helper is not None:
                await helper.settled()
                app[WARM_HELPER] = helper
                commands.launcher = helper
            yield
        finally:
            commands.launcher = None
            if owned is not None:
                await in_thread(owned.close)

    return context


async def stop_commands(app: web.Application) -> None:
    """on_shutdown: the grace period for running commands, then their sessions stopped."""
    await app[COMMANDS].shut_down()


def _tidy_up(settings: Settings) -> None:
    """What a killed daemon left behind: its running commands, its half-staged uploads."""
    stop_leftovers(folder_in(settings.airflow_home))
    if settings.dags_folder.is_dir():
        clean_stale_uploads(settings.dags_folder)


async def detect(commands: CommandPath, settings: Settings, python: str | None) -> AirflowInfo:
    """Ask the configured ``airflow`` its version and commands (both at once)."""
    executable = settings.airflow_executable
    specs = [
        CommandSpec([executable, *words], "startup", "detect Airflow", "-", DETECTION_TIMEOUT)
        for words in DETECTION_COMMANDS
    ]
    reading_the_cli = asyncio.ensure_future(_read_cli(commands, python))
    try:
        results = await asyncio.gather(*(commands.capture(spec) for spec in specs))
    except OSError as exc:
        reading_the_cli.cancel()
        await asyncio.gather(reading_the_cli, return_exceptions=True)
        raise AirflowNotUsable(f"cannot run {executable}: {exc}") from exc
    for spec, result in zip(specs, results, strict=True):
        if result.exit_code != 0:
            reading_the_cli.cancel()
            await asyncio.gather(reading_the_cli, return_exceptions=True)
            raise AirflowNotUsable(
                f"'{' '.join(spec.argv)}' failed (exit code {result.exit_code}): "
                f"{result.stderr[-500:]}"
            )
    version, help_text = (result.stdout for result in results)
    found = read_installation(executable, version, help_text, python)
    return replace(found, cli=await reading_the_cli)


async def _read_cli(commands: CommandPath, python: str | None) -> InstalledCli | None:
    """The installed CLI's parser, read under Airflow's interpreter; None (and a warning)
    when it cannot be: the seed APIs then run with their argv as written for the major
    version, and no other command of the CLI answers."""
    if python is None:
        return None
    argv = [python, str(CLI_PARSER)]
    spec = CommandSpec(argv, "startup", "read the CLI's parser", "-", DETECTION_TIMEOUT, warm=False)
    try:
        result = await commands.capture(spec)
        if result.exit_code != 0:
            raise ValueError(f"exit code {result.exit_code}: {result.stderr[-500:]}")
        return parse_installed_cli(result.stdout)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("could not read the installed CLI's parser (%s); only the seed APIs", exc)
        return None


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
