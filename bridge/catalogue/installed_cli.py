"""The installed Airflow's CLI as its own parser describes it: every command, its positionals
and options, their choices and types.

Read by ``bridge/airflow_side/cli_parser.py`` under Airflow's interpreter (through the command
path, beside ``airflow version``, at startup unless :mod:`bridge.catalogue.cli_cache` still
holds it, and again when the installation changes); this module only turns that JSON into
types and answers questions about it. The seed APIs' argv leaves out an optional flag the installed
version lacks, and refuses a caller's argument whose option it lacks, naming the version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLI_PARSER = Path(__file__).parents[1] / "airflow_side" / "cli_parser.py"
ARGUMENT_KINDS = ("value", "flag", "count")
ARGUMENT_TYPES = ("str", "int", "float", "date", "bool")
Stamp = tuple[int, int, int] | None  # a path's (inode, mtime_ns, size); None: not there


@dataclass(frozen=True)
class CliArgument:
    """One positional or option of a command, named by its argparse ``dest``."""

    dest: str
    flags: tuple[str, ...]  # empty for a positional
    kind: str  # value, flag (a bare switch) or count (-v -v)
    nargs: str | int | None
    choices: tuple[str, ...] | None
    type: str  # str, int, float, date or bool: what can be checked before anything runs
    required: bool
    help: str

    @property
    def positional(self) -> bool:
        return not self.flags

    @property
    def flag(self) -> str:
        """The spelling the bridge passes: the long form where there is one."""
        return max(self.flags, key=len)


@dataclass(frozen=True)
class CliCommand:
    words: tuple[str, ...]
    help: str
    arguments: tuple[CliArgument, ...]

    @property
    def name(self) -> str:
        """The API name: the command's words joined by dots (``dags.list-import-errors``)."""
        return ".".join(self.words)

    @property
    def option_strings(self) -> frozenset[str]:
        return frozenset(flag for argument in self.arguments for flag in argument.flags)

    @property
    def json_capable(self) -> bool:
        """It takes ``--output json``."""
        output = self.argument("output")
        return output is not None and "json" in (output.choices or ())

    def argument(self, dest: str) -> CliArgument | None:
        return next((a for a in self.arguments if a.dest == dest), None)


@dataclass(frozen=True)
class TaskLogSettings:
    """Where the installation's tasks write their logs: ``[logging]`` as Airflow read it."""

    base_folder: str
    filename_template: str
    remote: bool  # remote_logging: logs are shipped elsewhere (maybe only kept there)
    remote_folder: str


@dataclass(frozen=True, eq=False)  # compared and hashed as itself: read once per startup
class InstalledCli:
    version: str
    commands: Mapping[tuple[str, ...], CliCommand]
    # What the installation looked like to the reader before it imported Airflow.
    stamps: tuple[tuple[str, Stamp], ...] = ()
    task_logs: TaskLogSettings | None = None  # None: the reader could not read [logging]

    def command(self, words: tuple[str, ...]) -> CliCommand | None:
        return self.commands.get(tuple(words))

    def lacks(self, words: tuple[str, ...], flag: str) -> bool:
        """The command is known here and has no option ``flag`` (``--flag=value`` or bare).
        An unknown command lacks nothing: what the CLI does with it is for the CLI to say."""
        command = self.command(words)
        return command is not None and flag.split("=", 1)[0] not in command.option_strings


def parse_installed_cli(text: str) -> InstalledCli:
    """The JSON that cli_parser.py printed (its last line); ValueError when it is not that."""
    lines = text.strip().splitlines()
    if not lines:
        raise ValueError("the CLI parser reader printed nothing")
    document = json.loads(lines[-1])
    commands = {}
    for entry in document["commands"]:
        command = CliCommand(
            tuple(str(word) for word in entry["words"]),
            str(entry.get("help") or ""),
            tuple(_argument(raw) for raw in entry["arguments"]),
        )
        commands[command.words] = command
    stamps = tuple(_stamp(raw) for raw in document.get("stamps") or ())
    logs = document.get("task_logs")
    task_logs = (
        TaskLogSettings(
            str(logs["base_log_folder"]),
            str(logs["log_filename_template"]),
            bool(logs.get("remote_logging")),
            str(logs.get("remote_base_log_folder") or ""),
        )
        if isinstance(logs, dict)
        else None
    )
    return InstalledCli(str(document["version"]), commands, stamps, task_logs)


def _stamp(raw: Any) -> tuple[str, Stamp]:
    path, found = raw
    if found is None:
        return str(path), None
    inode, mtime, size = (int(number) for number in found)
    return str(path), (inode, mtime, size)


def _argument(raw: Mapping[str, Any]) -> CliArgument:
    kind, type_name = str(raw["kind"]), str(raw["type"])
    if kind not in ARGUMENT_KINDS or type_name not in ARGUMENT_TYPES:
        raise ValueError(f"unknown argument kind or type: {kind!r}, {type_name!r}")
    nargs = raw.get("nargs")
    choices = raw.get("choices")
    return CliArgument(
        dest=str(raw["dest"]),
        flags=tuple(str(flag) for flag in raw["flags"]),
        kind=kind,
        nargs=nargs if isinstance(nargs, (str, int)) else None,
        choices=tuple(str(choice) for choice in choices) if choices else None,
        type=type_name,
        required=bool(raw.get("required")),
        help=str(raw.get("help") or ""),
    )
