"""A warm helper's worker (warm_helper.py forks it): a child that stays, running one
read-only command after another in its own interpreter, so that what a command warms up
(the database connection, SQLAlchemy's compiled statements, lazily imported modules) is
there for the next one. Standard library and Airflow only.

Why: a forked child starts with an empty statement cache and a new connection, and pays
for its exit; for a command that only reads, that was most of its time. A worker pays it
once. It runs only the commands in READ_ONLY, each exactly as a child would (the same
``airflow.__main__.main()``, argv, environment and pipes), and puts back after each one
what a command may leave behind: the standard streams, logging's streams and handlers, the
database session, the secrets cache, the secrets maskers and the modules imported from DAG
and plugin folders (so an edited module is read again, as a new process would). After
MAX_COMMANDS it exits and the helper forks a new one.

A DAG or plugin file's top-level code can change anything else too (replace an Airflow
function, set a configuration value, add a warnings filter). So, having put things back, it
compares the interpreter with the fingerprint it took before its first command
(warm_fingerprint.py); on any difference it runs nothing more, and says so on stderr.

Its part of the protocol (warm_protocol.py): a Command with WORKER_FDS descriptors in;
CommandDone out once the command is over, both pipes are closed and it has put things back
and compared, then WorkerReady. The helper may give it the next command before that: it
reads it once it is ready. CommandDone's ``last`` (MAX_COMMANDS, or the interpreter is not
as it was): it exits instead; EOF (the helper is gone) ends it.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import socket
import sys
import sysconfig
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any

if __package__:  # imported as part of the bridge (its tests)
    from bridge.airflow_side import warm_child, warm_fingerprint
    from bridge.airflow_side import warm_protocol as protocol
else:  # run by path, as the daemon runs it: this folder is sys.path[0]
    import warm_child  # type: ignore[import-not-found, no-redef]
    import warm_fingerprint  # type: ignore[import-not-found, no-redef]
    import warm_protocol as protocol  # type: ignore[import-not-found, no-redef]

# (group, command) of the commands a worker runs: they read the metadata database or DAG
# files and print. Anything else (and any argv a worker is unsure of) goes to a forked child.
READ_ONLY = frozenset(
    {
        ("dags", "list"),
        ("dags", "state"),
        ("tasks", "list"),
        ("tasks", "state"),
        ("tasks", "failed-deps"),
        ("variables", "get"),
        ("variables", "list"),
        ("pools", "get"),
        ("pools", "list"),
        ("version", None),
    }
)
MAX_COMMANDS = 500  # then it exits: whatever a DAG file leaves behind goes with it
# Signals whose handlers Airflow's own DAG import sets and leaves set (its import timeout's
# SIGALRM; Airflow 3's SIGSEGV report): put back after each command, like logging's handlers.
LEFT_BY_DAG_IMPORTS = (signal.SIGALRM, signal.SIGSEGV)


@dataclass
class Worker:
    """The helper's record of a worker: its socket, its state, and while it is BUSY, where
    its command's exit goes (the report socket) and when that command began."""

    channel: socket.socket
    state: protocol.WorkerState = protocol.WorkerState.IDLE
    report: socket.socket | None = None
    begun: float = 0.0

    def give(self, report: socket.socket) -> None:
        """It was handed a command; its exit goes to ``report``."""
        self.state, self.report, self.begun = protocol.WorkerState.BUSY, report, time.monotonic()


def takes(argv: list[str]) -> bool:
    """Whether a worker runs ``argv`` (the executable, then the CLI's words)."""
    words = argv[1:3]
    if not words or words[0].startswith("-"):
        return False
    command = words[1] if len(words) > 1 and not words[1].startswith("-") else None
    return (words[0], command) in READ_ONLY


