"""The installed CLI's parser (bridge.catalogue.installed_cli) and what it changes in the seed
APIs' argv: a flag the version lacks is left out or refused, -o json where the command has it.

The documents below have the shape cli_parser.py prints; the integration suite reads the real
parser of each installed Airflow (tests/test_integration_cli.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.catalogue.installed_cli import InstalledCli, parse_installed_cli
from bridge.catalogue.model import Context
from bridge.catalogue.planning import collect, plan_cli
from bridge.catalogue.table import BY_NAME
from bridge.catalogue.values import parse_value
from bridge.errors import RequestError
from tests.helpers import cli_argument as argument
from tests.helpers import installed_cli as installed

D = "demo"


OUTPUT = argument("output", "-o", "--output", choices=["table", "json", "yaml", "plain"])
SUBDIR = argument("subdir", "-S", "--subdir")
VERBOSE = argument("verbose", "-v", "--verbose", kind="flag")
YES = argument("yes", "-y", "--yes", kind="flag")

# `dags pause` before 2.9: no --yes (it never asked) and no -o.
CLI_2_7 = installed(
    "2.7.3",
    (["dags", "pause"], [argument("dag_id", required=True), SUBDIR, VERBOSE]),
    (
        ["tasks", "list"],
        [argument("dag_id"), SUBDIR, argument("tree", "-t", "--tree", kind="flag")],
    ),
)
# `dags pause` on 3.x: --yes and -o, no --subdir.
CLI_3 = installed(
    "3.3.2",
    (["dags", "pause"], [argument("dag_id", required=True), OUTPUT, VERBOSE, YES]),
    (["tasks", "list"], [argument("dag_id"), OUTPUT, VERBOSE]),
)


def plan(cli: InstalledCli, major: int, api: str, raw: dict[str, str], want_json: bool = False):  # type: ignore[no-untyped-def]
    ctx = Context(major, Path("/dags"), (), cli)
    values = collect(BY_NAME[api], {k: [v] for k, v in raw.items()}, ctx)
    if want_json:
        values["output"] = "json"
    return plan_cli(BY_NAME[api], values, ctx, want_json)


def test_the_parser_document_becomes_commands() -> None:
    pause = CLI_3.command(("dags", "pause"))
    assert pause is not None and pause.name == "dags.pause"
    assert pause.json_capable
    assert [a.dest for a in pause.arguments if a.positional] == ["dag_id"]
    assert pause.argument("yes") is not None and pause.argument("yes").flag == "--yes"  # type: ignore[union-attr]
    assert CLI_2_7.command(("dags", "pause")).json_capable is False  # type: ignore[union-attr]
    assert CLI_3.command(("dags", "nothing")) is None


def test_a_flag_the_version_lacks_is_left_out_where_it_means_the_same() -> None:
    assert plan(CLI_2_7, 2, "pause", {"dag_id": D}).argv == ["dags", "pause", "--", D]
    assert plan(CLI_3, 3, "pause", {"dag_id": D}).argv == ["dags", "pause", "--yes", "--", D]


def test_an_argument_without_an_option_on_this_version_names_the_version() -> None:
    no_subdir = installed("2.7.3", (["dags", "pause"], [argument("dag_id"), VERBOSE]))
    with pytest.raises(RequestError) as caught:
        plan(no_subdir, 2, "pause", {"dag_id": D, "subdir": "x.py"})
    assert "Airflow 2.7.3" in str(caught.value) and "--subdir" in str(caught.value)
    assert caught.value.status == 400


def test_output_json_wherever_the_installed_command_has_it() -> None:
    result = plan(CLI_3, 3, "pause", {"dag_id": D}, want_json=True)
    assert result.argv == ["dags", "pause", "--yes", "--output=json", "--", D]
    assert result.json_output
    with pytest.raises(RequestError, match="output=json is not supported"):
        plan(CLI_2_7, 2, "pause", {"dag_id": D}, want_json=True)


def test_a_command_the_reader_does_not_know_keeps_the_written_argv() -> None:
    empty = installed("3.3.2")
    assert plan(empty, 3, "pause", {"dag_id": D}).argv == ["dags", "pause", "--yes", "--", D]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"version": "3.3.2"}',
        json.dumps({"version": "3", "commands": [{"words": ["x"], "arguments": [{}]}]}),
        json.dumps(
            {
                "version": "3",
                "commands": [{"words": ["x"], "arguments": [argument("a", kind="odd")]}],
            }
        ),
    ],
)
def test_a_document_that_is_not_the_readers_is_refused(text: str) -> None:
    with pytest.raises((ValueError, KeyError)):
        parse_installed_cli(text)


@pytest.mark.parametrize(
    ("sent", "passed_on"),
    [
        ("2019-01-11T12:00:00 00:00", "2019-01-11T12:00:00+00:00"),  # '+' decoded to a space
        ("2019-01-11 12:00:00 05:30", "2019-01-11T12:00:00+05:30"),
        ("2019-01-11T12:00:00.5 0100", "2019-01-11T12:00:00.5+0100"),
        ("2019-01-11 12:00", "2019-01-11T12:00"),  # a space for T, no offset
        ("2019-01-11T12:00:00+00:00", "2019-01-11T12:00:00+00:00"),
    ],
)
def test_a_date_whose_plus_arrived_as_a_space(sent: str, passed_on: str) -> None:
    ctx = Context(3, Path("/dags"), ())
    for name in ("start_date", "execution_date"):
        api = BY_NAME["clear" if name == "start_date" else "task_state"]
        arg = api.arg(name)
        assert arg is not None
        assert parse_value(arg, sent, ctx) == passed_on
