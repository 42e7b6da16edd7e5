"""The installed CLI's own parser, read at startup under the real Airflow's interpreter, and
what the seed APIs gain from it (issue 13's first part)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bridge.catalogue.cli_cache import cache_for, load
from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import AirflowInfo
from bridge.catalogue.model import Arg, Context, Kind
from bridge.catalogue.planning import collect, plan_cli
from bridge.config.settings import Settings
from bridge.errors import RequestError
from bridge.http.app import create_app
from bridge.http.keys import COMMANDS, INSTALLATION
from tests.helpers import ClientFactory, call, call_ok, dag_is_paused, warm_mode

pytestmark = pytest.mark.airflow
DAG = "bridge_demo"


def test_the_parser_is_read_at_startup(airflow_info: AirflowInfo, airflow_home: Path) -> None:
    cli = airflow_info.cli
    assert cli is not None, "the startup could not read the installed CLI's parser"
    assert cli.version == airflow_info.version
    assert len(cli.commands) > 80  # Airflow 2 and 3 each have about a hundred commands
    for words, positionals in [
        (("dags", "list-import-errors"), []),
        (("config", "get-value"), ["section", "option"]),
        (("tasks", "states-for-dag-run"), ["dag_id"]),
    ]:
        command = cli.command(words)
        assert command is not None, words
        assert [a.dest for a in command.arguments if a.positional][: len(positionals)] == (
            positionals
        )
    pause = cli.command(("dags", "pause"))
    assert pause is not None and pause.json_capable
    assert "--yes" in pause.option_strings and "--subdir" not in (
        pause.option_strings if airflow_info.major == 3 else set()
    )
    state = cli.command(("tasks", "state"))
    assert state is not None and state.argument("task_id") is not None
    # Where its tasks write their logs, as it reads [logging] (task_log).
    logs = cli.task_logs
    assert logs is not None and not logs.remote
    assert Path(logs.base_folder) == airflow_home / "logs"
    assert "{{ ti.task_id }}" in logs.filename_template and "attempt=" in logs.filename_template


def parser_reads(caplog: pytest.LogCaptureFixture) -> int:
    """How many times the audit saw the CLI's parser read."""
    audit = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    return sum("cli_parser.py" in line for line in audit)


@pytest.mark.cold
@pytest.mark.skipif(warm_mode(), reason="the same through the helper: the cold pass runs it")
async def test_the_parser_is_kept_and_read_again_when_the_installation_changes(
    aiohttp_client: Any,
    settings: Settings,
    airflow_info: AirflowInfo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = replace(settings, warm_helper=False)
    app = create_app(settings)  # detects, as the daemon does
    await aiohttp_client(app)
    installation = app[INSTALLATION]
    # The session's own detection read the parser and kept it: this start reads none.
    assert parser_reads(caplog) == 0
    assert installation.reading is not None and installation.airflow.cli is not None
    assert installation.airflow.cli.commands == airflow_info.cli.commands  # type: ignore[union-attr]
    assert not await installation.refreshed(app[COMMANDS], settings)  # nothing changed
    # A new version unpacked over the airflow package (its __init__.py replaced): read again.
    package = installation.reading.cli.stamps[0][0]
    assert package.endswith("airflow/__init__.py")
    assert installation.reading.cli.stamps[1][0].endswith("site-packages/*.dist-info")
    before = os.stat(package)
    moved = before.st_mtime_ns + 1_000_000_000
    os.utime(package, ns=(before.st_atime_ns, moved))
    try:
        assert await installation.refreshed(app[COMMANDS], settings)
        assert parser_reads(caplog) == 1
        assert "the Airflow installation changed" in caplog.text
        assert installation.airflow.version == airflow_info.version
        assert "dags.list-import-errors" in installation.commands.apis
        python = installation.airflow.python
        assert python is not None
        env = settings.child_environment(os.environ)
        kept = load(cache_for(settings.airflow_home, python, env), python, env)
        assert kept is not None and kept.cli.stamps[0][1] == (before.st_ino, moved, before.st_size)
    finally:  # as it was (the session's warm helper watches the same folder)
        os.utime(package, ns=(before.st_atime_ns, before.st_mtime_ns))


async def test_output_json_where_the_installed_command_has_it(
    make_client: ClientFactory, settings: Settings
) -> None:
    """pause has -o on 2.9+ and 3.x; the seed's table had output=json for five APIs only."""
    client = await make_client()
    was_paused = await dag_is_paused(settings, DAG)
    try:
        await call_ok(client, api="unpause", dag_id=DAG)  # pausing a paused DAG prints no JSON
        body = await call_ok(client, api="pause", dag_id=DAG, output="json")
        assert DAG in str(body.get("data")), json.dumps(body)
    finally:
        await call_ok(client, api="pause" if was_paused else "unpause", dag_id=DAG)


async def test_unknown_arguments_warn_on_a_real_call(make_client: ClientFactory) -> None:
    client = await make_client()
    status, body = await call(client, api="list_dags", wait="true")
    assert status == 200 and "['wait']" in body["warning"], body


def _sample(arg: Arg) -> str:
    """A value that passes the argument's checks."""
    if arg.choices:
        return arg.choices[0]
    return {Kind.INT: "1", Kind.DATE: "2024-01-02", Kind.BOOL: "true"}.get(arg.kind, "x")


@pytest.mark.smoke
def test_no_value_becomes_an_option_in_any_command(
    airflow_info: AirflowInfo, tmp_path: Path
) -> None:
    """Every option and positional of every command of the real parser, sent a value that
    looks like an option: refused (400), or passed on as --flag=value or after '--'."""
    assert airflow_info.cli is not None
    installed = CliCommands.of(airflow_info.cli, airflow_info.major)
    ctx = Context(airflow_info.major, tmp_path / "dags", (tmp_path,), airflow_info.cli)
    checked = 0
    for api in installed.apis.values():
        for arg in api.args:
            raw = {a.name: [_sample(a)] for a in api.args if a.required}
            for hostile in ("--help", "-h", "--yes"):
                raw[arg.name] = [hostile]
                try:
                    values = collect(api, raw, ctx)
                    argv = plan_cli(api, values, ctx, want_json=False).argv
                except RequestError as exc:
                    assert exc.status == 400
                    continue
                options = argv[: argv.index("--")] if "--" in argv else argv
                assert hostile not in options, (api.name, arg.name, argv)
                checked += 1
            if arg.choices:
                raw[arg.name] = ["not-a-choice"]
                # Refused for its choice, or first for a sample value of another argument
                # (a file it would write must be named NAME.EXT).
                with pytest.raises(RequestError, match=r"must be one of|names a file"):
                    collect(api, raw, ctx)
    assert checked > 200  # the parsers have hundreds of options
