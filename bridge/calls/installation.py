"""The installed Airflow the daemon answers for, and noticing when it changes.

At startup, through the command path: ``airflow version`` and ``airflow --help`` (can the
configured airflow run at all, and which version), and at the same time the CLI's own parser,
read under Airflow's interpreter unless the cache in the Airflow home still holds it
(:mod:`bridge.catalogue.cli_cache`). While the daemon runs, every ``CHECK_INTERVAL`` seconds
(off the loop: a few stat calls) it looks whether the installation changed: Airflow upgraded,
a provider installed, airflow.cfg edited, a reload pointing at another airflow or home. Then
it detects again and swaps what handlers see as a whole; a call keeps what it started with.
A detection that fails then keeps the previous answer and says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace

from bridge.catalogue.cli_cache import Observed, Reading, cache_for, load, store
from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import (
    DETECTION_COMMANDS,
    AirflowInfo,
    AirflowNotUsable,
    interpreter,
    read_installation,
)
from bridge.catalogue.installed_cli import CLI_PARSER
from bridge.config.settings import CurrentSettings, Settings
from bridge.offload import in_thread
from bridge.process.path import CommandPath, CommandSpec

log = logging.getLogger(__name__)

DETECTION_TIMEOUT = 120.0
CHECK_INTERVAL = 10.0


class Installation:
    """What handlers read (through ``airflow_of`` and ``cli_commands_of``): replaced as a
    whole when the installation changes."""

    def __init__(self, airflow: AirflowInfo, reading: Reading | None = None) -> None:
        self.airflow = airflow
        self.commands = CliCommands.of(airflow.cli, airflow.major)
        self.reading = reading  # None: given by the caller, or the parser could not be read
        self._failed_at: tuple[str, Observed | None] | None = None  # when detecting failed

    @classmethod
    async def detect(cls, commands: CommandPath, settings: Settings) -> Installation:
        """Detect the configured Airflow (AirflowNotUsable when it cannot run)."""
        python = await in_thread(interpreter, settings.airflow_executable, settings.airflow_python)
        airflow, reading = await _detect(commands, settings, python)
        return cls(airflow, reading)

    async def refreshed(self, commands: CommandPath, settings: Settings) -> bool:
        """Detect again if the installation changed; True when this one was updated."""
        changed, now = await self._changes(settings)
        if not changed or now == self._failed_at:
            return False  # unchanged, or unchanged since detecting it failed
        log.warning("the Airflow installation changed (%s): detecting it again", ", ".join(changed))
        try:
            fresh = await Installation.detect(commands, settings)
        except AirflowNotUsable as exc:
            log.error("still answering as Airflow %s: %s", self.airflow.version, exc)
            self._failed_at = now  # the next change tries again, not every few seconds
            return False
        self.airflow, self.commands, self.reading = fresh.airflow, fresh.commands, fresh.reading
        self._failed_at = None
        log.info("now Airflow %s at %s", self.airflow.version, self.airflow.executable)
        return True

    async def _changes(self, settings: Settings) -> tuple[list[str], tuple[str, Observed | None]]:
        """What changed since the detection, and how things look now."""
        executable = settings.airflow_executable
        changed = [] if executable == self.airflow.executable else [f"airflow = {executable}"]
        if self.reading is None:  # nothing else to compare with
            return changed, (executable, None)
        try:
            python = await in_thread(interpreter, executable, settings.airflow_python)
        except AirflowNotUsable:
            python = None
        env = settings.child_environment(os.environ)
        now = await in_thread(self.reading.observe, python, env)
        return changed + self.reading.changes(now), (executable, now)

    async def watch(self, commands: CommandPath, current: CurrentSettings) -> None:
        """Refresh whenever the installation changes, until cancelled."""
        while True:
            await asyncio.sleep(CHECK_INTERVAL)  # a timer, not a wait for something
            try:
                await self.refreshed(commands, current())
            except Exception:  # the watch must outlive any one failed look
                log.exception("looking for a changed Airflow installation failed")


async def _detect(
    commands: CommandPath, settings: Settings, python: str | None
) -> tuple[AirflowInfo, Reading | None]:
    """Ask the configured ``airflow`` its version and commands, and its parser, at once."""
    executable = settings.airflow_executable
    specs = [
        CommandSpec([executable, *words], "startup", "detect Airflow", "-", DETECTION_TIMEOUT)
        for words in DETECTION_COMMANDS
    ]
    reading_the_cli = asyncio.ensure_future(_reading(commands, settings, python))
    try:
        # Every look ends before one's failure is raised: a look left behind would end with
        # its own exception unread, which asyncio prints as a traceback at exit.
        looks = await asyncio.gather(
            *(commands.capture(spec) for spec in specs), return_exceptions=True
        )
        for failed in looks:
            if isinstance(failed, BaseException):
                raise failed
        results = [look for look in looks if not isinstance(look, BaseException)]
        for spec, result in zip(specs, results, strict=True):
            if result.exit_code != 0:
                raise AirflowNotUsable(
                    f"'{' '.join(spec.argv)}' failed (exit code {result.exit_code}): "
                    f"{result.stderr[-500:]}"
                )
        version, help_text = (result.stdout for result in results)
        found = read_installation(executable, version, help_text, python)
    except BaseException as exc:
        reading_the_cli.cancel()
        await asyncio.gather(reading_the_cli, return_exceptions=True)
        if isinstance(exc, OSError):
            raise AirflowNotUsable(
                f"cannot run {executable}: {exc} (set airflow_executable in [rest_api_plugin], "
                "or AIRFLOW__REST_API_PLUGIN__AIRFLOW_EXECUTABLE, to the airflow of Airflow's "
                "environment)"
            ) from exc
        raise
    reading = await reading_the_cli
    if reading is not None and reading.cli.version != found.version:  # a cache gone stale
        reading = await _reading(commands, settings, python, cached=False)
    return replace(found, cli=reading.cli if reading else None), reading


async def _reading(
    commands: CommandPath, settings: Settings, python: str | None, cached: bool = True
) -> Reading | None:
    """The installed CLI's parser: from the cache where it still holds, else read under
    Airflow's interpreter (and cached). None (and a warning) when it cannot be read: the seed
    APIs then run with their argv as written for the major version, and no other command of
    the CLI answers."""
    if python is None:
        return None
    env = settings.child_environment(os.environ)
    cache = cache_for(settings.airflow_home, python, env)
    if cached and (kept := await in_thread(load, cache, python, env)) is not None:
        log.info("the CLI's parser as read before (%s): the installation has not changed", cache)
        return kept
    argv = [python, str(CLI_PARSER)]
    spec = CommandSpec(argv, "startup", "read the CLI's parser", "-", DETECTION_TIMEOUT, warm=False)
    try:
        result = await commands.capture(spec)
        if result.exit_code != 0:
            raise ValueError(f"exit code {result.exit_code}: {result.stderr[-500:]}")
        lines = result.stdout.strip().splitlines()
        reading = Reading.of(lines[-1] if lines else "", python, env)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("could not read the installed CLI's parser (%s); only the seed APIs", exc)
        return None
    await in_thread(store, cache, reading)
    return reading
