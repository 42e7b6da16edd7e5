"""What a command's end means for its envelope, worked out in one place for every way a call
is answered (one envelope, a stream, a job): the HTTP code, the warnings, what its JSON says,
and :func:`assemble`, the only place a result envelope is made from an exit code."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.calls import confined, envelope
from bridge.calls.call import Call
from bridge.calls.capped import CappedOutput
from bridge.catalogue.model import Api, Plan
from bridge.config.settings import Settings
from bridge.offload import in_thread
from bridge.process.command import Outcome
from bridge.process.path import CommandPath, CommandSpec
from bridge.text.noise import StreamText, parse_json_output
from bridge.text.redact import mask_uri, masker, secret_forms

_HOLD = 4096  # characters: longer than a named token or a URI


@dataclass
class Prepared:
    """One CLI command ready to run for a :class:`Call`."""

    call: Call
    spec: CommandSpec
    plan: Plan
    export_path: Path | None = None  # an export's file: its JSON becomes ``data``
    warnings: list[str] = field(default_factory=list)

    @property
    def api(self) -> Api:
        return self.call.api


@dataclass
class Ran:
    """A command that ended, before its envelope is made; what follows the command (a run
    followed, a service confirmed) may still change the code, the warnings and the extras."""

    outcome: Outcome
    kept: dict[str, CappedOutput]  # the output kept for the envelope (or for its JSON)
    warnings: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    http_code: int = 200
    # The output the envelope shows instead of what was kept (a confined token's list).
    shown: dict[str, str] | None = None


def output_texts(api: Api, settings: Settings) -> dict[str, StreamText]:
    """Per stream: bytes in, text out, noise filtered, the bridge's secrets masked (a command
    may read them from airflow.cfg) and, where the API echoes secrets, URI passwords too."""
    secrets = settings.secret_values
    masks: list[Callable[[str], str]] = [mask_uri] if api.mask_output else []
    if secrets or settings.tokens_file is not None:
        masks.append(masker(secrets))

    def mask(text: str) -> str:
        for step in masks:
            text = step(text)
        return text

    # An over-long line is passed on in pieces: keep back more than any secret is long.
    hold = max([_HOLD, *(len(form) for form in secret_forms(secrets))])
    return {
        name: StreamText(
            settings.filter_loading_messages_in_cli_response,
            mask=mask if masks else None,
            hold=hold if masks else 0,
        )
        for name in ("stdout", "stderr")
    }


def http_code_for(exit_code: int | None, timed_out: bool = False) -> int:
    if timed_out:
        return 504
    return 200 if exit_code == 0 else 500


def outcome_warnings(
    outcome: Outcome, settings: Settings, stopping: bool, stopped_by: str | None = None
) -> list[str]:
    """Why the command ended, when it did not end well: what stopped it (the daemon
    stopping; ``stopped_by``, its caller: a cancel, a client gone; its timeout), and how."""
    how = f"; it {ending(outcome)}"
    if stopping:
        return [f"the daemon is stopping (SIGTERM): the command was stopped{how}"]
    if stopped_by is not None and outcome.stopped:
        return [f"{stopped_by}: the command was stopped{how}"]
    if outcome.timed_out:
        return [f"the command timed out after {settings.command_timeout:g} s and was stopped{how}"]
    said = [stopped_by] if stopped_by is not None else []  # it ended before it was stopped
    if outcome.exit_code != 0:
        said.append(f"the command {ending(outcome)}")
    return said


def ending(outcome: Outcome) -> str:
    """How the command's own process ended, in words: an exit code below 0 explained."""
    code = outcome.exit_code
    if code is None:
        return "had not exited when the bridge stopped waiting for it"
    if code >= 0:
        return f"exited with code {code}"
    if outcome.killed_after is not None and code == -signal.SIGKILL:
        return (
            f"ignored SIGTERM for {outcome.killed_after:g} s (kill_grace_period), so it was "
            f"killed with SIGKILL (exit code {code})"
        )
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was ended by {name} (exit code {code})"


