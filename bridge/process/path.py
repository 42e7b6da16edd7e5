"""The command path: the one way the daemon starts an Airflow process.

Every command, an API call's, deploy_dag's import check and serialization, refresh_dag's
and startup's detection alike, goes through :meth:`CommandPath.run` (or :meth:`capture`):
it gets the settings in force (timeout, grace period, environment), the warm helper unless
it is a service, a line in the ledger while it runs, a place in :attr:`running` (so that a
daemon that stops can stop it) and an audit line when it ends. API calls that run commands
also hold one of ``max_concurrent_commands`` slots (:meth:`slot`, waiting in line for one)
for as long as they run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from bridge.config.settings import Settings
from bridge.errors import RequestError
from bridge.process.command import Command, Outcome
from bridge.process.launching import Launcher
from bridge.process.ledger import Ledger
from bridge.process.sessions import SessionCensus
from bridge.process.slots import Owner, Slots
from bridge.text.redact import shown_command

log = logging.getLogger(__name__)
audit = logging.getLogger("bridge.audit")


@dataclass(frozen=True)
class CommandSpec:
    """One command to run, and who asked for it (for the audit line)."""

    argv: list[str]  # the executable first
    api: str  # the API that asked, or what the bridge does ("startup")
    purpose: str  # how it is answered: buffered, stream=text, import check, ...
    peer: str = "-"  # the client's address and token name
    timeout: float | None = None  # default: command_timeout
    warm: bool = True  # may run through the warm helper (services never do)
    env: tuple[tuple[str, str], ...] = ()  # set over the child environment (git's author)


@dataclass(frozen=True)
class Captured:
    """A finished command's whole output, decoded."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool


class CommandPath:
    """Runs commands for one application; made by the app factory, its launcher set once the
    warm helper runs."""

    def __init__(self, current: Callable[[], Settings], ledger: Ledger) -> None:
        self._current = current
        self._ledger = ledger
        self.launcher: Launcher | None = None
        self.running: set[Command] = set()
        self.none_running = asyncio.Event()  # set while no command runs
        self.none_running.set()
        self.stopping = False  # the daemon is stopping: commands still running are stopped
        # Set as the daemon starts to stop: no new Airflow process starts, every wait ends.
        self.closing = asyncio.Event()
        self.slots = Slots(current)
        self._detached: set[asyncio.Task[None]] = set()
        self._census = SessionCensus()

    def display(self, argv: list[str]) -> str:
        """The command as logs and ``airflow_cmd`` show it, secrets masked."""
        return shlex.join(shown_command(argv, self._current().secret_values))

    def slot(self, owner: Owner | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        """One of ``max_concurrent_commands``, after waiting in line for it if need be, within
        ``owner``'s share (:mod:`bridge.process.slots`)."""
        return self.slots.slot(owner)

    @property
    def busy(self) -> int:
        """Slots held: calls running commands."""
        return self.slots.busy

    @property
    def idle(self) -> asyncio.Event:
        """Set while no slot is held."""
        return self.slots.idle

    @contextlib.asynccontextmanager
    async def run(self, spec: CommandSpec) -> AsyncIterator[Command]:
        """Start the command; iterate it for its output. Leaving the block stops what is left
        of it, unless its client went away and kill_on_disconnect is false."""
        settings = self._current()
        if self.closing.is_set():
            raise RequestError("the daemon is stopping: no new Airflow process starts", 503)
        command = Command(
            spec.argv,
            env={**settings.child_environment(os.environ), **dict(spec.env)},
            timeout=spec.timeout if spec.timeout is not None else settings.command_timeout,
            grace=settings.kill_grace_period,
            census=self._census,
            launcher=self.launcher if spec.warm else None,
            witness=self._ledger,
        )
        ending = spec.purpose
        detached = False
        await command.__aenter__()
        self._started(command)
        try:
            yield command
        except (asyncio.CancelledError, ConnectionResetError):
            if settings.kill_on_disconnect:
                log.info("client left; stopping %s (pid %s)", spec.api, command.pid)
                ending = "client left: stopped"
            else:
                log.info("client left; %s (pid %s) runs on", spec.api, command.pid)
                detached = True
                self._run_on(command, spec)
            raise
        finally:
            try:
                await command.__aexit__(None, None, None)  # nothing to do once detached
            finally:
                if not detached:
                    self._ended(command)
                    self._audit(spec, command.outcome, command.ending or ending)

    def _run_on(self, command: Command, spec: CommandSpec) -> None:
        """A command whose client left runs to its end; it is audited then."""
        task = command.detach()
        self._detached.add(task)

        def ended(done: asyncio.Task[None]) -> None:
            self._detached.discard(done)
            self._ended(command)
            self._audit(spec, command.outcome, "ran on after its client left")

        task.add_done_callback(ended)

    def _started(self, command: Command) -> None:
        self.running.add(command)
        self.none_running.clear()

    def _ended(self, command: Command) -> None:
        self.running.discard(command)
        if not self.running:
            self.none_running.set()

    async def capture(self, spec: CommandSpec) -> Captured:
        """Run to the end and return the whole output (the bridge's own bookkeeping)."""
        streams: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        async with self.run(spec) as command:
            async for chunk in command:
                streams[chunk.stream].append(chunk.data)
        outcome = command.outcome
        return Captured(
            exit_code=outcome.exit_code if outcome else None,
            stdout=b"".join(streams["stdout"]).decode("utf-8", "replace"),
            stderr=b"".join(streams["stderr"]).decode("utf-8", "replace"),
            timed_out=bool(outcome and outcome.timed_out),
        )

    def _audit(self, spec: CommandSpec, outcome: Outcome | None, how: str) -> None:
        audit.info(
            "peer=%s bridge=%s api=%s cmd=%s exit=%s duration=%.3fs %s %s",
            spec.peer,
            self._current().instance_name,
            spec.api,
            self.display(spec.argv),
            outcome.exit_code if outcome else None,
            outcome.duration if outcome else 0.0,
            "warm" if outcome and outcome.warm else "cold",
            how,
        )

    async def shut_down(self) -> None:
        """The daemon stops: running commands get the grace period to finish, then their
        sessions are stopped; their calls end with a record that says so."""
        grace = self._current().kill_grace_period
        self.closing.set()
        self.slots.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), timeout=grace)
        if self.running:
            self.stopping = True
            log.warning("stopping %d running command(s)", len(self.running))
            await asyncio.gather(*(command.stop() for command in list(self.running)))
        with contextlib.suppress(TimeoutError):
            # The calls write their final records once their commands are gone.
            await asyncio.wait_for(self.idle.wait(), timeout=grace)
        for task in list(self._detached):
            task.cancel()
        await asyncio.gather(*self._detached, return_exceptions=True)
