"""Answers: a use case's :class:`~bridge.calls.events.Answer` as an HTTP response, in the
format the caller chose, and the one registry of stream formats.

- One envelope: the seed's JSON object, with its own ``http_response_code`` as the status.
- A stream: ``200``, chunked, uncached and unbuffered by proxies; each format is a
  ``web.StreamResponse`` subclass that owns its content type and encoding (as aiohttp-sse's
  EventSourceResponse does). Everything before :meth:`prepare` can still fail as a 4xx
  envelope; after it the status is sent, so failure goes into the final record.
- :data:`FORMATS`: every stream format, by its query word, with the words and the ``Accept``
  type that choose it; the API view, the job views and the OpenAPI document read it. A new
  format is one entry.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bridge.calls import envelope
from bridge.calls.events import Answer, Detached, Event, Finished, JobNamed, Note, Output
from bridge.calls.jobs import location
from bridge.config.parsers import is_false_word
from bridge.errors import RequestError
from bridge.process.command import Outcome

log = logging.getLogger(__name__)

TEXT_RESULT_PREFIX = "airflow-rest-bridge-result: "
FORBIDDEN_OUTPUT = "Token Authentication Failed"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def json_line(value: dict[str, Any]) -> bytes:
    return (dumps(value) + "\n").encode()


class OutputStream(web.StreamResponse):
    """Chunked, uncached and unbuffered by proxies; subclasses say how records look."""

    content_type = "text/plain; charset=utf-8"

    def __init__(self) -> None:
        super().__init__(
            status=200,
            headers={
                "Content-Type": self.content_type,
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            },
        )
        self.enable_chunked_encoding()

    async def send_job(self, job_id: str) -> None:
        """Name the job first, where the format has room (its id is in X-Job-Id anyway)."""

    async def send_output(self, stream: str, text: str) -> None:
        raise NotImplementedError

    async def send_result(self, result: dict[str, Any]) -> None:
        raise NotImplementedError

    async def send(self, event: Event) -> None:
        if isinstance(event, Output):
            await self.send_output(event.stream, event.text)
        elif isinstance(event, Note):
            await self.send_output("stdout", event.text)
        elif isinstance(event, JobNamed):
            await self.send_job(event.job_id)
        else:
            await self.send_result(event.envelope)


class TextStream(OutputStream):
    """The output as the command wrote it, then one line: a fixed prefix and the envelope
    without ``output``, which a script can find and parse. No output line can pass for it:
    one that starts with the prefix is sent with a space in front (the start of a line that
    may still become the prefix waits for its next piece)."""

    def __init__(self) -> None:
        super().__init__()
        self._at_line_start = True
        self._held = ""  # the start of a line that may still become the prefix

    async def send_output(self, stream: str, text: str) -> None:
        if sent := self._escaped(text):
            await self.write(sent.encode())

    def _escaped(self, text: str) -> str:
        text, self._held = self._held + text, ""
        parts: list[str] = []
        at = 0
        while at < len(text):
            if self._at_line_start:
                rest = text[at:]
                if len(rest) < len(TEXT_RESULT_PREFIX) and TEXT_RESULT_PREFIX.startswith(rest):
                    self._held = rest
                    break
                if rest.startswith(TEXT_RESULT_PREFIX):
                    parts.append(" ")
                self._at_line_start = False
            end = text.find("\n", at)
            end = len(text) if end < 0 else end + 1
            parts.append(text[at:end])
            self._at_line_start = text[end - 1] == "\n"
            at = end
        return "".join(parts)

    async def send_result(self, result: dict[str, Any]) -> None:
        held, self._held = self._held, ""
        separator = "" if self._at_line_start and not held else "\n"
        line = held + separator + TEXT_RESULT_PREFIX + dumps(result) + "\n"
        await self.write(line.encode())


class NdjsonStream(OutputStream):
    """One JSON object a line: output events, then a result event."""

    content_type = "application/x-ndjson; charset=utf-8"

    async def send_job(self, job_id: str) -> None:
        event = {"event": "job", "job_id": job_id, "location": location(job_id)}
        await self.write(json_line(event))

    async def send_output(self, stream: str, text: str) -> None:
        await self.write(json_line({"event": "output", "stream": stream, "text": text}))

    async def send_result(self, result: dict[str, Any]) -> None:
        await self.write(json_line({"event": "result", **result}))


@dataclass(frozen=True)
class Format:
    """A stream format: the query words that choose it (``stream=WORD``), the ``Accept``
    media type that does when no word is given, and its response class."""

    name: str
    words: tuple[str, ...]
    accept: str | None
    response: type[OutputStream]

    @property
    def media_type(self) -> str:
        return self.response.content_type.partition(";")[0]


FORMATS: dict[str, Format] = {
    "text": Format("text", ("true", "text"), None, TextStream),
    "ndjson": Format("ndjson", ("ndjson",), "application/x-ndjson", NdjsonStream),
}


JOB_OUTPUT_FORMAT = "text"  # a job's output without stream= or an Accept type


def stream_words(formats: Iterable[Format] | None = None) -> list[str]:
    """Every word ``stream=`` takes, in the registry's order (or of ``formats``)."""
    chosen = FORMATS.values() if formats is None else formats
    return [word for fmt in chosen for word in fmt.words]


