"""The warm helper's protocol: every message between the daemon, the helper and the processes
the helper forks, as typed messages of one protocol version; and a worker's states.

Standard library only: imported by the helper (warm_helper.py), its children (warm_child.py)
and its workers (warm_worker.py), run by path under Airflow's interpreter, and by the daemon
(bridge/process/warm.py, warm_process.py) under its own.

The processes: the daemon runs ``<airflow's python> warm_helper.py CONTROL_FD``; the helper
forks a child per command (one of them ahead of need: the spare), which runs it and exits
with its exit code, and workers, which run read-only commands one after another.

Every message is one JSON object, ``{"protocol": PROTOCOL_VERSION, "kind": ..., fields}``:

- control socket (SOCK_SEQPACKET, one message per datagram): the helper sends
  :class:`HelperReady` (or :class:`HelperFailed`) once; then the daemon sends a
  :class:`Command` with HANDOVER_FDS descriptors attached, or :class:`Retire` (a newer
  helper took over: exit once the running commands are done). EOF: the daemon is gone, the
  helper stops every command and exits.
- a spare's socket: the helper passes the :class:`Command` on with the same HANDOVER_FDS
  descriptors. EOF before one (retired, dropped, the helper died): it exits.
- a worker's socket: the helper sends a :class:`Command` with WORKER_FDS descriptors (it
  keeps the report socket itself); the worker answers :class:`CommandDone` once the command
  is over, both pipes are closed and it has put things back and compared the interpreter
  with its fingerprint (``last``: it takes no more), then :class:`WorkerReady`.
  EOF: it exits.
- a command's report socket (SOCK_STREAM, one message per line), what the daemon learns:
  :class:`CommandStarted` (from the child once it leads its own session; from the helper for
  a worker), then :class:`CommandExited` (from the helper, once reaped or told).

A message of another protocol version is refused with :class:`ProtocolMismatch`. The check
that matters is the hand-over: the daemon reads the helper's HelperReady before it hands it
anything, so a helper script from another version of the bridge (upgraded under a running
daemon) is refused with that reason on /health; every other reader checks too. A process
that refuses a message says why on stderr (the daemon's log) and closes the descriptors that
came with it; a spare or worker then exits with EXIT_NOT_RUN, told as the command's exit.

Two process kinds, kept on purpose. One kind, every fork a worker with a command budget
(1 for a command that changes things, hundreds for reads, like gunicorn's max_requests),
would not be simpler: a child differs in what the end of its command is, not only in how many
it runs. Its exit status is the command's (a killed command is -9 with no message sent), its
session is the command's own (the daemon stops whatever the command left there), and it runs
the interpreter's exit handlers instead of putting things back. A budget-1 worker would keep
both endings (exit by status and by CommandDone, outlives_command false and true), moving the
two kinds inside one class; gunicorn can count requests because they all end the same way.
"""

from __future__ import annotations

import array
import dataclasses
import enum
import json
import os
import socket
import sys
import time
from typing import ClassVar, TypeVar, overload

PROTOCOL_VERSION = 2  # 2: HelperReady's skipped_patches
# A Command as the daemon hands it over (and the helper to a child): the command's stdout,
# its stderr, and the report socket the daemon reads its start and exit from.
HANDOVER_FDS = 3
# A Command as a worker receives it: stdout and stderr (the helper keeps the report socket,
# since the worker outlives the command and the helper tells its exit).
WORKER_FDS = 2
MAX_MESSAGE = 4 * 1024 * 1024  # bytes in one datagram: a command's argv and environment
# The exit code of a command a spare or worker was handed and did not run (it refused the
# message): EX_TEMPFAIL.
EXIT_NOT_RUN = 75


class ProtocolError(ValueError):
    """A message that is not what the protocol says comes next."""


class ProtocolMismatch(ProtocolError):
    """A message of another protocol version: the two sides come from different bridges."""

    def __init__(self, version: object) -> None:
        theirs = "without a protocol version" if version is None else f"of version {version!r}"
        super().__init__(
            f"a message {theirs}, where this side speaks protocol version {PROTOCOL_VERSION}: "
            "the daemon and its warm helper must come from the same version of the bridge "
            "(restart the daemon after an upgrade)"
        )


@dataclasses.dataclass(frozen=True)
class Message:
    """One message; ``kind`` names it on the wire."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not _is(getattr(self, field.name), str(field.type)):
                raise ProtocolError(f"{self.kind!r} message: {field.name} is not {field.type}")

    def encode(self) -> bytes:
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return json.dumps({"protocol": PROTOCOL_VERSION, "kind": self.kind, **fields}).encode()

    def line(self) -> bytes:
        """As a line of a report socket."""
        return self.encode() + b"\n"


@dataclasses.dataclass(frozen=True)
class HelperReady(Message):
    """Helper -> daemon, once warm: who it is, and what the daemon should watch."""

    kind: ClassVar[str] = "ready"
    pid: int
    airflow_version: str
    watch: list[str]  # paths whose change makes the daemon restart it
    failed_imports: dict[str, str]  # module -> error
    skipped_patches: dict[str, str]  # shared work not done (warm_patches.py) -> why
    warmup_seconds: float


@dataclasses.dataclass(frozen=True)
class HelperFailed(Message):
    """Helper -> daemon, instead of HelperReady: warming up failed (a traceback)."""

    kind: ClassVar[str] = "failed"
    error: str


@dataclasses.dataclass(frozen=True)
class Command(Message):
    """Daemon -> helper -> child or worker: run this, with this as os.environ."""

    kind: ClassVar[str] = "command"
    argv: list[str]
    env: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Retire(Message):
    """Daemon -> helper: a newer helper took over; exit once the running commands are done."""

    kind: ClassVar[str] = "retire"


@dataclasses.dataclass(frozen=True)
class CommandStarted(Message):
    """Report line: the process running the command leads its own session now.
    ``outlives_command`` (a worker): once the exit came, its session is not the command's."""

    kind: ClassVar[str] = "started"
    pid: int
    outlives_command: bool = False