def serve(channel: socket.socket) -> int:
    """The worker's life: commands until EOF, MAX_COMMANDS, or a command after which the
    interpreter is not as it was."""
    sys.stdout.flush()
    sys.stderr.flush()
    ours = (os.dup(1), os.dup(2))  # the helper's streams, between commands
    baseline = Baseline()
    for served in range(1, MAX_COMMANDS + 1):
        try:
            command, fds = protocol.receive(channel, protocol.WORKER_FDS, protocol.Command)
        except protocol.ProtocolError as exc:
            protocol.refused("a worker", exc)
            return protocol.EXIT_NOT_RUN  # the helper tells it as the command's exit
        if command is None:
            return 0
        warm_child.show_command(command.argv)
        code = 1
        try:
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            os.close(fds[0])
            os.close(fds[1])
            sys.argv = list(command.argv)
            os.environ.clear()
            os.environ.update(command.env)
            code = warm_child.call_cli()
        finally:
            code = baseline.end_command(code)
            os.dup2(ours[0], 1)  # closes the command's pipes: the daemon sees their end
            os.dup2(ours[1], 2)
        # Put back and compared before the exit is told, so that ``last`` can say whether it
        # takes another command; the helper gives it nothing more if not.
        changed = baseline.put_back()
        if changed:
            print(
                f"airflow-rest-bridge warm helper: a worker exits after its command {served}, "
                f"which changed {', '.join(changed)}",
                file=sys.stderr,
                flush=True,
            )
        last = served == MAX_COMMANDS or bool(changed)
        # A worker again (what ps shows) before the daemon hears the command ended.
        warm_child.show_command(
            [f"airflow-rest-bridge warm helper: worker, commands run: {served}"]
        )
        if not _answer(channel, protocol.CommandDone(code, last)) or last:
            return 0
        if not _answer(channel, protocol.WorkerReady()):
            return 0
    return 0


def _answer(channel: socket.socket, message: protocol.Message) -> bool:
    """Tell the helper; False if it is gone."""
    try:
        protocol.send(channel, message)
    except OSError:
        return False
    return True


class Baseline:
    """What a command may change and the next command must not see, as it was before: what
    is put back after each command, and a fingerprint of the rest (taken last)."""

    def __init__(self) -> None:
        self.modules = set(sys.modules)
        self.environment = dict(os.environ)
        self.path = list(sys.path)
        self.cwd = os.getcwd()
        paths = sysconfig.get_paths()
        self.installed = tuple(
            {
                os.path.realpath(paths[key]) + os.sep
                for key in ("stdlib", "platstdlib", "purelib", "platlib")
            }
        )
        self.loggers = {
            name: _logger_state(logger)
            for name, logger in [("", logging.getLogger()), *_named_loggers()]
        }
        # Console handlers only: a file handler may close and reopen its own stream.
        self.streams = {
            handler: handler.stream
            for handler in _handlers()
            if isinstance(handler, logging.StreamHandler)
            and handler.stream in (sys.stdout, sys.stderr)
        }
        self.signals = {signum: signal.getsignal(signum) for signum in LEFT_BY_DAG_IMPORTS}
        self.maskers = _masker_states()
        self.fingerprint = warm_fingerprint.Fingerprint()

    def put_back(self) -> list[str]:
        """Put back what a command may have changed, then compare the rest with the
        fingerprint: what is not as it was (empty: the next command may run here)."""
        if not self.restore():
            return ["what the worker puts back (putting it back failed)"]
        return self.fingerprint.changed()

    def end_command(self, code: int) -> int:
        """What a process does as it exits, before its exit is told: its output flushed, its
        database session given back. The command's exit code (1 if that failed)."""
        try:
            self._flush()
            with warnings.catch_warnings():  # the command's stderr is not for the worker's
                warnings.simplefilter("ignore")
                self._end_database_session()
        except BaseException:
            traceback.print_exc()
            return 1
        return code

    def restore(self) -> bool:
        """Put back the rest of what a command may have changed; False if that failed."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._reset_secrets_cache()
                _put_back_maskers(self.maskers)
                self._restore_logging()
                self._forget_user_modules()
                os.environ.clear()  # the command ran with the request's environment
                os.environ.update(self.environment)
                sys.path[:] = self.path  # DAG files may add their folders
                os.chdir(self.cwd)
                for signum, handler in self.signals.items():
                    if signal.getsignal(signum) is not handler and handler is not None:
                        signal.signal(signum, handler)
        except BaseException:
            traceback.print_exc()
            return False
        return True

    def _flush(self) -> None:
        for handler in _handlers():
            try:
                handler.flush()
            except Exception:
                pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass

    def _end_database_session(self) -> None:
        """A command's session is rolled back and returned to the pool, as at exit."""
        session = getattr(sys.modules.get("airflow.settings"), "Session", None)
        remove = getattr(session, "remove", None)
        if remove is not None:
            remove()

    def _reset_secrets_cache(self) -> None:
        """A new process starts with an empty cache of variables and connections."""
        for module in ("airflow.secrets.cache", "airflow.sdk.execution_time.cache"):
            # vars(): on Airflow 3 the old name is a deprecated alias whose lookup warns
            cache = vars(sys.modules[module]).get("SecretCache") if module in sys.modules else None
            if cache is not None:
                cache.reset()

    def _restore_logging(self) -> None:
        # Airflow 3 points stdout log handlers at stderr for commands taking ``-o``.
        for handler, stream in self.streams.items():
            if handler.stream is not stream:
                handler.setStream(stream)
        for name, logger in [("", logging.getLogger()), *_named_loggers()]:
            state = self.loggers.get(name)
            if state is not None and _logger_state(logger) != state:
                handlers, logger.level, logger.propagate, logger.disabled = state
                logger.handlers[:] = handlers

    def _forget_user_modules(self) -> None:
        """Modules a command imported from outside the installation (DAG files, the modules
        they import, plugins) are imported afresh by the next command, as by a new process."""
        for name in set(sys.modules) - self.modules:
            path = getattr(sys.modules[name], "__file__", None)
            if path and not os.path.realpath(path).startswith(self.installed):
                del sys.modules[name]
            else:  # a module of the installation, imported late: kept, and not looked at again
                self.modules.add(name)


