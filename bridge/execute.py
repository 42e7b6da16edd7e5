"""Running a validated call and answering with the seed's envelope or a live stream.

Everything here happens after validation: a :class:`Call` is already a safe argv. Buffered
calls collect output (capped) into the envelope; streamed calls send output as it comes and
end with one result record. Either way the command's process group is stopped when the
request ends early, unless the operator set kill_on_disconnect = false.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from bridge import envelope
from bridge.catalogue import Api, Plan
from bridge.config import Settings
from bridge.noise import StreamText, parse_json_output
from bridge.redact import mask_argv, mask_uri
from bridge.runner import Command, Outcome
from bridge.state import Runtime
from bridge.warm import WarmHelper

log = logging.getLogger(__name__)
audit = logging.getLogger("bridge.audit")

StreamMode = Literal["text", "ndjson"]


@dataclass
class Call:
    """One validated command, ready to run."""

    api: Api
    argv: list[str]  # the full argv, the airflow executable first
    env: dict[str, str]
    peer: str
    warnings: list[str] = field(default_factory=list)
    json_output: bool = False
    data_wanted: bool = False  # the caller asked output=json: return the parsed data
    export_path: Path | None = None  # an export's file: its JSON becomes ``data``

    def display(self, token: str | None) -> str:
        """The command as run, secrets masked: for ``airflow_cmd`` and the logs."""
        return shlex.join(mask_argv(self.argv, token))


def _stream_texts(call: Call, settings: Settings) -> dict[str, StreamText]:
    mask = mask_uri if call.api.mask_output else None
    return {
        name: StreamText(settings.filter_loading_messages_in_cli_response, mask=mask)
        for name in ("stdout", "stderr")
    }


@contextlib.contextmanager
def exchange_file(plan: Plan) -> Iterator[Path | None]:
    """The temp file an import reads or an export writes, in a private folder that is
    removed afterwards; None when the plan needs no file."""
    if not plan.needs_file:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="airflow-rest-bridge-"))
    try:
        path = folder / ("export.json" if plan.export_file else "import.json")
        if plan.import_content is not None:
            path.write_text(plan.import_content, encoding="utf-8")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.asynccontextmanager
async def _registered(runtime: Runtime, command: Command) -> AsyncIterator[None]:
    """Keep the running command where a graceful stop can find it."""
    runtime.commands.add(command)
    try:
        yield
    finally:
        runtime.commands.discard(command)


def _command_for(call: Call, settings: Settings, runtime: Runtime) -> Command:
    return Command(
        call.argv,
        env=call.env,
        timeout=settings.command_timeout,
        grace=settings.kill_grace_period,
        launcher=_launcher_for(call, runtime),
        witness=runtime.ledger,
    )


def _launcher_for(call: Call, runtime: Runtime) -> WarmHelper | None:
    """Services (scheduler, webserver, workers...) start from a fresh interpreter: they run
    for hours, so the import time does not matter, and daemonizing (python-daemon closes every
    file descriptor) is only known to be safe from a process that did nothing else first."""
    return None if call.api.long_running else runtime.warm


def http_code_for(outcome: Outcome) -> int:
    if outcome.timed_out:
        return 504
    return 200 if outcome.exit_code == 0 else 500


def _outcome_warnings(outcome: Outcome, settings: Settings, runtime: Runtime) -> list[str]:
    if runtime.stopping:
        return ["the daemon is stopping (SIGTERM): the command was stopped"]
    if outcome.timed_out:
        return [f"the command timed out after {settings.command_timeout:g} s and was stopped"]
    if outcome.exit_code != 0:
        return [f"the command exited with code {outcome.exit_code}"]
    return []


def _audit(call: Call, settings: Settings, outcome: Outcome | None, how: str) -> None:
    audit.info(
        "peer=%s api=%s cmd=%s exit=%s duration=%.3fs %s %s",
        call.peer,
        call.api.name,
        call.display(settings.rest_api_plugin_expected_http_token),
        outcome.exit_code if outcome else None,
        outcome.duration if outcome else 0.0,
        "warm" if outcome and outcome.warm else "cold",
        how,
    )


def server_timing(outcome: Outcome) -> dict[str, str]:
    """How long the command itself took (inside the warm child when there was one), so that
    a client can tell the bridge's own overhead from Airflow's work."""
    seconds = outcome.command_seconds if outcome.command_seconds is not None else outcome.duration
    how = "warm" if outcome.warm else "cold"
    return {"Server-Timing": f'cli;dur={seconds * 1000:.3f};desc="{how}"'}


async def buffered(
    call: Call, settings: Settings, runtime: Runtime, base: dict[str, Any]
) -> web.Response:
    """Run to the end and answer with the full envelope."""
    texts = _stream_texts(call, settings)
    collected: dict[str, list[str]] = {"stdout": [], "stderr": []}
    sizes = {"stdout": 0, "stderr": 0}
    truncated = False
    command = _command_for(call, settings, runtime)
    async with command, _registered(runtime, command):
        async for chunk in command:
            piece = texts[chunk.stream].feed(chunk.data)
            if sizes[chunk.stream] + len(piece) > settings.max_output_size:
                truncated = True
                continue  # keep draining so the command is not blocked on a full pipe
            sizes[chunk.stream] += len(piece)
            collected[chunk.stream].append(piece)
    outcome = command.outcome
    assert outcome is not None
    for name, text in texts.items():
        collected[name].append(text.finish())
    output = {name: "".join(parts) for name, parts in collected.items()}
    warnings = list(call.warnings) + _outcome_warnings(outcome, settings, runtime)
    if truncated:
        warnings.append(
            f"output was cut at max_output_size ({settings.max_output_size} characters a stream)"
        )
    extra = _parsed_extras(call, output["stdout"], warnings) if outcome.exit_code == 0 else {}
    _audit(call, settings, outcome, "buffered")
    return envelope.respond(
        envelope.finish(
            base,
            http_code=http_code_for(outcome),
            output=output,
            airflow_cmd=call.display(settings.rest_api_plugin_expected_http_token),
            warnings=warnings,
            exit_code=outcome.exit_code,
            extra=extra,
        ),
        headers=server_timing(outcome),
    )


def _parsed_extras(call: Call, stdout: str, warnings: list[str]) -> dict[str, Any]:
    if call.export_path is not None:
        try:
            return {"data": json.loads(call.export_path.read_text(encoding="utf-8"))}
        except (OSError, ValueError) as exc:
            warnings.append(f"the exported file could not be read as JSON: {exc}")
            return {}
    if not call.json_output:
        return {}
    data = parse_json_output(stdout)
    if data is None:
        warnings.append("the CLI's JSON output could not be parsed")
        return {}
    extra: dict[str, Any] = {}
    if call.data_wanted:
        extra["data"] = data
    if call.api.summarize is not None:
        extra.update(call.api.summarize(data))
    return extra


async def streamed(
    request: web.Request,
    call: Call,
    settings: Settings,
    runtime: Runtime,
    base: dict[str, Any],
    mode: StreamMode,
) -> web.StreamResponse:
    """Send output while the command runs, then one result record."""
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/plain; charset=utf-8"
            if mode == "text"
            else "application/x-ndjson; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        },
    )
    response.enable_chunked_encoding()
    encode = _text_event if mode == "text" else _ndjson_event
    texts = _stream_texts(call, settings)
    ended_with_newline = True
    stdout_parts: list[str] = []
    stdout_size = 0
    command = _command_for(call, settings, runtime)
    await response.prepare(request)
    async with command, _registered(runtime, command):
        try:
            async for chunk in command:
                piece = texts[chunk.stream].feed(chunk.data)
                if not piece:
                    continue
                if (
                    chunk.stream == "stdout"
                    and call.json_output
                    and stdout_size < settings.max_output_size
                ):
                    stdout_parts.append(piece)
                    stdout_size += len(piece)
                ended_with_newline = piece.endswith("\n")
                await response.write(encode(chunk.stream, piece))
            for name, text in texts.items():
                if rest := text.finish():
                    ended_with_newline = rest.endswith("\n")
                    await response.write(encode(name, rest))
        except (ConnectionResetError, asyncio.CancelledError):
            _client_gone(command, settings, runtime, call)
            raise
    outcome = command.outcome
    assert outcome is not None
    warnings = list(call.warnings) + _outcome_warnings(outcome, settings, runtime)
    extra = _parsed_extras(call, "".join(stdout_parts), warnings) if outcome.exit_code == 0 else {}
    result = envelope.finish(
        base,
        http_code=http_code_for(outcome),
        airflow_cmd=call.display(settings.rest_api_plugin_expected_http_token),
        warnings=warnings,
        exit_code=outcome.exit_code,
        extra=extra,
    )
    _audit(call, settings, outcome, f"stream={mode}")
    try:
        if mode == "text":
            await response.write(
                (b"" if ended_with_newline else b"\n") + envelope.text_result_line(result)
            )
        else:
            await response.write(envelope.ndjson_line({"event": "result", **result}))
        await response.write_eof()
    except ConnectionResetError:
        log.info("client left before the result record of %s", call.api.name)
    return response


def _client_gone(command: Command, settings: Settings, runtime: Runtime, call: Call) -> None:
    if settings.kill_on_disconnect:
        log.info("client left; stopping %s (pid %s)", call.api.name, command.pid)
        _audit(call, settings, None, "client left: process group stopped")
    else:
        log.info("client left; %s (pid %s) runs on", call.api.name, command.pid)
        runtime.keep(command.detach())


def _text_event(stream: str, text: str) -> bytes:
    return text.encode()


def _ndjson_event(stream: str, text: str) -> bytes:
    return envelope.ndjson_line({"event": "output", "stream": stream, "text": text})


EventEncoder = Callable[[str, str], bytes]
