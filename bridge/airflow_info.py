"""What Airflow is installed: detected once at startup through the CLI itself."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.runner import capture

_VERSION = re.compile(r"^(?P<version>(?P<major>\d+)\.\d+\.\d+\S*)\s*$")
# In 'airflow --help', groups and commands are listed indented, name first.
_HELP_ENTRY = re.compile(r"^\s{4,}(?P<name>[a-z][a-z0-9-]*)(\s{2,}|$)")
SUPPORTED_MAJORS = (2, 3)


class AirflowNotUsable(RuntimeError):
    """The configured ``airflow`` cannot be run or is a version the bridge does not map."""


@dataclass(frozen=True)
class AirflowInfo:
    executable: str
    version: str
    major: int
    commands: frozenset[str]  # top-level groups and commands of this installation's CLI
    python: str | None = None  # the interpreter Airflow runs with (checks DAG files)


def python_of(executable: str) -> str | None:
    """The Python interpreter named in the ``airflow`` script's ``#!`` line, if any."""
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


async def detect(
    executable: str,
    env: Mapping[str, str],
    timeout: float = 120.0,
    python: str | None = None,
) -> AirflowInfo:
    """Run ``airflow version`` and ``airflow --help`` (in parallel) and read them."""
    version_text, help_text = await asyncio.gather(
        _output([executable, "version"], env, timeout),
        _output([executable, "--help"], env, timeout),
    )
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
            interpreter = python or python_of(executable)
            return AirflowInfo(executable, match["version"], major, commands, interpreter)
    raise AirflowNotUsable(f"'{executable} version' printed no version: {version_text[-500:]!r}")


async def _output(argv: list[str], env: Mapping[str, str], timeout: float) -> str:
    try:
        result = await capture(argv, env=env, timeout=timeout, grace=2.0)
    except OSError as exc:
        raise AirflowNotUsable(f"cannot run {argv[0]}: {exc}") from exc
    if result.exit_code != 0:
        raise AirflowNotUsable(
            f"'{' '.join(argv)}' failed (exit code {result.exit_code}): {result.stderr[-500:]}"
        )
    return result.stdout
