"""In asyncio's debug mode: what held the event loop.

Two checks, both reported on ``bridge.loop`` (the test suite runs the daemon, and its own
loops, this way and fails on such a line):

- a callback whose own work took longer than the slow-callback limit: its CPU time on the
  loop's thread, garbage collection aside. asyncio's own report (kept, for information)
  counts wall time, which on a small shared machine is mostly the time the loop waited for
  a CPU while other processes ran: that measures the machine, not the code;
- a blocking file or process operation made by the bridge's own code while a callback runs:
  opening a file, listing or changing a folder, copying, spawning (Python's audit events).
  That is deterministic: such work belongs in a thread, however fast the disk is today.

asyncio offers no public hook around each callback, so :func:`watch` wraps
``asyncio.Handle._run``; it is meant for debugging and tests only, never installed otherwise.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("bridge.loop")
HELD_MESSAGE = "event loop held"
BLOCKING_MESSAGE = "blocking call on the event loop"
# Python's audit events for file and process work that blocks.
BLOCKING_EVENTS = frozenset(
    {
        *("open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.mkdir"),
        *("os.rmdir", "os.chmod", "os.chown", "os.truncate", "os.link", "os.symlink"),
        *("os.utime", "shutil.copyfile", "shutil.copymode", "shutil.copystat"),
        *("shutil.copytree", "shutil.rmtree", "shutil.move", "tempfile.mkstemp"),
        *("tempfile.mkdtemp", "subprocess.Popen", "os.posix_spawn", "os.fork", "os.system"),
    }
)
PACKAGE = str(Path(__file__).resolve().parents[1])  # the bridge package's folder
TESTS = str(Path(PACKAGE).parent / "tests") + "/"  # a checkout's test suite

Report = Callable[[str], None]
_reports: dict[int, Report] = {}  # loop thread id -> where its reports go
_running: dict[int, list[str]] = {}  # loop thread id -> blocking calls of the current callback
_gc = {"started": 0.0, "seconds": 0.0}  # garbage collection, all threads
_original_run = asyncio.Handle._run
_installed = False


def _count_gc(phase: str, info: dict[str, Any]) -> None:
    now = time.perf_counter()
    if phase == "start":
        _gc["started"] = now
    elif _gc["started"]:
        _gc["seconds"] += now - _gc["started"]
        _gc["started"] = 0.0


# Debug mode's own work: asyncio records where each task and handle was created, and
# reading the source lines for that opens files. Not the bridge's doing.
_TRACING = ("linecache.py", "traceback.py", "tokenize.py", "format_helpers.py")
# make mutation: mutmut wraps each function it mutates in a trampoline of its own package,
# which stands between a test and the bridge code the test calls.
_TRAMPOLINE = "/mutmut/"


def _bridge_caller(frame: FrameType | None) -> str | None:
    """The innermost frame of the bridge's own code on the stack, as file:line; None when no
    bridge code is on it, when debug mode's own tracing did the call, or when a test called
    that bridge code directly (a test's helper may block; the daemon must not)."""
    innermost: FrameType | None = None
    outermost: FrameType | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.endswith(_TRACING):
            return None
        if filename.startswith(TESTS):
            break
        if filename.startswith(PACKAGE) and not filename.endswith("loop_watch.py"):
            innermost = innermost or frame
            outermost = frame
        frame = frame.f_back
    if innermost is None or (outermost is not None and _caller_of(outermost) is frame is not None):
        return None
    return f"{innermost.f_code.co_filename.removeprefix(PACKAGE + '/')}:{innermost.f_lineno}"


def _caller_of(frame: FrameType) -> FrameType | None:
    """The frame that called ``frame``, past mutmut's trampolines."""
    caller = frame.f_back
    while caller is not None and _TRAMPOLINE in caller.f_code.co_filename:
        caller = caller.f_back
    return caller


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in BLOCKING_EVENTS:
        return
    calls = _running.get(threading.get_ident())
    if calls is None or (event == "open" and isinstance(args[0], int)):
        return  # not in a watched callback; wrapping a file descriptor is no file work
    caller = _bridge_caller(sys._getframe(1))
    if caller is not None:
        calls.append(f"{event}({str(args[0])[:120]!r}) at bridge/{caller}")


def _measured_run(handle: asyncio.Handle) -> None:
    thread = threading.get_ident()
    report = _reports.get(thread)
    if report is None:
        _original_run(handle)
        return
    cpu, collected = time.thread_time(), _gc["seconds"]
    calls: list[str] = []
    _running[thread] = calls
    try:
        _original_run(handle)
    finally:
        del _running[thread]
        held = time.thread_time() - cpu - (_gc["seconds"] - collected)
        limit = asyncio.get_running_loop().slow_callback_duration
        if held > limit or calls:
            owner = getattr(getattr(handle, "_callback", None), "__self__", handle)
            if held > limit:
                report(f"{HELD_MESSAGE} {held * 1000:.0f} ms (CPU) by {owner!r}")
            for call in calls:
                report(f"{BLOCKING_MESSAGE}: {call}, in {owner!r}")


def watch(limit: float, report: Report | None = None) -> Callable[[], None]:
    """Watch the running loop (in debug mode, with ``limit`` as its slow-callback duration);
    reports go to ``report`` (default: a warning on ``bridge.loop``). Returns the unwatch."""
    global _installed
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = limit
    if not _installed:
        gc.callbacks.append(_count_gc)
        sys.addaudithook(_audit)
        asyncio.Handle._run = _measured_run  # type: ignore[method-assign,assignment]
        _installed = True
    thread = threading.get_ident()
    _reports[thread] = report or log.warning

    def unwatch() -> None:
        _reports.pop(thread, None)

    return unwatch