@dataclasses.dataclass(frozen=True)
class CommandExited(Message):
    """Report line, the last: the command's exit code (negative for a signal, as in asyncio)
    and its time in the helper's processes."""

    kind: ClassVar[str] = "exited"
    pid: int
    code: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class CommandDone(Message):
    """Worker -> helper: the command is over, its pipes closed. ``last``: it takes no more."""

    kind: ClassVar[str] = "done"
    code: int
    last: bool


@dataclasses.dataclass(frozen=True)
class WorkerReady(Message):
    """Worker -> helper: it has put things back, and reads its next command."""

    kind: ClassVar[str] = "worker-ready"


class WorkerState(enum.Enum):
    """A worker as the helper sees it; a command given to it makes it BUSY, its answers move
    it on (:meth:`after`)."""

    IDLE = "idle"  # takes a command now
    # A command whose exit it has not told: running it, or given it while putting things back
    # after the one before (it reads it once ready).
    BUSY = "busy"
    RESTORING = "restoring"  # told its command's exit, ready in a moment

    def after(self, answer: CommandDone | WorkerReady) -> WorkerState:
        if isinstance(answer, CommandDone):
            return WorkerState.RESTORING
        # A WorkerReady while busy is about the command before the one it was given.
        return WorkerState.IDLE if self is WorkerState.RESTORING else self


A = TypeVar("A", bound=Message)
B = TypeVar("B", bound=Message)


@overload
def decode(data: bytes, kind: type[A], /) -> A: ...
@overload
def decode(data: bytes, kind: type[A], other: type[B], /) -> A | B: ...
def decode(data: bytes, *kinds: type[Message]) -> Message:
    """The message in ``data``, which must be one of ``kinds`` (what may come next)."""
    return _decode(data, kinds)


@overload
def receive(sock: socket.socket, fds: int, kind: type[A], /) -> tuple[A | None, list[int]]: ...
@overload
def receive(
    sock: socket.socket, fds: int, kind: type[A], other: type[B], /
) -> tuple[A | B | None, list[int]]: ...
def receive(
    sock: socket.socket, fds: int, *kinds: type[Message]
) -> tuple[Message | None, list[int]]:
    """One message of ``kinds`` and the descriptors that came with it (``fds`` of them with a
    Command, none otherwise); (None, []) at EOF. Anything else raises ProtocolError, with the
    descriptors that came with it closed."""
    received = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_LEN(fds * received.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received.frombytes(payload[: len(payload) - (len(payload) % received.itemsize)])
    got = list(received)
    if not data:
        return None, close(got)
    try:
        message = _decode(data, kinds)
        wanted = fds if isinstance(message, Command) else 0
        if len(got) != wanted:
            raise ProtocolError(f"{message.kind!r} with {len(got)} descriptors, not {wanted}")
    except ProtocolError:
        close(got)
        raise
    return message, got


def send(sock: socket.socket, message: Message, fds: list[int] | tuple[int, ...] = ()) -> None:
    """Send one message with ``fds`` attached (blocking; OSError if the other side is gone)."""
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([message.encode()], rights)


def send_exit(report: socket.socket, pid: int, code: int, begun: float) -> None:
    """The last line on a command's report socket (CommandExited), then close it."""
    try:
        report.send(CommandExited(pid, code, time.monotonic() - begun).line())
    except OSError:
        pass  # the daemon stopped listening; it stopped the command itself
    report.close()


def refused(who: str, error: ProtocolError) -> None:
    """Say why ``who`` refused a message, on stderr: the helper's is the daemon's (its log),
    and its children's and workers' too, outside their commands."""
    print(f"airflow-rest-bridge warm helper: {who} refused a message: {error}", file=sys.stderr)
    sys.stderr.flush()


def answer_of(channel: socket.socket) -> CommandDone | WorkerReady | None:
    """For the helper: a worker's next answer, None if there is none yet. EOFError at its
    end; ProtocolError for anything else."""
    try:
        data = channel.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise EOFError(str(exc)) from exc
    if not data:
        raise EOFError
    return decode(data, CommandDone, WorkerReady)


def _decode(data: bytes, kinds: tuple[type[Message], ...]) -> Message:
    try:
        fields = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"not a message: {data[:80]!r}") from exc
    if not isinstance(fields, dict):
        raise ProtocolError(f"not a message: {data[:80]!r}")
    version = fields.pop("protocol", None)
    if version != PROTOCOL_VERSION:
        raise ProtocolMismatch(version)
    kind = fields.pop("kind", None)
    for expected in kinds:
        if expected.kind == kind:
            try:
                return expected(**fields)
            except TypeError as exc:
                raise ProtocolError(f"a malformed {kind!r} message: {exc}") from exc
    wanted = " or ".join(repr(expected.kind) for expected in kinds)
    raise ProtocolError(f"a {kind!r} message where {wanted} was expected")


def close(fds: list[int]) -> list[int]:
    """Close descriptors that came with a message nobody will use; an empty list."""
    for fd in fds:
        os.close(fd)
    return []


_SCALARS: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),  # as in JSON
    "bool": bool,
    "str": str,
}


def _is(value: object, annotation: str) -> bool:
    """Whether ``value`` is of the type a message field declares (annotations are strings)."""
    if annotation == "list[str]":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if annotation == "dict[str, str]":
        return isinstance(value, dict) and all(
            isinstance(key, str) and isinstance(item, str) for key, item in value.items()
        )
    return isinstance(value, _SCALARS[annotation])
