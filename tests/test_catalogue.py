"""The API catalogue: availability per Airflow major, the argv each API becomes, validation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from bridge.catalogue.actions import logical_date_of
from bridge.catalogue.model import EXCHANGE_FILE, RUN_DATE, Api, Context, Kind, Plan
from bridge.catalogue.planning import collect, plan_cli
from bridge.catalogue.table import APIS, BY_NAME
from bridge.errors import RequestError
from bridge.text.redact import Secret

ALL_COMMANDS = frozenset({"celery", "kerberos", "scheduler", "dags", "tasks"})
D, T, DATE = "demo", "hello", "2024-01-02T03:04:05"
DTD = {"dag_id": D, "task_id": T, "execution_date": DATE}
DS = {"dag_id": D, "execution_date": DATE}
UNAVAILABLE = {("run", 3), ("serve_logs", 2), ("serve_logs", 3)}

# (api, major) -> (required arguments, expected argv) for every API available with ALL_COMMANDS.
REQUIRED: dict[tuple[str, int], tuple[dict[str, str], list[str]]] = {}
for major in (2, 3):
    REQUIRED |= {
        ("render", major): (DTD, ["tasks", "render", "--", D, T, DATE]),
        ("variables", major): ({}, ["variables", "list"]),
        ("connections", major): ({}, ["connections", "list"]),
        ("pause", major): ({"dag_id": D}, ["dags", "pause", "--yes", "--", D]),
        ("unpause", major): ({"dag_id": D}, ["dags", "unpause", "--yes", "--", D]),
        ("task_failed_deps", major): (DTD, ["tasks", "failed-deps", "--", D, T, DATE]),
        ("trigger_dag", major): ({"dag_id": D}, ["dags", "trigger", "--output=json", "--", D]),
        ("test", major): (DTD, ["tasks", "test", "--", D, T, DATE]),
        ("dag_state", major): (DS, ["dags", "state", "--", D, DATE]),
        ("list_tasks", major): ({"dag_id": D}, ["tasks", "list", "--", D]),
        ("list_dags", major): ({}, ["dags", "list"]),
        ("kerberos", major): ({"principal": "me@REALM"}, ["kerberos", "--", "me@REALM"]),
        ("worker", major): ({}, ["celery", "worker"]),
        ("flower", major): ({}, ["celery", "flower"]),
        ("scheduler", major): ({}, ["scheduler"]),
        ("task_state", major): (DTD, ["tasks", "state", "--", D, T, DATE]),
        ("pool", major): ({}, ["pools", "list"]),
        ("clear", major): ({"dag_id": D}, ["tasks", "clear", "--yes", "--", D]),
        ("refresh_all", major): ({}, ["dags", "reserialize"]),
    }
REQUIRED[("run", 2)] = (DTD, ["tasks", "run", "--", D, T, DATE])
REQUIRED[("backfill", 2)] = ({"dag_id": D}, ["dags", "backfill", "--yes", "--", D])
REQUIRED[("backfill", 3)] = (
    {"dag_id": D, "start_date": "2024-01-01", "end_date": "2024-01-03"},
    ["backfill", "create", "--dag-id=demo", "--from-date=2024-01-01", "--to-date=2024-01-03"],
)


def context(tmp_path: Path, major: int) -> Context:
    return Context(major, dags_folder=tmp_path / "dags", allowed_paths=(tmp_path,))


def plan(
    tmp_path: Path,
    api: str,
    major: int,
    raw: Mapping[str, str | list[str]],
    want_json: bool = False,
) -> Plan:
    ctx = context(tmp_path, major)
    texts = {k: [v] if isinstance(v, str) else v for k, v in raw.items()}
    values = collect(BY_NAME[api], texts, ctx)
    if want_json:
        values["output"] = "json"  # as views.py passes it on
    return plan_cli(BY_NAME[api], values, ctx, want_json)


def refused(tmp_path: Path, api: str, major: int, raw: Mapping[str, str], **kw: bool) -> str:
    with pytest.raises(RequestError) as caught:
        plan(tmp_path, api, major, raw, **kw)
    assert caught.value.status == 400
    return str(caught.value)


# --- availability and the argv of each API ------------------------------------------------


@pytest.mark.parametrize("major", [2, 3])
@pytest.mark.parametrize("api", APIS, ids=lambda a: a.name)
def test_availability(api: Api, major: int) -> None:
    why = api.availability(major, ALL_COMMANDS)
    assert (why is not None) == ((api.name, major) in UNAVAILABLE)
    if not api.internal and why is None:
        assert (api.name, major) in REQUIRED


@pytest.mark.parametrize(("name", "major"), sorted(REQUIRED))
def test_required_arguments_argv(tmp_path: Path, name: str, major: int) -> None:
    raw, argv = REQUIRED[(name, major)]
    assert plan(tmp_path, name, major, raw).argv == argv


@pytest.mark.parametrize(
    ("name", "major", "mentions"),
    [
        ("serve_logs", 2, ["scheduler"]),
        ("serve_logs", 3, ["scheduler"]),
        ("run", 3, ["trigger_dag", "test"]),
    ],
)
def test_unavailable_says_what_to_use(name: str, major: int, mentions: list[str]) -> None:
    why = BY_NAME[name].availability(major, ALL_COMMANDS)
    assert why is not None and all(word in why for word in mentions)


@pytest.mark.parametrize("major", [2, 3])
@pytest.mark.parametrize("name", ["worker", "flower"])
def test_celery_apis_need_the_celery_command(name: str, major: int) -> None:
    api = BY_NAME[name]
    without = api.availability(major, frozenset({"dags", "tasks", "scheduler"}))
    assert without is not None and "celery" in without
    assert api.availability(major, frozenset({"celery"})) is None


# --- exact argv for the important cases ----------------------------------------------------


@pytest.mark.parametrize(("major", "flag"), [(2, "--exec-date"), (3, "--logical-date")])
def test_trigger_dag_argv(tmp_path: Path, major: int, flag: str) -> None:
    """wait and wait_timeout are the bridge's (it follows the run): never in the argv."""
    raw = {"dag_id": D, "run_id": "r1", "conf": '{"a":1}', "exec_date": "2024-01-02"}
    raw |= {"wait": "true", "wait_timeout": "30"}
    result = plan(tmp_path, "trigger_dag", major, raw)
    assert result.argv == [
        *("dags", "trigger", "--run-id=r1", '--conf={"a": 1}', f"{flag}=2024-01-02"),
        *("--output=json", "--", D),
    ]
    assert result.json_output is True


