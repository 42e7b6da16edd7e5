"""What the installed Airflow offers, read from what its CLI prints and from its script:
the version and major, the command groups, the interpreter, and what makes it unusable."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from bridge.catalogue.installed import (
    AirflowNotUsable,
    availability,
    interpreter,
    python_of,
    read_installation,
)
from bridge.catalogue.table import BY_NAME

# What `airflow --help` lists, in the shape both majors print it.
HELP_3 = """Usage: airflow [-h] GROUP_OR_COMMAND ...

Positional Arguments:
  GROUP_OR_COMMAND

    Groups
      assets         Manage assets
      dags           Manage DAGs
      tasks          Manage tasks

    Commands:
      scheduler      Start a scheduler instance
      version        Show the version

Options:
  -h, --help         show this help message and exit
"""


@pytest.mark.parametrize(
    ("printed", "version", "major"),
    [
        ("3.3.2\n", "3.3.2", 3),
        ("some warning first\n2.11.2\n", "2.11.2", 2),
        ("3.1.0rc1\n", "3.1.0rc1", 3),
        ("2.7.3  \n", "2.7.3", 2),
    ],
)
def test_the_version_and_major(printed: str, version: str, major: int) -> None:
    info = read_installation("/venv/bin/airflow", printed, HELP_3, "/venv/bin/python")
    assert (info.version, info.major) == (version, major)
    assert (info.executable, info.python) == ("/venv/bin/airflow", "/venv/bin/python")


def test_the_command_groups_are_read_from_the_help() -> None:
    info = read_installation("airflow", "3.3.2\n", HELP_3, None)
    assert info.commands == frozenset({"assets", "dags", "tasks", "scheduler", "version"})


@pytest.mark.parametrize("printed", ["1.10.15\n", "4.0.0\n"])
def test_a_major_the_bridge_does_not_map_is_refused(printed: str) -> None:
    with pytest.raises(AirflowNotUsable, match=r"supports 2\.x and 3\.x"):
        read_installation("airflow", printed, HELP_3, None)


@pytest.mark.parametrize("printed", ["", "not a version\n", "3.3\n"])
def test_no_version_is_refused_with_what_it_printed(printed: str) -> None:
    with pytest.raises(AirflowNotUsable, match="printed no version"):
        read_installation("airflow", printed, HELP_3, None)


def script(tmp_path: Path, first_line: str) -> str:
    path = tmp_path / "airflow"
    path.write_text(first_line + "\nimport sys\n")
    path.chmod(0o755)
    return str(path)


def test_the_interpreter_named_in_the_script(tmp_path: Path) -> None:
    assert python_of(script(tmp_path, "#!/opt/af/bin/python3.11")) == "/opt/af/bin/python3.11"
    name = Path(sys.executable).name
    assert python_of(script(tmp_path, f"#!/usr/bin/env {name}")) == shutil.which(name)
    assert python_of(script(tmp_path, "#!/bin/sh")) is None
    assert python_of(script(tmp_path, "no shebang at all")) is None
    assert python_of(str(tmp_path / "missing")) is None


def test_a_configured_interpreter_wins_and_must_exist(tmp_path: Path) -> None:
    airflow = script(tmp_path, "#!/opt/af/bin/python3")
    assert interpreter(airflow, None) == "/opt/af/bin/python3"
    assert interpreter(airflow, sys.executable) == sys.executable
    with pytest.raises(AirflowNotUsable, match="airflow_python = /nowhere/python"):
        interpreter(airflow, "/nowhere/python")


def test_availability_names_the_reason() -> None:
    info = read_installation("airflow", "3.3.2\n", HELP_3, None)
    assert availability(BY_NAME["pause"], info, frozenset()) is None
    assert "disabled by the operator" in str(
        availability(BY_NAME["pause"], info, frozenset({"pause"}))
    )
    assert "airflow celery" in str(availability(BY_NAME["worker"], info, frozenset()))
    assert "trigger_dag" in str(availability(BY_NAME["run"], info, frozenset()))
    assert availability(BY_NAME["version"], info, frozenset({"run"})) is None
