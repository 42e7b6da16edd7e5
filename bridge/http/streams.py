"""The streamed answer: output while the command runs, then one result record.

Each stream format is a ``web.StreamResponse`` that owns its headers and encoding (as
aiohttp-sse's EventSourceResponse does), so the answer below reads the same for both.
Everything before :meth:`prepare` can still fail as a 4xx envelope; after it the status is
sent, so failure goes into the final record.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bridge.http import envelope
from bridge.http.calls import (
    Call,
    StreamMode,
    http_code_for,
    outcome_warnings,
    output_texts,
    parsed_extras,
)
from bridge.process.path import CommandPath

log = logging.getLogger(__name__)


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

    async def send_output(self, stream: str, text: str) -> None:
        await self.write(envelope.ndjson_line({"event": "output", "stream": stream, "text": text}))

    async def send_result(self, result: dict[str, Any]) -> None:
        await self.write(envelope.ndjson_line({"event": "result", **result}))


STREAMS: dict[StreamMode, type[OutputStream]] = {"text": TextStream, "ndjson": NdjsonStream}


async def answer(call: Call, commands: CommandPath, mode: StreamMode) -> web.StreamResponse:
    """Send output while the command runs, then one result record."""
    settings = call.asked.settings
    response = STREAMS[mode]()
    texts = output_texts(call.api, settings)
    stdout: list[str] = []  # kept for -o json, up to the cap
    stdout_size = 0
    await response.prepare(call.asked.request)
    async with commands.run(call.spec) as command:
        async for chunk in command:
            piece = texts[chunk.stream].feed(chunk.data)
            if not piece:
                continue
            if chunk.stream == "stdout" and call.plan.json_output:
                if stdout_size < settings.max_output_size:
                    stdout.append(piece)
                    stdout_size += len(piece)
            await response.send_output(chunk.stream, piece)
        for name, text in texts.items():
            if rest := text.finish():
                await response.send_output(name, rest)
    outcome = command.outcome
    assert outcome is not None  # the output ended: the command has an outcome
    warnings = call.warnings + outcome_warnings(outcome, settings, commands.stopping)
    extra = await parsed_extras(call, "".join(stdout), warnings) if outcome.exit_code == 0 else {}
    result = envelope.finish(
        call.asked.base,
        http_code=http_code_for(outcome),
        airflow_cmd=commands.display(call.spec.argv),
        warnings=warnings,
        exit_code=outcome.exit_code,
        extra=extra,
    )
    try:
        await response.send_result(result)
        await response.write_eof()
    except ConnectionResetError:
        log.info("client left before the result record of %s", call.api.name)
    return response