@pytest.mark.parametrize("major", [2, 3])
def test_clear_always_has_yes(tmp_path: Path, major: int) -> None:
    raw = {"dag_id": D, "task_regex": "-x", "only_failed": "true"}
    argv = plan(tmp_path, "clear", major, raw).argv
    assert argv == ["tasks", "clear", "--yes", "--task-regex=-x", "--only-failed", "--", D]


def test_test_dry_run_on_2_and_refused_on_3(tmp_path: Path) -> None:
    argv = plan(tmp_path, "test", 2, {**DTD, "dry_run": ""}).argv
    assert argv == ["tasks", "test", "--dry-run", "--", D, T, DATE]
    assert "dry_run" in refused(tmp_path, "test", 3, {**DTD, "dry_run": "true"})


def test_subdir_on_2_becomes_an_option_inside_the_dags_folder(tmp_path: Path) -> None:
    argv = plan(tmp_path, "pause", 2, {"dag_id": D, "subdir": "team/x.py"}).argv
    subdir = (tmp_path / "dags").resolve() / "team" / "x.py"
    assert argv == ["dags", "pause", "--yes", f"--subdir={subdir}", "--", D]


@pytest.mark.parametrize("name", ["test", "list_dags"])
def test_subdir_on_3_is_ignored_with_a_warning(tmp_path: Path, name: str) -> None:
    raw = {**(DTD if name == "test" else {}), "subdir": "x.py"}
    result = plan(tmp_path, name, 3, raw)
    assert not any("subdir" in part for part in result.argv)
    assert any("subdir" in warning for warning in result.warnings)
    assert "subdir" in refused(tmp_path, name, 3, {**raw, "subdir": "../../etc"})


