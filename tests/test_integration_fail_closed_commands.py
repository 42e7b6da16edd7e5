"""Command classes from facts, against the real parser and CLI (issue 25): each finding of the
review is refused before anything runs, on Airflow 2.11.2 and 3.3.2."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from tests.helpers import API, ClientFactory, call, dag_is_paused, warm_mode

pytestmark = [
    pytest.mark.airflow,
    # What is refused, and who owns a job, does not depend on how a command starts.
    pytest.mark.skipif(not warm_mode(), reason="BRIDGE_TEST_WARM=0: the warm pass runs it"),
]
DAG = "bridge_demo"
HIDDEN = "hunter2-9f3c"


def test_no_default_command_writes_a_file(airflow_info: AirflowInfo) -> None:
    """Every command the default reaches on the real parser takes no file it would write."""
    assert airflow_info.cli is not None
    installed = CliCommands.of(airflow_info.cli, airflow_info.major)
    answering = installed.answering(Settings().cli_commands)
    assert len(answering) > 15
    assert "dags.show-dependencies" not in {api.name for api in answering}
    writes = {api.name: [a.name for a in api.args if a.new_file] for api in answering}
    assert not {name: args for name, args in writes.items() if args}
    # The real parser's file arguments are known, whatever their dest is called.
    save_dagrun = installed.apis["dags.test"].arg("save_dagrun")
    assert save_dagrun is not None and save_dagrun.new_file
    assert installed.apis["dags.show-dependencies"].arg("save").new_file  # type: ignore[union-attr]


async def test_show_dependencies_overwrites_no_file(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.cfg"
    victim.write_text("[core]\nkeep = me\n")
    client = await make_client()  # the default cli_commands
    status, body = await call(client, api="dags.show-dependencies", save="victim.cfg.png")
    assert status == 400 and "cli_commands" in body["output"], body
    # Named by the operator, inside the allowed folder: still never over an existing file.
    named = await make_client(cli_commands=("dags.show-dependencies",), allowed_paths=(tmp_path,))
    for save in ("victim.cfg.png", "victim.cfg"):
        status, body = await call(named, api="dags.show-dependencies", save=save)
        assert status == 400 and "'victim.cfg' exists" in body["output"], body
    assert victim.read_text() == "[core]\nkeep = me\n"


async def test_save_dagrun_stays_inside_the_allowed_folders(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "anywhere"
    allowed.mkdir()
    outside.mkdir()
    client = await make_client(cli_commands=("dags.test",), allowed_paths=(allowed,))
    status, body = await call(
        client, api="dags.test", dag_id=DAG, save_dagrun=str(outside / "x.png")
    )
    assert status == 400 and "inside" in body["output"], body
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("raw", "major"),
    [
        ({"api": "config.update", "fix": "true"}, None),
        ({"api": "db-manager.migrate", "import_path": "x.y"}, 3),
        ({"api": "db-manager.downgrade", "import_path": "x.y", "to_revision": "1"}, 3),
        ({"api": "db.export-archived", "drop_archives": "true"}, None),
        ({"api": "rotate-fernet-key"}, None),
        ({"api": "dags.clear", "dag_id": DAG, "yes": "true"}, 3),
        ({"api": "tasks.clear", "dag_id": DAG, "yes": "true"}, None),
        ({"api": "connections.get", "conn_id": "x"}, None),
        ({"api": "connections.list"}, None),
        ({"api": "config.get-value", "section": "core", "option": "fernet_key"}, None),
    ],
    ids=lambda value: value["api"] if isinstance(value, dict) else "",
)
async def test_a_wildcard_reaches_none_of_the_named_only_classes(
    make_client: ClientFactory, airflow_info: AirflowInfo, raw: dict[str, str], major: int | None
) -> None:
    if major is not None and airflow_info.major != major:
        pytest.skip(f"{raw['api']} is a command of Airflow {major} only")
    name = raw["api"]
    for patterns in (("*",), (name.split(".")[0] + ".*",), (name[:2] + "*",)):
        client = await make_client(cli_commands=patterns)
        status, body = await call(client, **raw)
        assert status == 400, (patterns, body)
        assert "answers only when the operator names it in cli_commands" in body["output"], body
        assert "airflow_cmd" not in body, body  # nothing ran


@pytest.mark.parametrize(
    "raw",
    [
        {"api": "dags.pause", "dag_id": ".*", "treat_dag_id_as_regex": "true", "yes": "true"},
        {"api": "info", "file_io": "true"},
        {"api": "info", "anonymize": "true"},
    ],
    ids=lambda raw: raw["api"],
)
async def test_a_regex_or_upload_argument_needs_its_command_named(
    make_client: ClientFactory, settings: Settings, raw: dict[str, str]
) -> None:
    was_paused = await dag_is_paused(settings, DAG)
    client = await make_client(cli_commands=("*",))
    status, body = await call(client, **raw)
    if "anonymize" in raw:  # control: a wildcard still reaches an ordinary argument
        assert status == 200 and "Apache Airflow" in str(body["output"]), body
        return
    assert status == 400 and "in full in cli_commands" in body["output"], body
    assert await dag_is_paused(settings, DAG) == was_paused


async def test_show_values_is_not_reached_by_a_wildcard(make_client: ClientFactory) -> None:
    """connections list --show-values printed passwords in clear under cli_commands=*."""
    client = await make_client(cli_commands=("*", "connections.*", "variables.*"))
    for name in ("connections.list", "variables.list"):
        status, body = await call(client, api=name, show_values="true")
        assert status == 400 and "cli_commands" in body["output"], body
        assert "airflow_cmd" not in body, body


async def test_the_bridges_section_cannot_be_read(make_client: ClientFactory) -> None:
    token = "seed-token-4e1b"
    client = await make_client(
        cli_commands=("config.get-value", "config.list"),
        rest_api_plugin_expected_http_token=token,
    )
    headers = {Settings().rest_api_plugin_http_token_header_name: token}
    params = {
        "api": "config.get-value",
        "section": "rest_api_plugin",
        "option": "rest_api_plugin_expected_http_token",
    }
    response = await client.get(API, params=params, headers=headers)
    body: dict[str, Any] = await response.json()
    assert response.status == 400 and "the bridge's own section" in body["output"], body
    response = await client.get(API, params={"api": "config.list"}, headers=headers)
    body = await response.json()
    assert response.status == 400 and "['section'] are required" in body["output"], body
    params = {"api": "config.get-value", "section": "core", "option": "dags_are_paused_at_creation"}
    response = await client.get(API, params=params, headers=headers)
    body = await response.json()
    assert response.status == 200 and body["status"] == "OK", body


async def test_secrets_inside_json_arguments_are_masked(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """conf and env_vars are masked like conn_extra in arguments, post_arguments, airflow_cmd
    and the audit log (the DAG does not exist: the command fails, after it was shown)."""
    caplog.set_level(logging.INFO, logger="bridge.audit")
    client = await make_client(cli_commands=("dags.trigger", "tasks.test"))
    conf = f'{{"password": "{HIDDEN}", "n": 1}}'
    response = await client.post(
        API, params={"api": "dags.trigger"}, data={"dag_id": "no_such_dag", "conf": conf}
    )
    body: dict[str, Any] = await response.json()
    assert body["airflow_cmd"] and '"n": 1' in body["airflow_cmd"], body
    env = f'{{"DB_PASSWORD": "{HIDDEN}"}}'
    _, second = await call(
        client, api="tasks.test", dag_id="no_such_dag", task_id="t", env_vars=env
    )
    assert second["airflow_cmd"], second
    for shown in (body["post_arguments"], body["airflow_cmd"], second["arguments"]):
        assert HIDDEN not in str(shown), shown
    assert HIDDEN not in str(second["airflow_cmd"])
    audited = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    assert audited and not [line for line in audited if HIDDEN in line]
