"""A validated call on its way to an answer, and what buffered and streamed answers share:
the command's spec, how its output is filtered, what its outcome means for the envelope."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from bridge.catalogue.model import Api, Context, Plan, Values
from bridge.config.settings import Settings
from bridge.deploy.staging import StagedUpload
from bridge.http.auth import caller_of
from bridge.offload import in_thread
from bridge.process.command import Outcome
from bridge.process.path import CommandSpec
from bridge.text.noise import StreamText, parse_json_output
from bridge.text.redact import mask_uri

log = logging.getLogger(__name__)

StreamMode = Literal["text", "ndjson"]


@dataclass
class Asked:
    """A request that passed validation: which API, its checked values, how to answer."""

    request: web.Request
    api: Api
    values: Values
    context: Context
    settings: Settings  # as in force when the call arrived
    base: dict[str, Any]  # the envelope started for it
    mode: StreamMode | None  # None: buffered
    want_json: bool  # output=json
    upload: StagedUpload | None = None  # an uploaded file, staged while the body arrived
    notes: list[str] = field(default_factory=list)  # warnings about the request itself
    detach: bool = False  # answer 202 and run the command as a job

    @property
    def peer(self) -> str:
        """Who asked, for the audit line: the client's address and its token's name."""
        return f"{self.request.remote or '?'} token={caller_of(self.request).name}"


@dataclass
class Call:
    """One CLI command ready to run for an :class:`Asked`."""

    asked: Asked
    spec: CommandSpec
    plan: Plan
    export_path: Path | None = None  # an export's file: its JSON becomes ``data``
    warnings: list[str] = field(default_factory=list)

    @property
    def api(self) -> Api:
        return self.asked.api


def output_texts(api: Api, settings: Settings) -> dict[str, StreamText]:
    """Per stream: bytes in, text out, noise filtered and (where the API echoes secrets)
    URI passwords masked."""
    mask = mask_uri if api.mask_output else None
    return {
        name: StreamText(settings.filter_loading_messages_in_cli_response, mask=mask)
        for name in ("stdout", "stderr")
    }


def http_code_for(outcome: Outcome) -> int:
    if outcome.timed_out:
        return 504
    return 200 if outcome.exit_code == 0 else 500


def outcome_warnings(outcome: Outcome, settings: Settings, stopping: bool) -> list[str]:
    if stopping:
        return ["the daemon is stopping (SIGTERM): the command was stopped"]
    if outcome.timed_out:
        return [f"the command timed out after {settings.command_timeout:g} s and was stopped"]
    if outcome.exit_code != 0:
        return [f"the command exited with code {outcome.exit_code}"]
    return []


def server_timing(outcome: Outcome) -> dict[str, str]:
    """How long the command itself took (inside the warm child when there was one), so that
    a client can tell the bridge's own overhead from Airflow's work."""
    seconds = outcome.command_seconds if outcome.command_seconds is not None else outcome.duration
    how = "warm" if outcome.warm else "cold"
    return {"Server-Timing": f'cli;dur={seconds * 1000:.3f};desc="{how}"'}


async def parsed_extras(call: Call, stdout: str, warnings: list[str]) -> dict[str, Any]:
    """Envelope fields of a command that succeeded: the state the API leaves behind, and
    what its JSON says (an export's file, or ``-o json`` output)."""
    return {**call.api.leaves, **await _json_extras(call, stdout, warnings)}


async def _json_extras(call: Call, stdout: str, warnings: list[str]) -> dict[str, Any]:
    if call.export_path is not None:
        try:
            text = await in_thread(call.export_path.read_text, encoding="utf-8")
            return {"data": json.loads(text)}
        except (OSError, ValueError) as exc:
            warnings.append(f"the exported file could not be read as JSON: {exc}")
            return {}
    if not call.plan.json_output:
        return {}
    data = parse_json_output(stdout)
    if data is None:
        warnings.append("the CLI's JSON output could not be parsed")
        return {}
    extra: dict[str, Any] = {}
    if call.asked.want_json:
        extra["data"] = data
    if call.api.summarize is not None:
        extra.update(call.api.summarize(data))
    return extra
