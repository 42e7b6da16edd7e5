"""The two stream formats: output while the command runs, then one result record.

Each format is a ``web.StreamResponse`` that owns its headers and encoding (as aiohttp-sse's
EventSourceResponse does), so that a streamed call and a job's output (bridge.http.jobs, a
streamed call being a job followed from its start) read the same for both. Everything before
:meth:`prepare` can still fail as a 4xx envelope; after it the status is sent, so failure goes
into the final record.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.http import envelope
from bridge.http.calls import StreamMode


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

    async def send_job(self, job_id: str, location: str) -> None:
        """Name the job first, where the format has room (its id is in X-Job-Id anyway)."""

    async def send_output(self, stream: str, text: str) -> None:
        raise NotImplementedError

    async def send_result(self, result: dict[str, Any]) -> None:
        raise NotImplementedError


class TextStream(OutputStream):
    """The output as the command wrote it, then one line: a fixed prefix and the envelope
    without ``output``, which a script can find and parse."""

    def __init__(self) -> None:
        super().__init__()
        self._at_line_start = True

    async def send_output(self, stream: str, text: str) -> None:
        self._at_line_start = text.endswith("\n")
        await self.write(text.encode())

    async def send_result(self, result: dict[str, Any]) -> None:
        separator = b"" if self._at_line_start else b"\n"
        await self.write(separator + envelope.text_result_line(result))


class NdjsonStream(OutputStream):
    """One JSON object a line: output events, then a result event."""

    content_type = "application/x-ndjson; charset=utf-8"

    async def send_job(self, job_id: str, location: str) -> None:
        event = {"event": "job", "job_id": job_id, "location": location}
        await self.write(envelope.ndjson_line(event))

    async def send_output(self, stream: str, text: str) -> None:
        await self.write(envelope.ndjson_line({"event": "output", "stream": stream, "text": text}))

    async def send_result(self, result: dict[str, Any]) -> None:
        await self.write(envelope.ndjson_line({"event": "result", **result}))


STREAMS: dict[StreamMode, type[OutputStream]] = {"text": TextStream, "ndjson": NdjsonStream}
