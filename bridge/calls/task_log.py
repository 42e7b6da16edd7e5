"""``api=task_log``: a task try's log, whole (one envelope, or streamed once), or followed
live (``follow=true`` with a stream) until the try ends.

The local logs folder is read directly (the fast path); a log not there is read by Airflow's
own reader (bridge.calls.log_reader: the worker's log server, remote logging), also by a
follow once the try has begun with no local file.

The run is found with ``dags list-runs`` and the try's state with ``tasks state``, through the
command path like every Airflow process, each with a slot of its own for as long as it runs:
a follower waiting on a task holds none, but one of the follows' places (bridge.calls.follows)
for its whole life. Everything is checked, and the file found, before the stream starts; a
log that is not there yet is waited for only when following.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.calls import envelope, log_reader
from bridge.calls.call import Call
from bridge.calls.events import Answer, Event, Finished, Output, Result, Streamed
from bridge.calls.follows import Holding
from bridge.calls.log_reader import Read
from bridge.calls.runs import cli_capture, list_runs, paused_note
from bridge.calls.stopping import Stopped, pause, unless_stopped
from bridge.catalogue.installed import availability
from bridge.catalogue.installed_cli import TaskLogSettings
from bridge.errors import RequestError
from bridge.offload import in_thread
from bridge.task_logs.files import ENDED_STATES, LogReader, TaskTry, latest_try, log_path
from bridge.text.redact import mask_uri

FILE_POLL_SECONDS = 0.5  # how late a written line may reach a follower
STATE_POLL_SECONDS = 2.0  # how often Airflow is asked whether the try has ended
# States of a try that has not begun (tasks state prints "None" for one not yet scheduled):
# a follow that begins on one says so when its DAG is paused, as it then never begins.
NOT_STARTED = frozenset({"none", "scheduled", "queued"})
GOING = frozenset({"running", "deferred"})  # a try that has begun and not ended


async def task_log(call: Call) -> Answer:
    settings = _log_settings(call)
    values = call.values
    follow = bool(values.get("follow"))
    if follow and call.stream is None:
        raise RequestError("follow=true needs a stream (stream=true or stream=ndjson)")
    try_number = _number(call, "try_number")
    if try_number == 0:
        raise RequestError("try_number starts at 1")
    # A follow takes its place for its whole life, before anything runs (or a 429).
    async with contextlib.AsyncExitStack() as following:
        if follow:
            place = call.daemon.follows.place(call.owner)
            call.follow = await following.enter_async_context(place)
        task = await _task_try(call)
        if follow:  # a task the run does not have would otherwise be waited for
            await _check_task(call, task)
        found = await _find(settings, task, try_number)
        if found is None and not follow:  # not here: Airflow's own reader looks further
            missing = functools.partial(_missing, settings, task, try_number)
            described = _describe(settings, task, try_number, None)
            return await log_reader.answer(call, task, try_number, missing, described)
        if call.stream is None:
            assert found is not None
            return await _whole(call, settings, task, *found)
        events = _streamed(call, settings, task, found, follow)
        return Streamed(Holding(events, following.pop_all()))


def _number(call: Call, name: str) -> int | None:
    """A whole-number argument (the catalogue checked its digits and keeps it as text)."""
    value = call.values.get(name)
    return int(value) if value is not None else None


def _log_settings(call: Call) -> TaskLogSettings:
    cli = call.airflow.cli
    if cli is None or cli.task_logs is None:  # read again meanwhile, and now unknown
        raise RequestError(str(availability(call.api, call.airflow, frozenset())))
    return cli.task_logs


async def _task_try(call: Call) -> TaskTry:
    """The run named by execution_date (a logical date or a run_id) and its logical date."""
    values = call.values
    dag_id, wanted = values["dag_id"], str(values["execution_date"])
    runs = await list_runs(call, dag_id, "find the run")
    for run in runs:
        if not isinstance(run, dict):
            continue
        date = str(run.get("logical_date") or run.get("execution_date") or "")
        if run.get("run_id") == wanted or (date and _same_moment(date, wanted)):
            map_index = _number(call, "map_index")
            return TaskTry(
                dag_id,
                values["task_id"],
                str(run["run_id"]),
                date,
                map_index if map_index is not None else -1,
            )
    raise RequestError(f"DAG '{dag_id}' has no run '{wanted}' (a logical date or run_id)", 404)


def _same_moment(listed: str, wanted: str) -> bool:
    def moment(text: str) -> datetime | None:
        try:
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1).replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    first, second = moment(listed), moment(wanted)
    return first is not None and first == second


async def _find(
    settings: TaskLogSettings, task: TaskTry, try_number: int | None
) -> tuple[int, Path] | None:
    if try_number is None:
        return await in_thread(latest_try, settings, task)
    path = await in_thread(log_path, settings, task, try_number)
    return (try_number, path) if await in_thread(path.is_file) else None


def _missing(
    settings: TaskLogSettings, task: TaskTry, try_number: int | None, said: Read | None = None
) -> str:
    which = f"try {try_number}" if try_number else "any try"
    where = f"of task '{task.task_id}' in run '{task.run_id}' of DAG '{task.dag_id}'"
    remote = (
        f", nor at {settings.remote_folder or 'the remote log store'}" if settings.remote else ""
    )
    notes = "; ".join(said.notes()) if said is not None else ""
    return (
        f"no log of {which} {where} in the logs folder, and Airflow's log reader found none "
        f"(on the worker's log server{remote}){f': {notes}' if notes else ''} "
        "(yet: follow=true waits for it)"
    )


def _describe(
    settings: TaskLogSettings, task: TaskTry, try_number: int | None, path: Path | None
) -> dict[str, Any]:
    """Which file was read, relative to the logs folder (resolved: the disk, so in a thread);
    ``source`` says where the log came from (here: ``file``)."""
    return {
        "dag_id": task.dag_id,
        "task_id": task.task_id,
        "run_id": task.run_id,
        "map_index": task.map_index,
        "try_number": try_number,
        "log_file": str(path.relative_to(Path(settings.base_folder).resolve())) if path else None,
        "source": "file" if path else None,
        "sources": [str(path)] if path else [],
    }


async def _whole(
    call: Call, settings: TaskLogSettings, task: TaskTry, try_number: int, path: Path
) -> Finished:
    """One envelope: the log as it is now; its last max_output_size bytes when longer."""
    limit = call.settings.max_output_size
    reader = LogReader(path, raw=bool(call.values.get("raw")))
    size = await in_thread(reader.size)
    warnings = list(call.notes)
    reader.offset = max(0, size - limit)
    text = await in_thread(reader.read, True, limit)
    if size > limit:
        text = text.partition("\n")[2]  # from the first whole line
        warnings.append(f"the log is {size} bytes: only its end is shown (max_output_size)")
    extra = {"task_log": await in_thread(_describe, settings, task, try_number, path)}
    return Finished(
        envelope.finish(call.base, http_code=200, output=text, warnings=warnings, extra=extra)
    )


@dataclass
class _Following:
    """A try's log being followed: the file once found, the state last seen."""

    wanted: int | None  # the try asked for (None: the latest)
    raw: bool
    reader: LogReader | None = None
    try_number: int | None = None
    state: str | None = None
    timed_out: bool = False  # command_timeout passed before the try ended
    elsewhere: Read | None = None  # what Airflow's reader said, once it took over

    async def more(self, settings: TaskLogSettings, task: TaskTry, whole: bool = False) -> str:
        """What was written since the last look (the file is looked for until found)."""
        if self.reader is None:
            found = await _find(settings, task, self.wanted)
            if found is None:
                return ""
            self.try_number, path = found
            self.reader = LogReader(path, raw=self.raw)
        return await in_thread(self.reader.read, whole)


