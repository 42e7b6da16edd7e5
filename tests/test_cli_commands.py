"""Commands of the installed CLI by their dotted names (bridge.catalogue.cli_commands): which
answer under the operator's patterns, how their arguments are checked, and that no value can
become an option or name a path outside the allowed folders.

The commands below are shaped as the real parsers print them (2.11.2 and 3.3.2); the
integration suite drives the real ones (tests/test_integration_smoke.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bridge.catalogue.cli_commands import CliCommands, answers, explicit_only
from bridge.catalogue.installed import AirflowInfo
from bridge.catalogue.model import Context, Kind, Plan
from bridge.catalogue.planning import collect, plan_cli
from bridge.config.parsers import pattern_list
from bridge.config.settings import Settings
from bridge.errors import RequestError
from bridge.http.access_log import AccessLogger
from bridge.text.redact import mask_arguments, shown_command
from tests.helpers import API, ClientFactory, app_of, call
from tests.helpers import cli_argument as argument
from tests.helpers import installed_cli as installed

OUTPUT = argument("output", "-o", "--output", choices=["table", "json", "yaml", "plain"])
VERBOSE = argument("verbose", "-v", "--verbose", kind="flag")
CLI = installed(
    "2.11.2",
    (["dags", "list-import-errors"], [OUTPUT, argument("subdir", "-S", "--subdir"), VERBOSE]),
    (
        ["tasks", "states-for-dag-run"],
        [argument("dag_id", required=True), argument("execution_date_or_run_id"), OUTPUT],
    ),
    (["config", "get-value"], [argument("section"), argument("option"), VERBOSE]),
    (
        ["dags", "list-runs"],
        [
            argument("dag_id", "-d", "--dag-id", required=True),
            argument("state", "--state", choices=["queued", "running", "success", "failed"]),
            argument("start_date", "-s", "--start-date", type="date"),
            argument("limit", "--limit", type="int"),
            OUTPUT,
        ],
    ),
    (["variables", "export"], [argument("file")]),
    (["variables", "set"], [argument("key"), argument("value")]),
    (["dags", "delete"], [argument("dag_id"), argument("yes", "-y", "--yes", kind="flag")]),
    # A delete word inside a longer one (Airflow 2.11's `users remove-role`).
    (["users", "remove-role"], [argument("username", "-u", "--username"), argument("role")]),
    (["db", "reset"], [argument("yes", "-y", "--yes", kind="flag")]),
    (["db", "check"], []),
    (["db", "shell"], []),
    (["scheduler"], [argument("daemon", "-D", "--daemon", kind="flag")]),
    (["celery", "worker"], [argument("queues", "-q", "--queues")]),
)
COMMANDS = CliCommands.of(CLI, 2)
DEFAULT = Settings().cli_commands


def plan(tmp_path: Path, name: str, **raw: str) -> Plan:
    api = COMMANDS.apis[name]
    ctx = Context(2, tmp_path / "dags", (tmp_path,), CLI)
    values = collect(api, {k: [v] for k, v in raw.items()}, ctx)
    want_json = raw.get("output") == "json"  # read by the bridge, as views.py does
    if want_json:
        values["output"] = "json"
    return plan_cli(api, values, ctx, want_json)


def refused(tmp_path: Path, name: str, **raw: str) -> str:
    with pytest.raises(RequestError) as caught:
        plan(tmp_path, name, **raw)
    assert caught.value.status == 400
    return str(caught.value)


# --- which commands answer ------------------------------------------------------------------


def test_the_default_answers_only_what_changes_nothing_and_reveals_no_secret() -> None:
    answering = {api.name for api in COMMANDS.answering(DEFAULT)}
    expected = {"dags.list-import-errors", "dags.list-runs", "tasks.states-for-dag-run", "db.check"}
    assert answering == expected
    assert "cli_commands" in (COMMANDS.why_not("config.get-value", DEFAULT) or "")


# Commands of Airflow 2.11 and 3.3 whose answer shows a secret (a connection's password, a
# variable's value, the configuration's keys) or personal data: written out here, so that the
# default is checked against them and not against the generated reference.
REVEALING = installed(
    "3.3.2",
    *(
        (words, [argument("id"), OUTPUT])
        for words in (
            ["connections", "get"],
            ["connections", "list"],
            ["connections", "export"],
            ["variables", "get"],
            ["variables", "list"],
            ["variables", "export"],
            ["config", "get-value"],
            ["config", "list"],
            ["users", "list"],
            ["users", "export"],
        )
    ),
)


def test_the_default_reaches_no_command_that_reveals_a_secret() -> None:
    revealing = CliCommands.of(REVEALING, 3)
    assert len(revealing.commands) == 10
    assert revealing.answering(DEFAULT) == []
    assert not [p for p in DEFAULT if p.split(".")[0] in ("connections", "variables", "config")]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("dags.delete", "deletes data"),
        ("users.remove-role", "deletes data"),
        ("db.reset", "database schema"),
        ("db.shell", "interactive"),
        ("scheduler", "service"),
        ("celery.worker", "service"),
    ],
)
def test_a_wildcard_never_reaches_what_must_be_named(name: str, why: str) -> None:
    command = COMMANDS.commands[name]
    assert why in (explicit_only(command) or "")
    assert not answers(command, ("*", "*.*", name.split(".")[0] + ".*", name + "*"))
    assert answers(command, (name,))
    assert why in (COMMANDS.why_not(name, ("*",)) or "")


def test_a_command_this_airflow_lacks_says_so() -> None:
    assert "not a command of this Airflow" in (COMMANDS.why_not("dags.nothing", ("*",)) or "")


@pytest.mark.parametrize(
    ("text", "patterns"),
    [
        ("dags.*, Config.Get-Value", ("dags.*", "config.get-value")),
        (" tasks.states-for-dag-run ,", ("tasks.states-for-dag-run",)),
        (" , ", ()),
    ],
)
def test_patterns_are_read_from_the_setting(text: str, patterns: tuple[str, ...]) -> None:
    assert pattern_list(text) == patterns


@pytest.mark.parametrize("text", ["dags list", "dags/*", "$(x)"])
def test_a_pattern_that_is_no_command_name_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a command pattern"):
        pattern_list(text)


# --- arguments --------------------------------------------------------------------------------


def test_arguments_by_dest_with_their_kinds() -> None:
    runs = COMMANDS.apis["dags.list-runs"]
    kinds = {arg.name: arg.kind for arg in runs.args}
    assert kinds == {
        "dag_id": Kind.TEXT,
        "state": Kind.TEXT,
        "start_date": Kind.DATE,
        "limit": Kind.INT,
    }
    assert [a.name for a in runs.args if a.required] == ["dag_id"]
    assert runs.strict_arguments
    assert COMMANDS.apis["dags.list-import-errors"].arg("subdir").kind is Kind.DAGS_PATH  # type: ignore[union-attr]
    assert COMMANDS.apis["variables.export"].arg("file").kind is Kind.SERVER_PATH  # type: ignore[union-attr]


def test_the_argv_options_then_positionals_after_a_double_dash(tmp_path: Path) -> None:
    argv = plan(
        tmp_path,
        "dags.list-runs",
        dag_id="demo",
        state="failed",
        start_date="2024-01-02 00:00:00 00:00",
        limit="5",
        output="json",
    ).argv
    assert argv == [
        *("dags", "list-runs", "--dag-id=demo", "--state=failed"),
        *("--start-date=2024-01-02T00:00:00+00:00", "--limit=5", "--output=json"),
    ]
    argv = plan(
        tmp_path, "tasks.states-for-dag-run", dag_id="-x", execution_date_or_run_id="r"
    ).argv
    assert argv == ["tasks", "states-for-dag-run", "--", "-x", "r"]
    assert plan(tmp_path, "config.get-value", section="core", option="x", verbose="").argv == [
        *("config", "get-value", "--verbose", "--", "core", "x")
    ]


@pytest.mark.parametrize(
    ("raw", "mentions"),
    [
        ({"dag_id": "d", "state": "--help"}, "must be one of"),
        ({"dag_id": "d", "limit": "-1"}, "whole number"),
        ({"dag_id": "d", "start_date": "--yesterday"}, "must be a date"),
        ({"state": "failed"}, "required"),
    ],
)
def test_bad_values_are_refused_before_anything_runs(
    tmp_path: Path, raw: dict[str, str], mentions: str
) -> None:
    assert mentions in refused(tmp_path, "dags.list-runs", **raw)


def test_a_value_is_never_an_option(tmp_path: Path) -> None:
    """A value that looks like an option stays the value of its own option or positional."""
    argv = plan(tmp_path, "dags.list-runs", dag_id="--help").argv
    assert "--dag-id=--help" in argv and "--help" not in argv
    argv = plan(tmp_path, "config.get-value", section="--verbose", option="-h").argv
    assert argv[argv.index("--") :] == ["--", "--verbose", "-h"]


def test_a_file_argument_stays_inside_the_allowed_folders(tmp_path: Path) -> None:
    assert "inside" in refused(tmp_path, "variables.export", file="/etc/cron.d/x")
    assert "inside" in refused(tmp_path, "variables.export", file="../../x")
    argv = plan(tmp_path, "variables.export", file="out.json").argv
    assert argv[-1] == str((tmp_path / "out.json").resolve())
    assert "inside" in refused(tmp_path, "dags.list-import-errors", subdir="/etc")


def test_a_secret_positional_is_masked_where_it_is_shown(tmp_path: Path) -> None:
    argv = plan(tmp_path, "variables.set", key="k", value="s3cr3t").argv
    assert argv[-1] == "s3cr3t"  # it runs as itself
    assert "s3cr3t" not in " ".join(shown_command(argv, None))


# --- over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def fake_airflow_info(fake_airflow_info: AirflowInfo) -> AirflowInfo:
    """The fault-injection stand-in, with the commands above as its CLI."""
    return replace(fake_airflow_info, version="2.11.2", major=2, cli=CLI)


async def test_an_unknown_argument_of_a_dotted_command_is_a_400(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    status, body = await call(client, api="dags.list-import-errors", bogus="1")
    assert status == 400 and "unknown argument(s) ['bogus']" in body["output"], body
    assert "subdir" in body["output"]
    status, body = await call(client, api="config.get-value", section="core", option="x")
    assert status == 400 and "cli_commands" in body["output"], body


async def test_a_name_neither_seed_nor_installed_lists_both_roads(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    response = await client.get(API, params={"api": "dags.nothing"})
    body: dict[str, Any] = await response.json()
    assert response.status == 400
    assert "cli_commands" in body["output"] and "list_dags" in body["output"]


async def test_the_openapi_document_and_the_page_list_what_answers_here(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    schemas = (await (await client.get("/admin/rest_api/openapi.json")).json())["components"][
        "schemas"
    ]
    assert "dags.list-import-errors" in schemas and "db.check" in schemas
    assert "config.get-value" not in schemas and "dags.delete" not in schemas
    runs = schemas["dags.list-runs"]
    assert runs["properties"]["state"]["enum"] == ["queued", "running", "success", "failed"]
    assert runs["required"] == ["api", "dag_id"] and runs["additionalProperties"] is False
    page = await (await client.get("/admin/rest_api/")).text()
    assert 'form class="call" data-api="dags.list-runs"' in page
    assert 'data-api="config.get-value"' not in page
    assert "Commands of the installed CLI: airflow dags" in page


async def test_a_secret_of_a_refused_command_is_masked_in_the_envelope_and_the_log(
    make_fake_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_fake_client()
    status, body = await call(client, api="variables.set", key="k", value="s3cr3t")
    assert status == 400 and "cli_commands" in body["output"], body
    assert body["arguments"]["value"] != "s3cr3t" and body["arguments"]["key"] == "k"
    # The bridge's access log (the daemon's; the test server logs with aiohttp's own).
    target = f"{API}?api=variables.set&key=k&value=s3cr3t"
    request = make_mocked_request("GET", target, app=app_of(client))
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logging.getLogger("test.access"), "").log(request, web.Response(), 0.01)
    assert "s3cr3t" not in caplog.text and "variables.set" in caplog.text


def test_a_service_runs_in_the_foreground_and_cold() -> None:
    """daemon is never offered: a service forked off by the bridge would live in its cgroup."""
    scheduler = COMMANDS.apis["scheduler"]
    assert scheduler.arg("daemon") is None and scheduler.long_running
    assert not COMMANDS.apis["db.check"].long_running


# --- command classes from facts (issue 25) ----------------------------------------------------

SAVE = argument("save", "-s", "--save", help="Saves the result to the indicated file.")
CONF = argument("conf", "-c", "--conf", help="JSON string that gets pickled into the conf")
SECTION_OPTION = argument("section", "--section", help="The section name")
REGEX_FLAG = argument("treat_dag_id_as_regex", "--treat-dag-id-as-regex", kind="flag")
COLUMNS = argument("columns", "--columns", help="List of columns (default: ['fileloc'])")


def risky(version: str) -> CliCommands:
    """Commands of 3.3.2 that the review found reaching too far, shaped as its parser says."""
    cli = installed(
        version,
        (["dags", "show-dependencies"], [SAVE]),
        (["dags", "list"], [COLUMNS, OUTPUT]),
        (
            ["dags", "test"],
            [
                argument("dag_id"),
                CONF,
                argument(
                    "save_dagrun",
                    "--save-dagrun",
                    help="After completing the backfill, saves the diagram for current DAG Run "
                    "to the indicated file.",
                ),
            ],
        ),
        (["dags", "pause"], [argument("dag_id"), REGEX_FLAG, OUTPUT]),
        (["dags", "clear"], [argument("dag_id")]),
        (["tasks", "clear"], [argument("dag_id"), argument("dag_regex", "-R", kind="flag")]),
        (["tasks", "test"], [argument("dag_id"), argument("env_vars", "--env-vars")]),
        (["config", "update"], [argument("fix", "--fix", kind="flag"), SECTION_OPTION]),
        (["config", "get-value"], [argument("section"), argument("option")]),
        (
            ["config", "list"],
            [SECTION_OPTION, argument("show_values", "--show-values", kind="flag")],
        ),
        (["config", "lint"], [SECTION_OPTION]),
        (["db-manager", "migrate"], [argument("import_path")]),
        (["db-manager", "downgrade"], [argument("import_path")]),
        (["db", "export-archived"], [argument("drop_archives", "--drop-archives", kind="flag")]),
        (["rotate-fernet-key"], []),
        (["connections", "get"], [argument("conn_id"), OUTPUT]),
        (["connections", "list"], [argument("show_values", "--show-values", kind="flag")]),
        (["info"], [argument("file_io", "--file-io", kind="flag"), OUTPUT]),
    )
    return CliCommands.of(cli, int(version[0]))


RISKY = risky("3.3.2")
WILDCARDS = ("*", "*.*", "config.*", "dags.*", "db*", "tasks.*", "connections.*", "rotate*")


def planned(tmp_path: Path, name: str, patterns: tuple[str, ...] = ("*",), **raw: str) -> Plan:
    api = RISKY.apis[name]
    ctx = Context(3, tmp_path / "dags", (tmp_path,), None, patterns)
    return plan_cli(api, collect(api, {k: [v] for k, v in raw.items()}, ctx), ctx, False)


def refusal(tmp_path: Path, name: str, patterns: tuple[str, ...] = ("*",), **raw: str) -> str:
    with pytest.raises(RequestError) as caught:
        planned(tmp_path, name, patterns, **raw)
    assert caught.value.status == 400
    return str(caught.value)


def test_no_default_command_writes_a_file() -> None:
    assert "dags.show-dependencies" not in DEFAULT
    save = RISKY.apis["dags.show-dependencies"].arg("save")
    assert save is not None and save.kind is Kind.SERVER_PATH and save.new_file
    for api in RISKY.answering(DEFAULT):
        assert not [a.name for a in api.args if a.new_file], api.name


def test_a_file_argument_never_overwrites_a_file_nor_its_twin(tmp_path: Path) -> None:
    (tmp_path / "victim.cfg").write_text("[core]\n")
    name = "dags.show-dependencies"
    assert "'victim.cfg' exists" in refusal(tmp_path, name, save="victim.cfg.png")
    assert "'victim.cfg' exists" in refusal(tmp_path, name, save="victim.cfg")
    assert "NAME.EXT" in refusal(tmp_path, name, save="graph")
    assert "inside" in refusal(tmp_path, name, save="../airflow.cfg.png")
    assert planned(tmp_path, name, save="graph.png").argv == [
        *("dags", "show-dependencies", f"--save={tmp_path.resolve() / 'graph.png'}")
    ]
    assert (tmp_path / "victim.cfg").read_text() == "[core]\n"


def test_the_first_allowed_folder_is_made_for_a_file_to_write(tmp_path: Path) -> None:
    api = RISKY.apis["dags.show-dependencies"]
    folder = tmp_path / ".airflow-rest-bridge-files"
    ctx = Context(3, tmp_path / "dags", (folder,), None, ("*",))
    collect(api, {"save": ["graph.png"]}, ctx)
    assert folder.is_dir() and folder.stat().st_mode & 0o077 == 0


def test_a_save_by_any_name_is_a_file_argument(tmp_path: Path) -> None:
    """save_dagrun passed as text when files were known by a pattern over dests (^save$)."""
    assert "inside" in refusal(tmp_path, "dags.test", dag_id="d", save_dagrun="/anywhere/x.png")
    save_dagrun = RISKY.apis["dags.test"].arg("save_dagrun")
    assert save_dagrun is not None and save_dagrun.new_file


def test_a_shape_the_table_does_not_know_fails_closed() -> None:
    """columns names no file on a reviewed minor; on one nobody reviewed, its help's
    'fileloc' makes it a file written."""
    assert RISKY.apis["dags.list"].arg("columns").kind is Kind.TEXT  # type: ignore[union-attr]
    unknown = risky("3.4.0").apis["dags.list"].arg("columns")
    assert unknown is not None and unknown.kind is Kind.SERVER_PATH and unknown.new_file


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("config.update", "configuration"),
        ("config.get-value", "secrets"),
        ("config.list", "secrets"),
        ("db-manager.migrate", "schema"),
        ("db-manager.downgrade", "schema"),
        ("db.export-archived", "secrets"),
        ("rotate-fernet-key", "rotates"),
        ("dags.clear", "clears"),
        ("tasks.clear", "clears"),
        ("connections.get", "secrets"),
        ("connections.list", "secrets"),
    ],
)
def test_a_wildcard_never_reaches_a_class_that_must_be_named(name: str, why: str) -> None:
    command = RISKY.commands[name]
    assert not answers(command, WILDCARDS)
    assert why in (RISKY.why_not(name, WILDCARDS) or "")
    assert answers(command, (name,))


@pytest.mark.parametrize(
    ("name", "raw", "why"),
    [
        ("dags.pause", {"dag_id": ".*", "treat_dag_id_as_regex": "true"}, "regex"),
        ("info", {"file_io": "true"}, "outside the host"),
        ("connections.list", {"show_values": "true"}, "reveals"),
        ("config.list", {"section": "core", "show_values": "1"}, "reveals"),
        ("db.export-archived", {"drop_archives": "yes"}, "drops"),
        ("tasks.clear", {"dag_id": "d", "dag_regex": "on"}, "regex"),
    ],
)
def test_a_regex_all_or_revealing_argument_needs_the_command_named(
    tmp_path: Path, name: str, raw: dict[str, str], why: str
) -> None:
    named = ("connections.list", "config.list", "db.export-archived", "tasks.clear")
    # Every wildcard, and the explicit-only commands named: only this one is not named.
    patterns = tuple(p for p in (*WILDCARDS, *named) if p != name)
    message = refusal(tmp_path, name, patterns, **raw)
    assert why in message and "in full" in message
    assert planned(tmp_path, name, (name,), **raw).argv  # named: it runs
    false = {k: ("false" if v in ("true", "1", "yes", "on") else v) for k, v in raw.items()}
    assert planned(tmp_path, name, patterns, **false).argv  # a false flag adds nothing


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("config.get-value", {"section": "rest_api_plugin", "option": "x"}),
        ("config.get-value", {"section": " REST_API_PLUGIN", "option": "x"}),
        ("config.list", {"section": "rest_api_plugin"}),
        ("config.lint", {"section": "core,rest_api_plugin"}),
    ],
)
def test_the_bridges_own_section_is_never_read(
    tmp_path: Path, name: str, raw: dict[str, str]
) -> None:
    assert "the bridge's own section" in refusal(tmp_path, name, (name,), **raw)


def test_a_config_listing_names_its_section(tmp_path: Path) -> None:
    """Without a section, config list would list [rest_api_plugin] too."""
    assert "required" in refusal(tmp_path, "config.list", ("config.list",))
    argv = planned(tmp_path, "config.list", ("config.list",), section="core").argv
    assert argv == ["config", "list", "--section=core"]
    get = planned(tmp_path, "config.get-value", ("config.get-value",), section="core", option="x")
    assert get.argv[-3:] == ["--", "core", "x"]


def test_sensitive_keys_of_json_arguments_are_masked(tmp_path: Path) -> None:
    conf = '{"password": "s3cr3t", "n": 1}'
    argv = planned(tmp_path, "dags.test", dag_id="d", conf=conf).argv
    assert f"--conf={conf}" in argv  # it runs as itself
    shown = " ".join(shown_command(argv, None))
    assert "s3cr3t" not in shown and '"n": 1' in shown
    env = '{"DB_PASSWORD": "hunter2", "REGION": "eu"}'
    argv = planned(tmp_path, "tasks.test", dag_id="d", env_vars=env).argv
    assert "hunter2" not in " ".join(shown_command(argv, None))
    secrets = RISKY.apis["dags.test"].secrets
    assert "s3cr3t" not in mask_arguments({"conf": conf}, secrets)["conf"]
