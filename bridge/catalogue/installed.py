"""What Airflow is installed, read from what its CLI prints at startup (``airflow version``
and ``airflow --help``, run through the command path by the HTTP layer's startup), and its
CLI's own parser (:mod:`bridge.catalogue.installed_cli`) where its interpreter is known."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bridge.catalogue.installed_cli import InstalledCli
from bridge.catalogue.model import Api, Handler

_VERSION = re.compile(r"^(?P<version>(?P<major>\d+)\.\d+\.\d+\S*)\s*$")
# In 'airflow --help', groups and commands are listed indented, name first.
_HELP_ENTRY = re.compile(r"^\s{4,}(?P<name>[a-z][a-z0-9-]*)(\s{2,}|$)")
SUPPORTED_MAJORS = (2, 3)
DETECTION_COMMANDS = (("version",), ("--help",))


class AirflowNotUsable(RuntimeError):
    """The configured ``airflow`` cannot be run or is a version the bridge does not map."""


@dataclass(frozen=True)
class AirflowInfo:
    executable: str
    version: str
    major: int
    commands: frozenset[str]  # top-level groups and commands of this installation's CLI
    python: str | None = None  # the interpreter Airflow runs with (checks DAG files)
    cli: InstalledCli | None = None  # its CLI's parser, where it could be read


def python_of(executable: str) -> str | None:
    """The Python interpreter named in the ``airflow`` script's ``#!`` line, if any.
    Reads the script: call it from a thread once the event loop runs."""
    path = shutil.which(executable) or executable
    try:
        with open(path, "rb") as script:
            first = script.readline(4096).decode("utf-8", "replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if not words:
        return None
    if Path(words[0]).name == "env" and len(words) > 1:
        return shutil.which(words[-1])
    return words[0] if "python" in Path(words[0]).name else None


def interpreter(executable: str, configured: str | None) -> str | None:
    """Airflow's Python: the one configured (airflow_python, which must be there), else the
    one in the airflow script's #! line; None when neither is known. Blocking (the disk)."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise AirflowNotUsable(f"airflow_python = {configured}: no such executable file")
        return found
    return python_of(executable)


def read_installation(
    executable: str, version_text: str, help_text: str, python: str | None
) -> AirflowInfo:
    """The installation, from the output of ``airflow version`` and ``airflow --help``."""
    for line in reversed(version_text.splitlines()):
        match = _VERSION.match(line)
        if match:
            major = int(match["major"])
            if major not in SUPPORTED_MAJORS:
                raise AirflowNotUsable(
                    f"{executable} is Airflow {match['version']}; the bridge supports 2.x and 3.x"
                )
            commands = frozenset(
                m["name"] for m in map(_HELP_ENTRY.match, help_text.splitlines()) if m
            )
            return AirflowInfo(executable, match["version"], major, commands, python)
    raise AirflowNotUsable(f"'{executable} version' printed no version: {version_text[-500:]!r}")


def availability(api: Api, airflow: AirflowInfo, disabled: frozenset[str]) -> str | None:
    """None when ``api`` answers on this host, else why not: the operator disabled it, or
    this Airflow has no equivalent (and what to use instead)."""
    if api.name in disabled:
        return f"the API '{api.name}' is disabled by the operator (disabled_apis)"
    if api.handler is Handler.TASK_LOG and (airflow.cli is None or airflow.cli.task_logs is None):
        return (
            f"{api.name}: where this Airflow writes task logs is not known (its configuration "
            "could not be read with its own interpreter: see the daemon's log, airflow_python)"
        )
    return api.availability(airflow.major, airflow.commands)