def test_backfill_on_3_requires_both_dates(tmp_path: Path) -> None:
    assert "end_date" in refused(tmp_path, "backfill", 3, {"dag_id": D, "start_date": "2024-01-01"})
    assert "start_date" in refused(tmp_path, "backfill", 3, {"dag_id": D, "end_date": "2024-01-01"})


@pytest.mark.parametrize(
    ("raw", "argv"),
    [
        ({"set": "KEY VALUE with spaces"}, ["variables", "set", "--", "KEY", "VALUE with spaces"]),
        ({"cmd": "set", "key": "k1", "value": "v -x"}, ["variables", "set", "--", "k1", "v -x"]),
        ({"get": "k1", "json": "1"}, ["variables", "get", "--json", "--", "k1"]),
        ({"delete": "k1"}, ["variables", "delete", "--", "k1"]),
    ],
)
def test_variables_argv(tmp_path: Path, raw: dict[str, str], argv: list[str]) -> None:
    assert plan(tmp_path, "variables", 2, raw).argv == argv


EXCHANGE_APIS = [
    ("variables", ["variables"]),
    ("connections", ["connections"]),
    ("pool", ["pools"]),
]


@pytest.mark.parametrize(("api", "words"), EXCHANGE_APIS)
def test_import_and_export_use_a_file_the_daemon_owns(
    tmp_path: Path, api: str, words: list[str]
) -> None:
    exported = plan(tmp_path, api, 3, {"export": "/some/path.json"})
    assert exported.argv == [*words, "export", "--", EXCHANGE_FILE]
    assert exported.export_file and "/some/path.json" in exported.warnings[0]
    imported = plan(tmp_path, api, 2, {"import": '{"k": "v"}'})
    assert imported.argv == [*words, "import", "--", EXCHANGE_FILE]
    assert imported.import_content == '{"k": "v"}'
    assert "not a path" in refused(tmp_path, api, 3, {"import": "/etc/passwd"})


POOL_FORM = {
    "cmd": "set",
    "pool_name": "NAME",
    "slot_count": "3",
    "pool_description": "some description",
}


@pytest.mark.parametrize("raw", [{"set": "NAME 3 some description"}, POOL_FORM])
def test_pool_set(tmp_path: Path, raw: dict[str, str]) -> None:
    argv = plan(tmp_path, "pool", 3, raw).argv
    assert argv == ["pools", "set", "--", "NAME", "3", "some description"]


@pytest.mark.parametrize(
    ("raw", "argv"),
    [
        ({}, ["pools", "list", "--output=json"]),
        ({"get": "p"}, ["pools", "get", "--output=json", "--", "p"]),
    ],
)
def test_pool_list_and_get_give_json(tmp_path: Path, raw: dict[str, str], argv: list[str]) -> None:
    planned = plan(tmp_path, "pool", 3, {**raw, "output": "json"}, want_json=True)
    assert (planned.argv, planned.json_output) == (argv, True)


@pytest.mark.parametrize("raw", [{"set": "p 3 d"}, POOL_FORM, {"delete": "p"}])
def test_pool_set_and_delete_print_no_json(tmp_path: Path, raw: dict[str, str]) -> None:
    said = refused(tmp_path, "pool", 2, {**raw, "output": "json"}, want_json=True)
    assert "pool get=NAME with output=json" in said


@pytest.mark.parametrize("raw", [{"set": "NAME"}, {"set": "NAME many x"}, {"set": "-N 3 d"}])
def test_pool_set_refuses_bad_fields(tmp_path: Path, raw: dict[str, str]) -> None:
    refused(tmp_path, "pool", 2, raw)


@pytest.mark.parametrize(
    ("raw", "argv"),
    [
        (
            {"add": "", "conn_id": "pg", "conn_uri": "postgres://u:p@h/db"},
            ["connections", "add", "--conn-uri=postgres://u:p@h/db", "--", "pg"],
        ),
        (
            {"add": "", "conn_id": "h", "conn_type": "http"},
            ["connections", "add", "--conn-type=http", "--", "h"],
        ),
        ({"delete": "", "conn_id": "pg"}, ["connections", "delete", "--", "pg"]),
    ],
)
def test_connections_argv(tmp_path: Path, raw: dict[str, str], argv: list[str]) -> None:
    assert plan(tmp_path, "connections", 2, raw).argv == argv


