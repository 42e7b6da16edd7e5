"""The warm Airflow interpreter: import Airflow and its CLI once, then fork one child per command.

    <airflow's python> warm_helper.py CONTROL_FD

Run by the daemon with the Python behind the configured ``airflow`` executable; never imported
by the daemon. Standard library and Airflow only: it is not installed beside Airflow.

Why: a cold ``airflow`` pays seconds for importing Airflow on every call. Airflow's own task
runner avoids that by forking a pre-imported interpreter; this does the same for CLI commands.
A child runs ``airflow.__main__.main()`` (the CLI's own parser and command functions) with the
request's argv and environment, in a session of its own, writing to the
pipes the daemon reads, exactly as a cold ``airflow`` would.

Protocol, on the SOCK_SEQPACKET socket CONTROL_FD (one message per datagram):

- helper -> daemon, once warm: ``{"ready": true, "version": ..., "watch": [paths], ...}``
- daemon -> helper, per command: ``{"argv": [...], "env": {...}}`` with three
  file descriptors attached: the child's stdout, its stderr and a report socket.
- on the report socket, lines of JSON: the child writes ``{"pid": N}`` once it leads its own
  session (so the daemon can always stop it); the helper writes ``{"pid": N, "exit": code,
  "seconds": s}`` when it has reaped it. ``exit`` is negative for a signal, as in asyncio.

A ``{"retire": true}`` message (a newer helper took over) makes it exit once its children are
done. When the daemon goes away (EOF on the control socket) it stops its children and exits.
"""

from __future__ import annotations

import array
import atexit
import gc
import importlib
import json
import os
import pkgutil
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

MAX_MESSAGE = 4 * 1024 * 1024
FDS_PER_COMMAND = 3
STOP_GRACE = 5.0  # seconds children get after SIGTERM when the daemon is gone

# Modules the command functions import lazily, on top of every airflow.cli.commands module.
# Missing ones (a different Airflow major) are skipped; others that fail are reported.
LAZY_IMPORTS = (
    "airflow.models",
    "airflow.models.dagbag",
    "airflow.dag_processing.dagbag",
    "airflow.models.serialized_dag",
    "airflow.serialization.serialized_objects",
    "airflow.cli.simple_table",
    "airflow.utils.cli",
    "airflow.providers_manager",
    "airflow.api.common.trigger_dag",
    "airflow.api.client.local_client",
    "airflow.jobs.job",
    "airflow.timetables.interval",
    "airflow.sdk",
    "airflow.sdk.definitions.dag",
    "airflow.secrets.local_filesystem",
    "airflow.utils.db",
    "airflow.migrations.utils",  # the CLI checks the schema with alembic
    "airflow.dag_processing.bundles.local",
    "airflow.models.renderedtifields",
    "airflow.models.dag_favorite",
    "airflow.timetables.trigger",
    "airflow.sdk.bases.sensor",
    "airflow.sdk.bases.decorator",
    "airflow.sdk.definitions.decorators",
    "airflow.decorators",  # Airflow 2's DAG-file imports
    "airflow.operators.bash",
    "airflow.operators.python",
    "airflow.operators.empty",
    "airflow.sensors.external_task",
    "alembic.migration",
    "alembic.script",
    "alembic.runtime.environment",
    "mako.template",
    "tabulate",
    "rich.console",
    "rich.table",
    "rich._emoji_codes",
    "pendulum",
    "packaging.requirements",
    "tomllib",
    "httpx",  # the CLI's API client (pools, ...)
    "httpcore",
    "timeit",
    "setproctitle",
)