def chosen_format(word: str, accept: str, default: str | None) -> Format | None:
    """The format ``stream=word`` (or, without a word, the ``Accept`` header) chooses;
    ``default`` when neither chooses one (None: one envelope, which ``stream=false`` asks
    for too)."""
    word = word.strip().lower()
    if default is None and is_false_word(word):
        word = ""
    for fmt in FORMATS.values():
        if word in fmt.words or (not word and fmt.accept and fmt.accept in accept):
            return fmt
    if word:
        *others, last = stream_words()
        also = " (or false)" if default is None else ""
        raise RequestError(f"stream must be {', '.join(others)} or {last}{also}")
    return FORMATS[default] if default is not None else None


def respond_envelope(body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=body["http_response_code"], headers=headers, dumps=dumps)


def error(
    body: dict[str, Any], http_code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A 4xx/5xx envelope response with ``output`` saying what was wrong."""
    return respond_envelope(envelope.finish(body, http_code=http_code, output=message), headers)


def forbidden() -> web.Response:
    """Exactly the seed's 403 body."""
    body = {
        "call_time": envelope.http_date(envelope.now()),
        "http_response_code": 403,
        "output": FORBIDDEN_OUTPUT,
        "response_time": envelope.http_date(envelope.now()),
        "status": "ERROR",
    }
    return web.json_response(body, status=403, dumps=dumps)


def server_timing(outcome: Outcome) -> dict[str, str]:
    """How long the command itself took (inside the warm child when there was one), so that
    a client can tell the bridge's own overhead from Airflow's work."""
    seconds = outcome.command_seconds if outcome.command_seconds is not None else outcome.duration
    how = "warm" if outcome.warm else "cold"
    return {"Server-Timing": f'cli;dur={seconds * 1000:.3f};desc="{how}"'}


async def respond(request: web.Request, answer: Answer, fmt: Format | None) -> web.StreamResponse:
    """The answer as the response: an envelope, a 202 for a job, or a stream in ``fmt``."""
    if isinstance(answer, Finished):
        headers = dict(answer.headers)
        if answer.outcome is not None:
            headers.update(server_timing(answer.outcome))
        return respond_envelope(answer.envelope, headers)
    if isinstance(answer, Detached):
        return respond_envelope(answer.envelope, {"Location": location(answer.job_id)})
    assert fmt is not None  # a use case streams only when a format was chosen
    response = fmt.response()
    if answer.job_id is not None:
        response.headers["X-Job-Id"] = answer.job_id
    async with contextlib.aclosing(answer.events) as events:
        await response.prepare(request)
        try:
            async for event in events:
                await response.send(event)
            await response.write_eof()
        except ConnectionResetError:
            if answer.job_id is None:
                raise
            log.info("a follower of job %s left", answer.job_id)  # the job runs on
    return response
