"""A warm helper's child (warm_helper.py forks it): take one command's pipes and run the CLI
in them, as a cold ``airflow`` would (the protocol: warm_protocol.py). Standard library and
Airflow only.
"""

from __future__ import annotations

import atexit
import importlib
import os
import socket
import sys
import threading
import traceback

if __package__:  # imported as part of the bridge (its tests)
    from bridge.airflow_side import warm_protocol as protocol
else:  # run by path, as the daemon runs it: this folder is sys.path[0]
    import warm_protocol as protocol  # type: ignore[import-not-found, no-redef]


def wait_for_command(handoff: socket.socket) -> int:
    """The spare's life: wait for one command, run it, exit with its code. EOF (the helper
    retired, dropped it or died) ends it with 0 before it ran anything."""
    try:
        command, fds = protocol.receive(handoff, protocol.HANDOVER_FDS, protocol.Command)
    except protocol.ProtocolError as exc:
        protocol.refused("a spare child", exc)
        return protocol.EXIT_NOT_RUN
    finally:
        handoff.close()
    if command is None:
        return 0
    return run_command(command, *fds)


def run_command(command: protocol.Command, stdout_fd: int, stderr_fd: int, report_fd: int) -> int:
    """In the child: take the command's pipes, tell the daemon who runs it, run the CLI."""
    try:
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        os.close(stdout_fd)
        os.close(stderr_fd)
        with socket.socket(fileno=report_fd) as report:
            report.sendall(protocol.CommandStarted(os.getpid()).line())
        sys.argv = list(command.argv)
        show_command(sys.argv)  # before the environment changes: setproctitle needs it
        os.environ.clear()
        os.environ.update(command.env)
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


def signal_group(pgid: int, signum: int) -> None:
    """Signal a process group that may be gone already."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def show_command(argv: list[str]) -> None:
    """Let ps (and an operator looking for a stuck command) see the command, not the helper.
    setproctitle comes with Airflow, which uses it for its own processes."""
    try:
        importlib.import_module("setproctitle").setproctitle(" ".join(argv))
    except Exception:
        pass


def run_cli() -> int:
    """What the ``airflow`` console script does, then what interpreter exit would do."""
    code = call_cli()
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


def call_cli() -> int:
    """``airflow.__main__.main()`` with sys.argv, as the console script calls it; its exit
    code, once the threads it started are done."""
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
    return code


def exit_code(value: object) -> int:
    """sys.exit(value) semantics: None is 0, an int is itself, anything else is printed, 1."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1
