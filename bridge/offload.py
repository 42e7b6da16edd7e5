"""Blocking work off the event loop: in a pool of threads that all run already, finished even
when its caller is cancelled.

``asyncio.to_thread`` alone has two faults here. Python's default pool starts a thread when
work comes and none is idle, and the loop waits for that thread to run, which on a loaded
machine holds it for tens of milliseconds: this pool's threads are started up front, off
the loop (:func:`start_workers`, at startup). And a cancelled caller goes on while its thread
still runs: a temp file made after its caller gave up would be left behind, a file removed
while another thread still writes it. Here the work always ends first; the cancellation is
raised after it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")
WORKERS = 16  # file, /proc and spawn work; a spawn waits in its thread for the exec
_pool: ThreadPoolExecutor | None = None  # one for the process, shared by every loop
_lock = threading.Lock()


def _started_pool(workers: int) -> ThreadPoolExecutor:
    """Blocking: make the pool and wait until every one of its threads runs."""
    global _pool
    with _lock:
        if _pool is None:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bridge-worker")
            everyone = threading.Barrier(workers)
            list(pool.map(lambda _: everyone.wait(), range(workers)))
            _pool = pool
        return _pool


def _forget_pool() -> None:
    """In a forked child: the pool's threads stayed in the parent, so work handed to it would
    wait forever; the child starts a pool of its own (make mutation forks one per mutant)."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


async def start_workers(workers: int = WORKERS) -> None:
    """Start the pool's threads (once per process), from a thread of its own."""
    if _pool is not None:
        return
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()

    def start() -> None:
        _started_pool(workers)
        loop.call_soon_threadsafe(started.set_result, None)

    threading.Thread(target=start, name="bridge-worker-start", daemon=True).start()
    await started


async def to_the_end(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the caller is cancelled (again and again) meanwhile,
    and only then let the cancellation through: whoever waits for the caller (a slot it
    holds, a graceful stop) must not see it finished while its work still runs."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    result = task.result()
    if cancelled:
        raise asyncio.CancelledError
    return result


async def in_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``func(*args, **kwargs)`` in a worker thread, run to its end (see :func:`to_the_end`)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await to_the_end(loop.run_in_executor(_pool, call))