async def _streamed(
    call: Call,
    settings: TaskLogSettings,
    task: TaskTry,
    found: tuple[int, Path] | None,
    follow: bool,
) -> AsyncGenerator[Event, None]:
    """The log so far, then (following) what is written until the try ends, the follow
    times out (command_timeout) or the call is stopped (the daemon stopping, its token
    revoked)."""
    log = _Following(_number(call, "try_number"), bool(call.values.get("raw")))
    if found is not None:
        log.try_number, first = found
        log.reader = LogReader(first, raw=log.raw)
    warnings = list(call.notes)
    http_code = 200
    if follow:
        try:
            async for text in _follow(call, settings, task, log, warnings):
                yield Output("stdout", text)
        except Stopped as stop:
            warnings.append(f"{stop.why}: following the log stopped; the task goes on")
            http_code = stop.http_code
        if log.timed_out:
            http_code = 504  # as trigger_dag&wait=true answers a wait that timed out
    if log.elsewhere is None and (text := await log.more(settings, task, whole=True)):
        yield Output("stdout", text)
    said = log.elsewhere
    if said is not None and said.failure is not None:
        warnings.append(said.failure)
        http_code = 500 if http_code == 200 else http_code
    elif log.reader is None and not (said is not None and said.found):
        warnings.append(_missing(settings, task, log.wanted, said))
    read = log.reader.path if log.reader else None
    described = await in_thread(_describe, settings, task, log.try_number, read)
    if said is not None:
        described.update(said.describe())
    extra: dict[str, Any] = {"task_log": described}
    if log.state is not None:
        extra["task_state"] = log.state
    yield Result(envelope.finish(call.base, http_code=http_code, warnings=warnings, extra=extra))


