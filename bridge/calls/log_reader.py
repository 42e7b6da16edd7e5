"""A task try's log read by Airflow's own log reader, for a log that is not in the local
logs folder: the log server of the worker that ran the try, remote logging, or a local file
under a name the bridge did not expect.

The reader runs in a child process in Airflow's interpreter (bridge/airflow_side/
log_reader.py), started through the command path like every Airflow process: audited, in
the ledger, stopped with its session when its call ends, bounded by ``command_timeout``.
Request values reach it only after ``--``. Reading once takes a slot for as long as the
child runs; following holds none (as a follow of a file holds none), only the follow's
place, and the child reads again every poll with the reader's own continuation.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.calls import envelope
from bridge.calls.call import Call
from bridge.calls.events import Answer, Event, Finished, Output, Result, Streamed
from bridge.calls.stopping import Stopped, unless_stopped
from bridge.errors import RequestError
from bridge.process.command import Chunk
from bridge.process.path import CommandSpec
from bridge.task_logs.files import TaskTry, readable

LOG_READER = Path(__file__).resolve().parent.parent / "airflow_side" / "log_reader.py"
STDERR_KEPT = 2000  # characters of the child's stderr kept to say why it failed


@dataclass
class Read:
    """What the child said about the try (its ``about`` records, merged) and how it ended."""

    about: dict[str, Any] = field(default_factory=dict)
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=64))
    exit_code: int | None = None
    timed_out: bool = False
    # A DAG-confined caller is never shown a child's stderr (Airflow may name other DAGs).
    withhold_stderr: bool = False

    @property
    def found(self) -> bool:
        return bool(self.about.get("found"))

    @property
    def failure(self) -> str | None:
        """Why the reader said nothing useful, when it failed (None: it ended as it should)."""
        if self.about.get("done"):
            return None
        if self.timed_out:
            return "Airflow's log reader did not finish within command_timeout"
        said = "".join(self.stderr).strip()[-STDERR_KEPT:]
        if self.withhold_stderr and said:
            said = "its stderr is not shown to a token confined to some DAGs"
        return (
            f"Airflow's log reader failed (exit code {self.exit_code}){': ' if said else ''}{said}"
        )

    def notes(self) -> list[str]:
        """What the reader said besides the log (a log server it could not reach, ...)."""
        notes = [str(note) for note in self.about.get("notes") or []]
        if missing := self.about.get("missing"):
            notes.insert(0, str(missing))
        return notes

    def describe(self) -> dict[str, Any]:
        """Where the log came from, as the reader said it, for the result's ``task_log``."""
        return {"source": self.about.get("source"), "sources": self.about.get("sources") or []}


def argv(call: Call, task: TaskTry, try_number: int | None, follow: bool, poll: float) -> list[str]:
    python = call.airflow.python
    if python is None:
        raise RequestError(
            "the log is not in the logs folder, and Airflow's log reader cannot be asked: the "
            "Python interpreter of the configured airflow is unknown (airflow_python)",
            status=500,
        )
    mode = "follow" if follow else "read"
    wanted = str(try_number) if try_number is not None else "latest"
    ids = [task.dag_id, task.task_id, task.run_id, str(task.map_index), wanted]
    return [python, str(LOG_READER), mode, f"{poll:g}", "--", *ids]


async def read(
    call: Call,
    task: TaskTry,
    try_number: int | None,
    said: Read,
    *,
    follow: bool,
    poll: float,
    seconds: float | None = None,
) -> AsyncGenerator[str, None]:
    """The log's text as the child reads it (shown as text unless ``raw``; "" when it only
    said something about the try, which ``said`` gets as it says it), for at most
    ``seconds`` (default: command_timeout). Stopped (:class:`Stopped`) with its call."""
    spec = CommandSpec(
        argv(call, task, try_number, follow, poll),
        call.api.name,
        "follow the log" if follow else "read the log",
        call.peer,
        timeout=max(seconds, 1.0) if seconds is not None else None,
        warm=False,
    )
    raw = bool(call.values.get("raw"))
    pending = b""
    async with contextlib.AsyncExitStack() as held:
        if not follow:
            await held.enter_async_context(call.commands.slot(call.owner))
        async with call.commands.run(spec) as command:
            chunks = aiter(command)
            while (chunk := await unless_stopped(call, _next(chunks))) is not None:
                if chunk.stream == "stderr":
                    said.stderr.append(chunk.data.decode("utf-8", "replace"))
                    continue
                lines = (pending + chunk.data).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    yield _record(line, said, raw)
        outcome = command.outcome
        said.exit_code = outcome.exit_code if outcome else None
        said.timed_out = bool(outcome and outcome.timed_out)