def warm_up() -> dict[str, Any]:
    """Import what a CLI command needs; return what the daemon should know and watch."""
    # The configuration first, as airflow/__main__.py does (import cycles otherwise).
    configuration = importlib.import_module("airflow.configuration")
    airflow = importlib.import_module("airflow")
    importlib.import_module("airflow.__main__")
    importlib.import_module("airflow.cli.cli_parser").get_parser()
    commands = importlib.import_module("airflow.cli.commands")
    names = [
        info.name for info in pkgutil.walk_packages(commands.__path__, "airflow.cli.commands.")
    ]
    failed: dict[str, str] = {}
    for name in [*names, *LAZY_IMPORTS]:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            # A module of the other Airflow major, or an optional extra that is not installed:
            # a command that needs it imports it in its child (slower, never wrong).
            if not _missing_on_purpose(exc, name):
                failed[name] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    # SQLAlchemy sets up the ORM mappers at the first query; do that once here, not in every
    # child (it costs more than a typical command's own work).
    try:
        importlib.import_module("sqlalchemy.orm").configure_mappers()
    except Exception as exc:
        failed["sqlalchemy.orm.configure_mappers()"] = f"{type(exc).__name__}: {exc}"
    try:
        share_migration_scripts()
    except Exception as exc:
        failed["migration scripts"] = f"{type(exc).__name__}: {exc}"
    try:
        # What @providers_configuration_loaded does before nearly every command: discover
        # the installed providers and merge their configuration defaults (~70 ms on 2.11).
        # Done once, here, with the environment every child of this helper runs with.
        providers = importlib.import_module("airflow.providers_manager").ProvidersManager()
        providers.initialize_providers_configuration()
    except Exception as exc:
        failed["providers configuration"] = f"{type(exc).__name__}: {exc}"
    package = os.path.dirname(str(airflow.__file__))
    watch = [
        configuration.AIRFLOW_CONFIG,
        str(airflow.__file__),  # replaced by an upgrade
        # The distributions installed beside it (bridge.catalogue.cli_cache.stamp): not the
        # folder's mtime, which moves whenever Python writes __pycache__.
        os.path.join(os.path.dirname(package), "*.dist-info"),
        configuration.conf.get("core", "plugins_folder", fallback=""),
    ]
    return {
        "version": airflow.__version__,
        "watch": [path for path in watch if path],
        "failed_imports": failed,
    }


def share_migration_scripts() -> None:
    """Load Airflow's migration scripts once, for every child.

    Before most commands the CLI compares the database's migration heads with its own
    (``[database] check_migrations``). Alembic finds its own by compiling and running every
    migration file (over a hundred), in a new ``ScriptDirectory`` each time: 70-100 ms of a
    warm command that answers in 30. The files cannot change while this helper runs (an
    upgrade replaces the dist-info it watches, and a new helper starts), so the revision map
    each ``ScriptDirectory`` builds is kept, per set of folders it reads, and shared. Only
    the map is shared: the heads are still compared with the database's on every command.
    """
    script_directory = importlib.import_module("alembic.script").ScriptDirectory
    build_from_config = script_directory.from_config.__func__
    maps: dict[tuple[Any, ...], Any] = {}

    def from_config(cls: type, config: Any) -> Any:
        script = build_from_config(cls, config)
        folders = (
            script.dir,
            tuple(script.version_locations or ()),
            script.sourceless,
            getattr(script, "recursive_version_locations", False),
        )
        script.revision_map = maps.setdefault(folders, script.revision_map)
        return script

    script_directory.from_config = classmethod(from_config)
    importlib.import_module("airflow.utils.db")._get_script_object().get_heads()


def _missing_on_purpose(exc: ImportError, name: str) -> bool:
    """The module itself (or its package) does not exist in this Airflow: expected, since
    LAZY_IMPORTS names the modules of both majors."""
    missing = getattr(exc, "name", None) or ""
    return isinstance(exc, ModuleNotFoundError) and name.startswith(missing) and bool(missing)