@pytest.mark.parametrize(
    ("raw", "needs"),
    [({"add": "", "conn_uri": "x://h"}, "conn_id"), ({"add": "", "conn_id": "c"}, "conn_uri")],
)
def test_connections_add_needs_id_and_uri_or_type(
    tmp_path: Path, raw: dict[str, str], needs: str
) -> None:
    assert needs in refused(tmp_path, "connections", 3, raw)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("connections", {"add": "", "delete": "", "conn_id": "c"}),
        ("variables", {"get": "a", "delete": "a"}),
        ("pool", {"get": "a", "set": "a 1 d"}),
    ],
)
def test_two_actions_at_once(tmp_path: Path, name: str, raw: dict[str, str]) -> None:
    assert "one action" in refused(tmp_path, name, 2, raw)


# --- output=json ---------------------------------------------------------------------------


@pytest.mark.parametrize("major", [2, 3])
@pytest.mark.parametrize("name", ["list_dags", "variables", "connections", "pool"])
def test_output_json_where_supported(tmp_path: Path, name: str, major: int) -> None:
    result = plan(tmp_path, name, major, {}, want_json=True)
    assert result.argv == [*REQUIRED[(name, major)][1], "--output=json"]
    assert result.json_output is True


@pytest.mark.parametrize("major", [2, 3])
def test_output_json_refused_for_render(tmp_path: Path, major: int) -> None:
    assert "output" in refused(tmp_path, "render", major, DTD, want_json=True)


@pytest.mark.parametrize("major", [2, 3])
def test_output_json_on_cli_apis(tmp_path: Path, major: int) -> None:
    argv = plan(tmp_path, "trigger_dag", major, {"dag_id": D}, want_json=True).argv
    assert argv == ["dags", "trigger", "--output=json", "--", D]
    assert "output=json is not supported" in refused(tmp_path, "render", major, DTD, want_json=True)


# --- validation ----------------------------------------------------------------------------

BAD = [
    ("pause", {"dag_id": "--help"}, "dag_id"),
    ("pause", {"dag_id": "../x"}, "dag_id"),
    ("pause", {"dag_id": "$(rm -rf /)"}, "dag_id"),
    ("pause", {"dag_id": "de\x00mo"}, "dag_id"),
    ("pause", {"dag_id": ""}, "dag_id"),
    ("trigger_dag", {"dag_id": D, "conf": "not json"}, "conf"),
    ("trigger_dag", {"dag_id": D, "conf": "[1,2]"}, "conf"),
    ("trigger_dag", {"dag_id": D, "exec_date": "yesterday"}, "exec_date"),
    ("trigger_dag", {"dag_id": D, "run_id": "-r"}, "run_id"),
    ("render", {**DTD, "execution_date": "2024-13-45"}, "execution_date"),
    ("backfill", {"dag_id": D, "start_date": "yesterday"}, "start_date"),
    ("pause", {"dag_id": D, "subdir": "../../etc"}, "subdir"),
    ("pause", {"dag_id": D, "subdir": "/etc"}, "subdir"),
    ("variables", {"import": "/etc/passwd"}, "import"),
    ("test", {**DTD, "dry_run": "maybe"}, "dry_run"),
    ("scheduler", {"num_runs": "-1"}, "num_runs"),
    ("scheduler", {"num_runs": "\u00b2"}, "num_runs"),  # isdigit() but not int()
    ("scheduler", {"num_runs": "9" * 5000}, "num_runs"),  # past int()'s 4300 digits
    ("pool", {"set": "p \u00b2 slots"}, "slot_count"),
    ("render", {"dag_id": D}, "required"),
]


@pytest.mark.parametrize(("name", "raw", "mentions"), BAD)
def test_bad_input_is_a_400(tmp_path: Path, name: str, raw: dict[str, str], mentions: str) -> None:
    assert mentions in refused(tmp_path, name, 2, raw)


def test_two_different_values_for_one_argument(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="dag_id") as caught:
        plan(tmp_path, "pause", 2, {"dag_id": ["a", "b"]})
    assert caught.value.status == 400
    assert plan(tmp_path, "pause", 2, {"dag_id": ["a", "a"]}).argv[-1] == "a"


