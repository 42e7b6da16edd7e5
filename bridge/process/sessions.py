"""Process sessions on Linux: who is in one, signalling all of it, telling a pid's start time.

Every command runs in a session of its own, so that everything it started can be stopped
together, also what moved to a process group of its own inside it (Airflow 2's scheduler
does that). Finding a session's members means reading all of /proc: the functions here
block (call them from a thread), and on the loop :class:`SessionCensus` lets one scan answer
every command that asks at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict

from bridge.offload import in_thread

Census = dict[int, list[int]]  # session id -> its live members


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat):
    with the pid, it names one process even after the pid is reused."""
    fields = _stat_fields(pid)
    return fields[19].decode() if fields else None


def census() -> Census:
    """Every session's live (not zombie) processes, from one pass over /proc."""
    members: Census = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is not None and fields[0] != b"Z":
            members[int(fields[3])].append(int(entry.name))
    return members


def session_members(session: int) -> list[int]:
    """Live (not zombie) processes of a session."""
    return census().get(session, [])


def signal_session(session: int, signum: int) -> bool:
    """Signal the process group the session's leader leads and every other member of the
    session; False when nothing of it is left."""
    in_group = signal_group(session, signum)
    return signal_members(session_members(session), signum) or in_group


def signal_group(pgid: int, signum: int) -> bool:
    """Signal a whole process group; False when none of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # the group id was reused by someone else's process
        return False
    return True


def signal_members(members: list[int], signum: int) -> bool:
    """Signal each pid; False when none of them is left."""
    signalled = False
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
            signalled = True
    return signalled


class SessionCensus:
    """Answers "who is in session S?" on the loop, off it: callers that ask while a scan of
    /proc runs share the next one (it starts after they asked, so it sees what they did),
    and one scan answers them all, however many commands end at once."""

    def __init__(self) -> None:
        self._waiting: list[asyncio.Future[Census]] = []
        self._scanning = False

    async def members(self, session: int) -> list[int]:
        answer: asyncio.Future[Census] = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        if not self._scanning:
            self._scan()
        return (await answer).get(session, [])

    async def signal(self, session: int, signum: int) -> bool:
        """Signal the session's process group and every other member; False when nothing of
        it is left."""
        in_group = signal_group(session, signum)
        return signal_members(await self.members(session), signum) or in_group

    async def alive(self, session: int) -> bool:
        return signal_group(session, 0) or bool(await self.members(session))

    def _scan(self) -> None:
        self._scanning = True
        batch, self._waiting = self._waiting, []
        scan = asyncio.ensure_future(in_thread(census))
        scan.add_done_callback(lambda done: self._answer(done, batch))

    def _answer(self, done: asyncio.Future[Census], batch: list[asyncio.Future[Census]]) -> None:
        self._scanning = False
        for answer in batch:
            if answer.done():
                continue  # its caller gave up
            if done.cancelled() or done.exception() is not None:
                answer.set_exception(done.exception() or asyncio.CancelledError())
            else:
                answer.set_result(done.result())
        if self._waiting:
            self._scan()  # those who asked meanwhile get a scan of their own
