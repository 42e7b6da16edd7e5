"""Every command of the installed CLI beyond the seed's 25, as an API named by its words
joined by dots (``dags.list-import-errors``), built from the CLI's own parser.

Arguments are named by their argparse ``dest``; a flag is a boolean, an int- or date-typed
option is checked as such, choices are checked before anything runs, a value that names a
file is confined to the allowed folders (the dags folder for ``subdir``), and values are only
ever ``--flag=value`` or positionals after ``--``: they can never become options.

Which commands answer is the operator's ``cli_commands`` setting: patterns of dotted names.
A pattern with a wildcard never reaches a command that starts a service, changes the
database schema, deletes data or is interactive: those answer only when named in full.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bridge.catalogue.installed_cli import CliArgument, CliCommand, InstalledCli
from bridge.catalogue.model import Api, Arg, Cli, Kind
from bridge.text.redact import Secret, is_sensitive_name

# Arguments the bridge itself reads, not passed on by name (output=json becomes -o json),
# and daemon: a service forked off by the bridge would live in the bridge's cgroup and
# sandbox (docs/systemd.md); called by its dotted name it runs in the foreground instead.
CONTROLLED = frozenset({"output", "daemon"})
# A value of these arguments names a file or folder on the host.
_PATH_DEST = re.compile(r"file|path|^save$|^pid$|^stdout$|^stderr$|keytab|ssl_|^export$|^import$")
# Words that make a command explicit-only, and why.
_SCHEMA = frozenset({"migrate", "upgrade", "downgrade", "init", "reset", "drop-archived"})
_DELETES = ("delete", "clean", "reset", "drop", "remove", "stop")
_INTERACTIVE = frozenset({"shell", "standalone"})


SERVICE = "starts or stops a service (it has --daemon or --pid, or is a celery command)"
SCHEMA = "changes the database schema (db " + ", ".join(sorted(_SCHEMA)) + ")"
DELETES = "deletes data (a word with " + ", ".join(_DELETES) + ")"
INTERACTIVE = "is interactive (" + ", ".join(sorted(_INTERACTIVE)) + ")"
EXPLICIT_ONLY_REASONS = (SERVICE, SCHEMA, DELETES, INTERACTIVE)


def explicit_only(command: CliCommand) -> str | None:
    """Why a wildcard pattern must not reach ``command`` (None when it may)."""
    words = command.words
    if any(a.dest in ("daemon", "pid") for a in command.arguments) or words[0] == "celery":
        return f"it {SERVICE}"
    if words[0] == "db" and words[-1] in _SCHEMA:
        return f"it {SCHEMA}"
    if any(part in word for word in words for part in _DELETES):
        return f"it {DELETES}"
    if words[-1] in _INTERACTIVE:
        return f"it {INTERACTIVE}"
    return None


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


def _kind(argument: CliArgument) -> Kind:
    if argument.kind != "value":
        return Kind.BOOL
    if argument.dest == "subdir":
        return Kind.DAGS_PATH
    if _PATH_DEST.search(argument.dest):
        return Kind.SERVER_PATH
    if argument.type == "int":
        return Kind.INT
    if argument.type == "date":
        return Kind.DATE
    return Kind.TEXT


def _secret(dest: str) -> Secret:
    if dest == "conn_extra":
        return Secret.EXTRA
    if is_sensitive_name(dest) or dest in ("conn_uri", "uri", "conn_json", "value"):
        return Secret.WHOLE
    return Secret.NONE


def _required(argument: CliArgument) -> bool:
    if argument.positional:
        return argument.nargs not in ("?", "*")
    return argument.required


def api_of(command: CliCommand, major: int) -> Api:
    """The API that runs ``command`` with the caller's values."""
    passed = [a for a in command.arguments if a.dest not in CONTROLLED]
    args = tuple(
        Arg(
            a.dest,
            _kind(a),
            a.help or f"{'positional' if a.positional else a.flag} of airflow {command.name}",
            required=_required(a),
            secret=_secret(a.dest),
            choices=a.choices if a.kind == "value" else None,
        )
        for a in passed
    )
    cli = Cli(
        command.words,
        positionals=tuple(a.dest for a in passed if a.positional),
        options={a.dest: a.flag for a in passed if not a.positional},
        json_capable=command.json_capable,
    )
    # A service runs cold, as the seed's services do: never forked from the warm helper.
    service = command.words[-1] if command.argument("daemon") is not None else None
    return Api(
        command.name, command.help, args, {major: cli}, service=service, strict_arguments=True
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
        return cls(found, {name: api_of(c, major) for name, c in found.items()})

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
