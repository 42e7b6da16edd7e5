"""Every command of the installed CLI beyond the seed's 25, as an API named by its words
joined by dots (``dags.list-import-errors``), built from the CLI's own parser.

Arguments are named by their argparse ``dest``; a flag is a boolean, an int- or date-typed
option is checked as such, choices are checked before anything runs, a value that names a
file is confined to the allowed folders (the dags folder for ``subdir``) and, when the
command writes it, must be a new file; values are only ever ``--flag=value`` or positionals
after ``--``: they can never become options. What a command and each argument may do is
classified from the parser's facts and a reviewed table (:mod:`bridge.catalogue.cli_classes`).

Which commands answer is the operator's ``cli_commands`` setting: patterns of dotted names.
A pattern with a wildcard never reaches a command of the classes
:data:`~bridge.catalogue.cli_classes.EXPLICIT_ONLY_REASONS` name (services, schema changes,
configuration changes, secrets, key rotation, deletions, clears, interactive commands), and a
call giving a regex, "all", revealing, uploading or dropping argument answers only when its
command is named in full.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bridge.catalogue.cli_classes import (
    FileUse,
    dag_report,
    explicit_only,
    file_use,
    is_config_section,
    risk,
)
from bridge.catalogue.installed_cli import CliArgument, CliCommand, InstalledCli
from bridge.catalogue.model import Api, Arg, Cli, Confinement, Kind
from bridge.config.tokens import Scope
from bridge.text.redact import Secret, is_sensitive_name

# Arguments the bridge itself reads, not passed on by name (output=json becomes -o json),
# and daemon: a service forked off by the bridge would live in the bridge's cgroup and
# sandbox (docs/systemd.md); called by its dotted name it runs in the foreground instead.
CONTROLLED = frozenset({"output", "daemon"})


def answers(command: CliCommand, patterns: Iterable[str]) -> bool:
    """Whether the operator's patterns reach ``command``."""
    name = command.name
    explicit = explicit_only(command) is not None
    for pattern in patterns:
        if pattern == name:
            return True
        if not explicit and fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _kind(command: CliCommand, argument: CliArgument, minor: str) -> Kind:
    if argument.kind != "value":
        return Kind.BOOL
    if argument.dest == "subdir":
        return Kind.DAGS_PATH
    if file_use(command, argument, minor) is not FileUse.NONE:
        return Kind.SERVER_PATH
    if argument.type == "int":
        return Kind.INT
    if argument.type == "date":
        return Kind.DATE
    return Kind.TEXT


# Reviewed on 2.11 and 3.3: values that are a connection or a variable's value whole, and
# JSON objects whose sensitive keys are masked (as conn_extra's; help says "JSON").
_WHOLE = frozenset({"conn_uri", "uri", "conn_json", "value"})
_JSON = frozenset({"conf", "env_vars", "task_params", "dag_run_conf"})


def _secret(argument: CliArgument, kind: Kind) -> Secret:
    dest = argument.dest
    if dest == "conn_extra":
        return Secret.EXTRA
    if is_sensitive_name(dest) or dest in _WHOLE:
        return Secret.WHOLE
    if kind is Kind.TEXT and (dest in _JSON or "json" in argument.help.lower()):
        return Secret.EXTRA
    return Secret.NONE


def _arg(command: CliCommand, argument: CliArgument, minor: str, shows_config: bool) -> Arg:
    kind = _kind(command, argument, minor)
    where = "positional" if argument.positional else argument.flag
    section = is_config_section(argument)
    return Arg(
        argument.dest,
        kind,
        argument.help or f"{where} of airflow {command.name}",
        required=_required(argument) or (shows_config and section),
        secret=_secret(argument, kind),
        choices=argument.choices if argument.kind == "value" else None,
        new_file=kind is Kind.SERVER_PATH and file_use(command, argument, minor) is FileUse.WRITES,
        named_only=risk(argument),
        config_section=section,
    )


def _required(argument: CliArgument) -> bool:
    if argument.positional:
        return argument.nargs not in ("?", "*")
    return argument.required


def minor_of(version: str) -> str:
    """``2.11.2`` -> ``2.11``: the key of the reviewed tables (bridge.catalogue.cli_classes)."""
    return ".".join(version.split(".")[:2])


def api_of(command: CliCommand, major: int, minor: str = "") -> Api:
    """The API that runs ``command`` with the caller's values, its arguments classified for
    this Airflow minor (an unknown minor: by the strictest rules)."""
    passed = [a for a in command.arguments if a.dest not in CONTROLLED]
    # Listing the configuration without a section would list the bridge's own.
    shows_config = command.words[0] == "config" and command.words[-1] == "list"
    args = tuple(_arg(command, a, minor, shows_config) for a in passed)
    cli = Cli(
        command.words,
        positionals=tuple(a.dest for a in passed if a.positional),
        options={a.dest: a.flag for a in passed if not a.positional},
        json_capable=command.json_capable,
    )
    # A service runs cold, as the seed's services do: never forked from the warm helper.
    service = command.words[-1] if command.argument("daemon") is not None else None
    report = dag_report(command, minor)
    return Api(
        command.name,
        command.help,
        args,
        {major: cli},
        service=service,
        strict_arguments=True,
        mask_output=command.words[0] == "connections",  # add echoes the URI it was given
        scope=Scope.ADMIN if report is Confinement.REFUSED else Scope.READ,
        confinement=report,
    )


@dataclass(frozen=True)
class CliCommands:
    """The installed CLI's commands as APIs, by dotted name; which answer is decided per
    call by the ``cli_commands`` setting in force (a reload changes it)."""

    commands: Mapping[str, CliCommand]
    apis: Mapping[str, Api]

    @classmethod
    def of(cls, cli: InstalledCli | None, major: int) -> CliCommands:
        if cli is None:
            return cls({}, {})
        found = {c.name: c for c in cli.commands.values()}
        minor = minor_of(cli.version)
        return cls(found, {name: api_of(c, major, minor) for name, c in found.items()})

    def answering(self, patterns: Iterable[str]) -> list[Api]:
        patterns = tuple(patterns)
        return [self.apis[n] for n, c in sorted(self.commands.items()) if answers(c, patterns)]

    def why_not(self, name: str, patterns: Iterable[str]) -> str | None:
        """None when ``name`` answers; else why not (unknown here, or not allowed)."""
        command = self.commands.get(name)
        if command is None:
            return f"'airflow {name.replace('.', ' ')}' is not a command of this Airflow"
        if answers(command, patterns):
            return None
        if explicit_only(command):
            return (
                f"{name} answers only when the operator names it in cli_commands: "
                f"{explicit_only(command)}"
            )
        return f"{name} is not among the commands the operator allows (cli_commands)"