def main(control_fd: int) -> int:
    started = time.monotonic()
    control = socket.socket(fileno=control_fd)
    try:
        facts = warm_up()
    except BaseException:
        control.send(json.dumps({"ready": False, "error": traceback.format_exc()}).encode())
        return 1
    # The imported objects live as long as the helper: keep the collector off them, so that
    # children do not copy pages the collector would touch.
    gc.freeze()
    show_command([f"airflow-rest-bridge warm helper (Airflow {facts['version']})"])
    facts.update(ready=True, pid=os.getpid(), warmup_seconds=time.monotonic() - started)
    control.send(json.dumps(facts).encode())
    return Helper(control).serve()


class Helper:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: dict[int, tuple[socket.socket, float]] = {}
        self.retiring = False  # a newer helper took over: exit once the children are done
        self.wakeup_read, self.wakeup_write = os.pipe()
        os.set_blocking(self.wakeup_write, False)
        # A child forked ahead of need, waiting on its end of this socket for a command: the
        # fork (5-13 ms for a helper this size) and the database connection are then paid
        # between requests, not during one. None while there is none (after a failure, the
        # next request forks its own child and a new spare is forked after it).
        self.spare: tuple[int, socket.socket] | None = None

    def serve(self) -> int:
        signal.set_wakeup_fd(self.wakeup_write)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select()
        selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ)
        selector.register(self.wakeup_read, selectors.EVENT_READ)
        self.fork_spare()
        while not (self.retiring and not self.children):
            for key, _ in selector.select():
                if key.fileobj == self.wakeup_read:
                    os.read(self.wakeup_read, 4096)
                    self.reap()
                elif not self.take_request():
                    self.stop_children()
                    return 0
                elif self.retiring and self.control.fileno() != -1:
                    selector.unregister(self.control)
                    self.control.close()
                    self.drop_spare()
        return 0

    def take_request(self) -> bool:
        """Read one request and start its child; False when the daemon has gone."""
        fds = array.array("i")
        message, ancillary, _, _ = self.control.recvmsg(
            MAX_MESSAGE, socket.CMSG_LEN(FDS_PER_COMMAND * fds.itemsize)
        )
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        if not message:
            return False
        request = json.loads(message)
        if request.get("retire"):
            self.retiring = True
            return True
        if len(fds) != FDS_PER_COMMAND:
            for fd in fds:
                os.close(fd)
            return True
        begun = time.monotonic()
        pid = self.hand_to_spare(message, fds)
        if pid is None:
            pid = self.fork_child(request, fds)
        for fd in fds[:2]:
            os.close(fd)
        report = socket.socket(fileno=fds[2])
        report.setblocking(False)
        self.children[pid] = (report, begun)
        self.fork_spare()
        return True

    def hand_to_spare(self, message: bytes, fds: array.array[int]) -> int | None:
        """Give the request and its descriptors to the spare child; its pid, or None."""
        if self.spare is None:
            return None
        pid, handoff = self.spare
        self.spare = None
        try:
            handoff.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError:
            handoff.close()  # too big for the socket, or the spare died: it exits on EOF
            return None
        handoff.close()
        return pid

    def fork_child(self, request: dict[str, Any], fds: array.array[int]) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self.become_child()
                code = run_command(request, *fds)
            finally:
                os._exit(code)
        return pid

    def fork_spare(self) -> None:
        if self.spare is not None or self.retiring:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ours.close()
                self.become_child()
                show_command(["airflow-rest-bridge warm helper: spare child"])
                connect_ahead()
                code = wait_for_command(theirs)
            finally:
                os._exit(code)
        theirs.close()
        self.spare = (pid, ours)

    def drop_spare(self) -> None:
        """The spare exits when its socket closes (as it does when the helper dies)."""
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None

    def become_child(self) -> None:
        """Leave the helper behind: a session of its own (the daemon stops a command by its
        process group), default signals, none of the helper's descriptors."""
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self.wakeup_read)
        os.close(self.wakeup_write)
        self.control.close()
        for sibling, _ in self.children.values():
            sibling.close()
        if self.spare is not None:
            self.spare[1].close()  # else the spare would not see EOF when the helper goes
        fresh_database_connections()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and self.spare[0] == pid:
                # It died waiting (killed from outside): the next request forks its own.
                self.spare[1].close()
                self.spare = None
                continue
            report, begun = self.children.pop(pid, (None, 0.0))
            if report is None:
                continue
            line = {
                "pid": pid,
                "exit": os.waitstatus_to_exitcode(status),
                "seconds": time.monotonic() - begun,
            }
            try:
                report.send(json.dumps(line).encode() + b"\n")
            except OSError:
                pass  # the daemon stopped listening; it stopped the command itself
            report.close()

    def stop_children(self) -> None:
        """The daemon is gone: nobody reads these commands any more."""
        self.drop_spare()
        for pid in list(self.children):
            _signal_group(pid, signal.SIGTERM)
        give_up = time.monotonic() + STOP_GRACE
        while self.children and time.monotonic() < give_up:
            time.sleep(0.05)
            self.reap()
        for pid in list(self.children):
            _signal_group(pid, signal.SIGKILL)