def test_server_path_with_no_allowed_paths_is_a_400(tmp_path: Path) -> None:
    ctx = Context(2, dags_folder=tmp_path / "dags", allowed_paths=())
    with pytest.raises(RequestError):
        collect(BY_NAME["scheduler"], {"pid": ["scheduler.pid"]}, ctx)


def test_a_path_in_any_allowed_folder_is_accepted(tmp_path: Path) -> None:
    first, second = tmp_path / "home", tmp_path / "logs"
    ctx = Context(2, dags_folder=first / "dags", allowed_paths=(first, second))
    api = BY_NAME["scheduler"]
    relative = collect(api, {"pid": ["scheduler.pid"]}, ctx)  # relative to the first folder
    assert relative["pid"] == str((first / "scheduler.pid").resolve())
    in_second = collect(api, {"log-file": [str(second / "s.log")]}, ctx)
    assert in_second["log-file"] == str((second / "s.log").resolve())
    with pytest.raises(RequestError, match="must name a path inside"):
        collect(api, {"stdout": [str(tmp_path / "elsewhere.log")]}, ctx)


def test_execution_date_also_takes_a_run_id(tmp_path: Path) -> None:
    run_id = "manual__2024-01-02T03:04:05+00:00"
    argv = plan(tmp_path, "task_state", 3, {**DTD, "execution_date": run_id}).argv
    assert argv == ["tasks", "state", "--", D, T, run_id]


@pytest.mark.parametrize("text", ["", "true", "1", "on", "yes", "TRUE", "Yes"])
def test_true_booleans_add_the_flag(tmp_path: Path, text: str) -> None:
    assert "--dry-run" in plan(tmp_path, "test", 2, {**DTD, "dry_run": text}).argv


@pytest.mark.parametrize("text", ["false", "0", "off", "no", "False"])
def test_false_booleans_add_nothing(tmp_path: Path, text: str) -> None:
    assert plan(tmp_path, "test", 2, {**DTD, "dry_run": text}).argv == REQUIRED[("test", 2)][1]


def test_dag_state_of_a_run_id_on_2_looks_the_date_up_first(tmp_path: Path) -> None:
    """Airflow 2's dags state takes only a date: a run_id leaves a placeholder for the date
    the handler finds with dags list-runs."""
    result = plan(tmp_path, "dag_state", 2, {"dag_id": D, "execution_date": "manual_1"})
    assert result.argv == ["dags", "state", "--", D, RUN_DATE] and result.run_of == (D, "manual_1")
    subdir = str((tmp_path / "dags").resolve() / "x.py")
    raw = {"dag_id": D, "execution_date": DATE, "subdir": "x.py"}
    result = plan(tmp_path, "dag_state", 2, raw)
    assert result.argv == ["dags", "state", f"--subdir={subdir}", "--", D, DATE]
    assert result.run_of is None
    three = plan(tmp_path, "dag_state", 3, {"dag_id": D, "execution_date": "manual_1"})
    assert three.argv == ["dags", "state", "--", D, "manual_1"]


def test_the_logical_date_of_a_run_in_list_runs_output() -> None:
    runs = [
        {"run_id": "other", "execution_date": "2024-01-01T00:00:00+00:00"},
        {"run_id": "manual_1", "execution_date": "2024-01-02T03:04:05+00:00"},
    ]
    assert logical_date_of(runs, "manual_1") == "2024-01-02T03:04:05+00:00"
    assert logical_date_of(runs, "nope") is None
    assert logical_date_of(None, "manual_1") is None
    assert logical_date_of([{"run_id": "manual_1"}], "manual_1") is None


def test_every_json_argument_masks_its_sensitive_keys() -> None:
    """conf and task_params are JSON objects like conn_extra: shown with sensitive keys masked."""
    json_args = [
        (api.name, a.name, a.secret) for api in APIS for a in api.args if a.kind is Kind.JSON
    ]
    assert {("trigger_dag", "conf"), ("test", "task_params")} <= {(n, a) for n, a, _ in json_args}
    assert all(secret is Secret.EXTRA for _, _, secret in json_args)