async def followed(
    call: Call, task: TaskTry, try_number: int | None, said: Read, poll: float, seconds: float
) -> AsyncGenerator[str, None]:
    """The try followed until the reader says its log ended, within ``seconds``; ``said``
    gets what the reader said. Stopped (:class:`Stopped`) with its call."""
    texts = read(call, task, try_number, said, follow=True, poll=poll, seconds=seconds)
    try:
        async with contextlib.aclosing(texts):
            async for text in texts:
                if text:
                    yield text
    except BaseException:  # stopped or left: the call says why, not the reader's end
        said.about["done"] = True
        raise


async def _next(chunks: AsyncIterator[Chunk]) -> Chunk | None:
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None


def _record(line: bytes, read: Read, raw: bool) -> str:
    """One JSON line of the child's: the log text it carries (else "", its facts kept)."""
    try:
        record = json.loads(line)
    except ValueError:
        return ""
    if not isinstance(record, dict):
        return ""
    if isinstance(about := record.get("about"), dict):
        read.about.update(about)
    text = record.get("log")
    if not isinstance(text, str) or not text:
        return ""
    if raw:
        return text
    return "".join(readable(part) + "\n" for part in text.splitlines())


async def whole(call: Call, task: TaskTry, try_number: int | None) -> tuple[Read, str, int]:
    """The try's log read once: what the reader said, the log's last ``max_output_size``
    bytes (from a whole line) and the size of all of it."""
    limit = call.settings.max_output_size
    said = Read(withhold_stderr=call.caller.confined)
    kept: deque[bytes] = deque()
    size = kept_size = 0
    texts = read(call, task, try_number, said, follow=False, poll=0)
    try:
        async with contextlib.aclosing(texts):
            async for text in texts:
                if not text:
                    continue
                data = text.encode("utf-8")
                size += len(data)
                kept.append(data)
                kept_size += len(data)
                while kept_size - len(kept[0]) >= limit:
                    kept_size -= len(kept.popleft())
    except Stopped as stop:  # before anything was answered: an envelope says why
        raise RequestError(f"{stop.why}: the log was not read", stop.http_code) from None
    data = b"".join(kept)
    if size > limit:
        data = data[-limit:].partition(b"\n")[2]
    return said, data.decode("utf-8", "replace"), size


async def answer(
    call: Call,
    task: TaskTry,
    try_number: int | None,
    missing: Callable[[Read | None], str],
    described: dict[str, Any],
) -> Answer:
    """The try's log read once, answered as asked (one envelope or a stream); a 404 saying
    ``missing`` (and what the reader said) when it finds none either."""
    said, text, size = await whole(call, task, try_number)
    if (failure := said.failure) is not None:
        raise RequestError(f"{missing(None)}: {failure}", status=500)
    if not said.found:
        raise RequestError(missing(said), status=404)
    warnings = list(call.notes)
    if size > call.settings.max_output_size:
        shown = "shown" if call.stream is None else "sent"
        warnings.append(f"the log is {size} bytes: only its end is {shown} (max_output_size)")
    number = said.about.get("try_number")
    extra = {"task_log": {**described, "try_number": number, **said.describe()}}
    if call.stream is None:
        return Finished(
            envelope.finish(call.base, http_code=200, output=text, warnings=warnings, extra=extra)
        )

    async def events() -> AsyncGenerator[Event, None]:
        if text:
            yield Output("stdout", text)
        yield Result(envelope.finish(call.base, http_code=200, warnings=warnings, extra=extra))

    return Streamed(events())
