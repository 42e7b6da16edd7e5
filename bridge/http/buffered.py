"""The buffered answer: run the command to its end, then one envelope with its output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bridge.http import envelope
from bridge.http.calls import (
    Call,
    http_code_for,
    outcome_warnings,
    output_texts,
    parsed_extras,
    server_timing,
)
from bridge.process.command import Outcome
from bridge.process.path import CommandPath


class CappedOutput:
    """One stream's text, cut at a size: the head is kept whole and contiguous, the rest is
    counted but dropped (the command keeps being read, so that it never blocks on a pipe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        room = self.limit - self.size
        if room <= 0:
            self.dropped += len(text)
            return
        kept = text[:room]
        self.parts.append(kept)
        self.size += len(kept)
        self.dropped += len(text) - len(kept)

    def text(self) -> str:
        return "".join(self.parts)


@dataclass
class Ran:
    """A buffered command's result, before it becomes the envelope."""

    outcome: Outcome
    output: dict[str, str]
    warnings: list[str]
    extra: dict[str, Any]
    http_code: int


async def run(call: Call, commands: CommandPath) -> Ran:
    """Run to the end; the output capped, what it means for the envelope worked out."""
    settings = call.asked.settings
    texts = output_texts(call.api, settings)
    collected = {name: CappedOutput(settings.max_output_size) for name in texts}
    async with commands.run(call.spec) as command:
        async for chunk in command:
            collected[chunk.stream].add(texts[chunk.stream].feed(chunk.data))
    outcome = command.outcome
    assert outcome is not None  # the output ended: the command has an outcome
    for name, text in texts.items():
        collected[name].add(text.finish())
    output = {name: kept.text() for name, kept in collected.items()}
    warnings = call.warnings + outcome_warnings(outcome, settings, commands.stopping)
    for name, kept in collected.items():
        if kept.dropped:
            warnings.append(
                f"{name} was cut at max_output_size ({settings.max_output_size} characters): "
                f"the first {kept.size} are kept, {kept.dropped} more were dropped"
            )
    extra = await parsed_extras(call, output["stdout"], warnings) if outcome.exit_code == 0 else {}
    return Ran(outcome, output, warnings, extra, http_code_for(outcome))


def respond(call: Call, commands: CommandPath, ran: Ran) -> web.Response:
    """The envelope of a buffered command."""
    return envelope.respond(
        envelope.finish(
            call.asked.base,
            http_code=ran.http_code,
            output=ran.output,
            airflow_cmd=commands.display(call.spec.argv),
            warnings=ran.warnings,
            exit_code=ran.outcome.exit_code,
            extra=ran.extra,
        ),
        headers=server_timing(ran.outcome),
    )


async def answer(call: Call, commands: CommandPath) -> web.Response:
    """Run to the end and answer with the full envelope."""
    return respond(call, commands, await run(call, commands))