# What a secrets masker's class sets once per process: Airflow 3 warns once that a secret
# is too short to mask (every `variables get` of a short value). Put back, so that the next
# command warns as a new process would (and the fingerprint finds the class as it was).
MASKER_ONCE_FLAGS = ("_has_warned_short_secret",)

# A masker, its attributes as the worker started (each object, with a copy of a container's
# content), its class and the class's once-flags.
MaskerState = tuple[Any, dict[str, tuple[Any, Any]], type, dict[str, Any]]


def _masker_states() -> list[MaskerState]:
    """Each secrets masker as the worker starts."""
    states = []
    for name in warm_fingerprint.MASKERS:
        make = getattr(sys.modules.get(name), "_secrets_masker", None)
        if make is None:
            continue
        masker = make()
        attributes = {key: (value, _content(value)) for key, value in vars(masker).items()}
        flags = {f: vars(type(masker))[f] for f in MASKER_ONCE_FLAGS if f in vars(type(masker))}
        states.append((masker, attributes, type(masker), flags))
    return states


def _put_back_maskers(states: list[MaskerState]) -> None:
    """The secrets a command added to a masker (Airflow 3 masks every value `variables get`
    read) are not masked in the next command, as in a new process, which starts with the
    masker as the helper left it: the same objects (the fingerprint compares identities),
    containers refilled with what they held."""
    for masker, attributes, cls, flags in states:
        current: dict[str, Any] = masker.__dict__
        current.clear()
        for key, (value, content) in attributes.items():
            if isinstance(value, list):
                value[:] = content
            elif isinstance(value, (set, dict)):
                value.clear()
                value.update(content)
            current[key] = value
        for flag, value in flags.items():
            setattr(cls, flag, value)


def _content(value: Any) -> Any:
    """A copy of a container's content (None for anything else, kept as it is)."""
    return copy.copy(value) if isinstance(value, (set, list, dict)) else None


def _named_loggers() -> list[tuple[str, logging.Logger]]:
    return [
        (name, logger)
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if isinstance(logger, logging.Logger)
    ]


def _logger_state(logger: logging.Logger) -> tuple[Any, ...]:
    return (tuple(logger.handlers), logger.level, logger.propagate, logger.disabled)


def _handlers() -> list[logging.Handler]:
    found: dict[int, logging.Handler] = {}
    for _, logger in [("", logging.getLogger()), *_named_loggers()]:
        for handler in logger.handlers:
            found[id(handler)] = handler
    return list(found.values())