async def ended(
    prepared: Prepared,
    outcome: Outcome,
    kept: dict[str, CappedOutput],
    report_cuts: bool,
    stopped_by: str | None = None,
) -> Ran:
    """What the command's end says: its code and warnings (``stopped_by``: what of its
    caller's stopped it), where the output the envelope holds was cut (``report_cuts``), and
    (when it succeeded) what its JSON says."""
    settings = prepared.call.settings
    commands = prepared.call.commands
    warnings = prepared.warnings + outcome_warnings(
        outcome, settings, commands.stopping, stopped_by
    )
    for name, output in kept.items():
        if report_cuts and output.dropped:
            warnings.append(
                f"{name} was cut at max_output_size ({settings.max_output_size} characters): "
                + output.kept()
            )
    ran = Ran(
        outcome, kept, warnings, http_code=http_code_for(outcome.exit_code, outcome.timed_out)
    )
    if outcome.exit_code == 0:
        stdout = kept["stdout"].text() if "stdout" in kept else ""
        ran.extra = {**prepared.api.leaves, **await _json_extras(prepared, stdout, warnings)}
    if "stdout" in confined.withheld_streams(prepared.call):  # a confined token's list
        stdout = kept["stdout"].text() if "stdout" in kept else ""
        ran.extra.pop("data", None)
        rows, text = confined.listing(prepared.call, parse_json_output(stdout))
        ran.shown = {"stdout": text if outcome.exit_code == 0 else "", "stderr": ""}
        if prepared.call.want_json and outcome.exit_code == 0:
            ran.extra["data"] = rows
    return ran


def assemble(prepared: Prepared, ran: Ran, with_output: bool) -> dict[str, Any]:
    """The call's result envelope; ``with_output``: the kept output in it (one envelope),
    else without (a stream or a job sent the output already)."""
    output = {name: kept.text() for name, kept in ran.kept.items()} if with_output else None
    if output is not None and ran.shown is not None:
        output = ran.shown
    return command_envelope(
        prepared.call.base,
        ran.outcome.exit_code,
        http_code=ran.http_code,
        output=output,
        airflow_cmd=display(prepared.call.commands, prepared.spec),
        warnings=ran.warnings,
        extra=ran.extra,
    )


def command_envelope(
    base: dict[str, Any],
    exit_code: int | None,
    *,
    http_code: int | None = None,
    output: Any = None,
    airflow_cmd: str | None = None,
    warnings: list[str] | tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The envelope of a command that ended with ``exit_code``: the one place that turns an
    exit code into an envelope (``http_code``: what followed the command decided instead)."""
    return envelope.finish(
        base,
        http_code=http_code if http_code is not None else http_code_for(exit_code),
        output=output,
        airflow_cmd=airflow_cmd,
        warnings=warnings,
        exit_code=exit_code,
        extra=extra,
    )


def display(commands: CommandPath, spec: CommandSpec) -> str:
    """The command as the envelope shows it (secrets masked)."""
    return commands.display(spec.argv)


async def _json_extras(prepared: Prepared, stdout: str, warnings: list[str]) -> dict[str, Any]:
    if prepared.export_path is not None:
        try:
            text = await in_thread(prepared.export_path.read_text, encoding="utf-8")
            return {"data": json.loads(text)}
        except (OSError, ValueError) as exc:
            warnings.append(f"the exported file could not be read as JSON: {exc}")
            return {}
    if not prepared.plan.json_output:
        return {}
    data = parse_json_output(stdout)
    if data is None:
        warnings.append("the CLI's JSON output could not be parsed")
        return {}
    extra: dict[str, Any] = {}
    if prepared.call.want_json:
        extra["data"] = data
    if prepared.api.summarize is not None:
        extra.update(prepared.api.summarize(data))
    return extra