def wait_for_command(handoff: socket.socket) -> int:
    """The spare's life: wait for one command, run it, exit with its code. EOF (the helper
    retired, dropped it or died) ends it with 0 before it ran anything."""
    fds = array.array("i")
    message, ancillary, _, _ = handoff.recvmsg(
        MAX_MESSAGE, socket.CMSG_LEN(FDS_PER_COMMAND * fds.itemsize)
    )
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    handoff.close()
    if not message or len(fds) != FDS_PER_COMMAND:
        return 0
    return run_command(json.loads(message), *fds)


def run_command(request: dict[str, Any], stdout_fd: int, stderr_fd: int, report_fd: int) -> int:
    """In the child: take the command's pipes, tell the daemon who runs it, run the CLI."""
    try:
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        os.close(stdout_fd)
        os.close(stderr_fd)
        with socket.socket(fileno=report_fd) as report:
            report.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        sys.argv = list(request["argv"])
        show_command(sys.argv)  # before the environment changes: setproctitle needs it
        os.environ.clear()
        os.environ.update(request["env"])
        return run_cli()
    except BaseException:
        traceback.print_exc()
        return 1


def fresh_database_connections() -> None:
    """Forget pooled connections inherited from the helper without closing them (they are
    the helper's); Airflow registers the same for its own forks."""
    engine = getattr(sys.modules.get("airflow.settings"), "engine", None)
    if engine is not None:
        engine.dispose(close=False)


def connect_ahead() -> None:
    """Open the spare's database connection before its command arrives. Only a pool that
    keeps connections (Airflow's QueuePool) gives it to the command; with NullPool (SQLite
    on Airflow 2) the command opens its own, so opening one here would only cost."""
    engine = getattr(sys.modules.get("airflow.settings"), "engine", None)
    if engine is None or type(engine.pool).__name__ == "NullPool":
        return
    try:
        engine.connect().close()
    except Exception:
        pass  # the command meets the same error itself, and reports it


def show_command(argv: list[str]) -> None:
    """Let ps (and an operator looking for a stuck command) see the command, not the helper.
    setproctitle comes with Airflow, which uses it for its own processes."""
    try:
        importlib.import_module("setproctitle").setproctitle(" ".join(argv))
    except Exception:
        pass


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def run_cli() -> int:
    """What the ``airflow`` console script does, then what interpreter exit would do."""
    main = importlib.import_module("airflow.__main__").main
    try:
        code = exit_code(main())
    except SystemExit as exc:
        code = exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    # Airflow's and logging's exit handlers (flushing log files, disposing the ORM), without
    # the interpreter's finalization: the public way, unwinding the child to sys.exit(),
    # tears down every module Airflow imported and costs ~60 ms more per command (11 ms
    # against 72 ms from fork to reaped on 3.3.2, this 2-core machine).
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def exit_code(value: object) -> int:
    """sys.exit(value) semantics: None is 0, an int is itself, anything else is printed, 1."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
