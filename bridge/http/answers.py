"""Answers: a use case's :class:`~bridge.calls.events.Answer` as an HTTP response, in the
format the caller chose (:data:`bridge.calls.formats.FORMATS`).

- One envelope: the seed's JSON object, with its own ``http_response_code`` as the status.
- A stream: ``200``, chunked, uncached and unbuffered by proxies, in the format's content
  type, each event written as the format's encoder makes it. Everything before
  :meth:`~aiohttp.web.StreamResponse.prepare` can still fail as a 4xx envelope; after it the
  status is sent, so failure goes into the final record.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiohttp import web

from bridge.calls import envelope
from bridge.calls.events import Answer, Detached, Finished
from bridge.calls.formats import Format, dumps
from bridge.calls.jobs import location
from bridge.process.command import Outcome

log = logging.getLogger(__name__)


def stream_response(fmt: Format) -> web.StreamResponse:
    """A chunked response in ``fmt``'s content type that no cache or proxy holds back."""
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": fmt.content_type,
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        },
    )
    response.enable_chunked_encoding()
    return response


def respond_envelope(body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=body["http_response_code"], headers=headers, dumps=dumps)


def error(
    body: dict[str, Any], http_code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A 4xx/5xx envelope response with ``output`` saying what was wrong."""
    return respond_envelope(envelope.finish(body, http_code=http_code, output=message), headers)


def forbidden() -> web.Response:
    """Exactly the seed's 403 body."""
    return web.json_response(envelope.forbidden(), status=403, dumps=dumps)


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
    response = stream_response(fmt)
    if answer.job_id is not None:
        response.headers["X-Job-Id"] = answer.job_id
    encoder = fmt.encoder()
    async with contextlib.aclosing(answer.events) as events:
        await response.prepare(request)
        try:
            async for event in events:
                if record := encoder.encode(event):
                    await response.write(record)
            await response.write_eof()
        except ConnectionResetError:
            if answer.job_id is None:
                raise
            log.info("a follower of job %s left", answer.job_id)  # the job runs on
    return response
