"""What Airflow is installed: detected once at startup through the CLI itself."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass

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


async def detect(executable: str, env: Mapping[str, str], timeout: float = 120.0) -> AirflowInfo:
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
            return AirflowInfo(executable, match["version"], major, commands)
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
