"""What a use case gives back for HTTP to answer with, and the events a run is made of.

A call's answer is one of three: :class:`Finished` (one envelope), :class:`Streamed` (events
to send as they come: output, then one result) or :class:`Detached` (a job that runs on).
The HTTP layer turns each into a response in the format the caller chose
(bridge.http.answers); nothing here knows a format or a response class.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from bridge.process.command import Outcome


@dataclass(frozen=True)
class Output:
    """A piece of a command's output, as text."""

    stream: str  # stdout or stderr
    text: str


@dataclass(frozen=True)
class Note:
    """A line of the bridge's own in the output (a run's state change)."""

    text: str


@dataclass(frozen=True)
class JobNamed:
    """The job the stream follows (sent first, where the format has room for it)."""

    job_id: str


@dataclass(frozen=True)
class Result:
    """The last event: the envelope without ``output`` (streams carry the output)."""

    envelope: dict[str, Any]
    outcome: Outcome | None = None  # the command's, where one ran


Event = Output | Note | JobNamed | Result


@dataclass(frozen=True)
class Finished:
    """One envelope, answered with its own ``http_response_code``."""

    envelope: dict[str, Any]
    outcome: Outcome | None = None  # the command's, where one ran (its timing)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Streamed:
    """Events to send as they come, ending with a :class:`Result`. Everything that could be
    refused was checked before this was made: the stream's status is 200."""

    events: AsyncGenerator[Event, None]
    job_id: str | None = None  # the job the stream follows: a follower may leave it


@dataclass(frozen=True)
class Detached:
    """A job started for the call: answered 202 with its envelope and its place."""

    job_id: str
    envelope: dict[str, Any]


Answer = Finished | Streamed | Detached