async def _follow(
    call: Call, settings: TaskLogSettings, task: TaskTry, log: _Following, warnings: list[str]
) -> AsyncGenerator[str, None]:
    """What is written until the try ends or command_timeout passes; Stopped when the call
    is stopped. Airflow is asked for the try's state every STATE_POLL_SECONDS, the file
    looked at every FILE_POLL_SECONDS in between."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + call.settings.command_timeout
    first = True
    while True:
        if text := await log.more(settings, task):
            yield text
        log.state = await _state(call, task)
        if log.reader is None and (log.state in ENDED_STATES or log.state in GOING):
            # The try has begun: a log not here (looked for once more) is elsewhere.
            if text := await log.more(settings, task):
                yield text
            if log.reader is None:
                async for text in _follow_elsewhere(
                    call, task, log, warnings, give_up - loop.time()
                ):
                    yield text
                return
        if log.state in ENDED_STATES:
            return
        if first and log.state in NOT_STARTED:
            note = await paused_note(call, task.dag_id, f"task {task.task_id} does not start")
            if note:
                warnings.append(note)
                yield f"[airflow-rest-bridge] {note}\n"
        first = False
        if loop.time() >= give_up:
            warnings.append(
                f"the task was still {log.state} after command_timeout "
                f"({call.settings.command_timeout:g} s); following stopped, the task goes on"
            )
            log.timed_out = True
            return
        next_state = loop.time() + STATE_POLL_SECONDS
        while loop.time() < next_state:
            await pause(call, FILE_POLL_SECONDS)  # a poll interval: files send no events
            if text := await log.more(settings, task):
                yield text


async def _follow_elsewhere(
    call: Call, task: TaskTry, log: _Following, warnings: list[str], seconds: float
) -> AsyncGenerator[str, None]:
    """The try followed by Airflow's own reader, within what is left of command_timeout,
    until it says the log ended; Stopped when the call is stopped."""
    said = log.elsewhere = Read(withhold_stderr=call.caller.confined)
    texts = log_reader.followed(call, task, log.wanted, said, STATE_POLL_SECONDS, seconds)
    try:
        async with contextlib.aclosing(texts):
            async for text in texts:
                yield text
    except RequestError as refused:  # no slot for it, the daemon stopping, no interpreter
        raise Stopped(str(refused), refused.status) from None
    log.try_number = said.about.get("try_number") or log.try_number
    log.state = str(said.about.get("state") or log.state)
    if said.timed_out:  # as a follow of a file times out
        said.about["done"] = True
        log.timed_out = True
        warnings.append(
            f"the task was still {log.state} after command_timeout "
            f"({call.settings.command_timeout:g} s); following stopped, the task goes on"
        )


async def _check_task(call: Call, task: TaskTry) -> None:
    """A 404 when ``tasks state`` cannot find the task instance (its words say why)."""
    found = await cli_capture(call, _state_argv(task), "find the task")
    if found.exit_code != 0:
        said = [line for line in found.stderr.splitlines() if line.strip()][-1:]
        if call.caller.confined:  # Airflow's words there may name other DAGs
            said = []
        raise RequestError(
            f"task '{task.task_id}' of run '{task.run_id}' of DAG '{task.dag_id}' was not "
            f"found: {mask_uri(said[0].strip()) if said else 'tasks state failed'}",
            404,
        )


def _state_argv(task: TaskTry) -> list[str]:
    argv = ["tasks", "state"]
    if task.map_index >= 0:
        argv.append(f"--map-index={task.map_index}")
    return [*argv, "--", task.dag_id, task.task_id, task.run_id]


async def _state(call: Call, task: TaskTry) -> str | None:
    """The task instance's state as ``tasks state`` prints it; None when it could not be
    asked now (every slot busy, or the command failed): asked again at the next poll."""
    try:
        asked = cli_capture(call, _state_argv(task), "follow the task")
        found = await unless_stopped(call, asked)
    except RequestError:
        return None
    lines = [line.strip() for line in found.stdout.splitlines() if line.strip()]
    return lines[-1].lower() if found.exit_code == 0 and lines else None
