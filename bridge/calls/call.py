"""A call as it arrived, captured whole: who asked, which API with its checked values, the
settings and installation in force then, and the daemon's parts it may use. It holds no
request object, so a job that outlives its connection keeps exactly what it started with."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bridge.calls.follows import Follow, Follows
from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import AirflowInfo
from bridge.catalogue.model import Api, Context, Values
from bridge.config.settings import Settings
from bridge.config.tokens import ALL_SCOPES, OPEN_IDENTITY, OPEN_NAME, Scope, dag_matches
from bridge.deploy.staging import StagedUpload
from bridge.jobs.board import Jobs
from bridge.process.path import CommandPath
from bridge.process.slots import Owner


@dataclass(frozen=True)
class Caller:
    """The token a request came with: its name (never its value), its scopes, and its
    identity (made when the token was added, never reused), which owns the jobs it starts."""

    name: str
    scopes: frozenset[Scope]
    identity: str
    dags: tuple[str, ...] = ()  # the DAG patterns it is confined to; none: every DAG

    @property
    def confined(self) -> bool:
        return bool(self.dags)

    def may_see(self, dag_id: str) -> bool:
        """Whether the DAG ``dag_id`` is one of this caller's."""
        return dag_matches(self.dags, dag_id)

    @property
    def sees_every_job(self) -> bool:
        """admin sees (and may cancel) every job; others their own."""
        return Scope.ADMIN in self.scopes

    @property
    def owner(self) -> Owner | None:
        """Whose share of the slots and follows its calls take: its token's (None without
        auth, where every caller is the same nobody)."""
        if self.identity == OPEN_IDENTITY:
            return None
        return Owner(self.identity, Scope.ADMIN in self.scopes, self.name)


# No token asked for: whoever reaches the port.
NOBODY = Caller(OPEN_NAME, ALL_SCOPES, OPEN_IDENTITY)


@dataclass(frozen=True)
class Daemon:
    """The daemon's parts a call may use, made once by the application."""

    commands: CommandPath
    jobs: Jobs
    upload_locks: dict[str, asyncio.Lock]
    follows: Follows


@dataclass
class Call:
    """A request that passed validation: which API, its checked values, how to answer."""

    api: Api
    values: Values
    context: Context
    settings: Settings  # as in force when the call arrived
    airflow: AirflowInfo  # the installation as detected when the call arrived
    cli_commands: CliCommands
    daemon: Daemon
    caller: Caller
    remote: str  # the client's address, as the access log shows it
    base: dict[str, Any]  # the envelope started for it
    stream: str | None  # the stream format's name; None: one envelope (buffered)
    want_json: bool  # output=json
    upload: StagedUpload | None = None  # an uploaded file, staged while the body arrived
    notes: list[str] = field(default_factory=list)  # warnings about the request itself
    detach: bool = False  # answer 202 and run the command as a job
    # Set when the call must stop waiting (its job was cancelled): bridge.calls.stopping.
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # Its place among the follows, while it follows or waits (its token revoked: it stops).
    follow: Follow | None = None

    @property
    def peer(self) -> str:
        """Who asked, for the audit line: the client's address and its token's name."""
        return f"{self.remote} token={self.caller.name}"

    @property
    def commands(self) -> CommandPath:
        return self.daemon.commands

    @property
    def owner(self) -> Owner | None:
        """Whose share of the slots and follows the call takes: its token's."""
        return self.caller.owner
