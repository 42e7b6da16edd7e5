"""How the APIs that are more than one CLI command become an argv: variables, connections,
pool (one action each call), list_dags (list or report), dag_state of a run_id on Airflow 2;
and what trigger_dag created."""

from __future__ import annotations

import json
from typing import Any

from bridge.catalogue.model import EXCHANGE_FILE, RUN_DATE, Arg, Context, Kind, Plan, Values
from bridge.catalogue.planning import option
from bridge.catalogue.values import parse_value
from bridge.config.parsers import TRUE_WORDS, is_false_word
from bridge.errors import RequestError
from bridge.text.redact import Masked, Secret, mask_value

# Airflow 3 finds DAGs through DAG bundles; the seed's subdir is checked, then ignored.
NO_SUBDIR_ON_3 = {"subdir": "Airflow 3 reads DAGs from DAG bundles, not from a subdir"}
# The fields of 'connections add', each becoming its --conn-* option.
CONNECTION_FIELDS = (
    Arg("conn_uri", Kind.TEXT, "Connection URI, required to add without conn_type"),
    Arg("conn_type", Kind.TEXT, "Connection type, required to add without conn_uri"),
    Arg(
        "conn_extra",
        Kind.TEXT,
        "Connection 'Extra' field (JSON), optional for add",
        secret=Secret.EXTRA,
    ),
)


# --- the multi-action APIs: variables, connections, pool --------------------------------------


def _chosen(value: Any) -> bool:
    """A boolean action's False, or a text action given as false/0/off/no, chooses nothing."""
    return value is not False and not (isinstance(value, str) and is_false_word(value))


def _one_action(values: Values, actions: tuple[str, ...], api: str) -> str | None:
    chosen = [a for a in actions if a in values and _chosen(values[a])]
    if len(chosen) > 1:
        raise RequestError(f"{api} takes one action at a time; got {chosen}")
    return chosen[0] if chosen else None


def _split_fields(text: str, count: int, form: str) -> list[str]:
    parts = text.strip().split(None, count - 1)
    if len(parts) < count - 1 or not parts:
        raise RequestError(f"expected the form '{form}', got {text!r}")
    return parts + [""] * (count - len(parts))


def plan_variables(values: Values, ctx: Context) -> Plan:
    """variables: set/get/delete/import/export one at a time; no action lists the keys."""
    action = _one_action(values, ("set", "get", "delete", "import", "export"), "variables")
    if action is None and values.get("cmd") == "set":  # the seed page's key/value form
        if "key" not in values:
            raise RequestError("cmd=set needs 'key' (and 'value')")
        key, value = values["key"], values.get("value", "")
        action = "set"
    elif action == "set":
        key, value = _split_fields(values["set"], 2, "KEY VALUE")
        key = parse_value(Arg("set", Kind.ID, ""), key, ctx)
    if action == "set":
        flags = ["--json"] if values.get("json") else []
        shown = mask_value(Secret.KEYED, value, {"key": key})
        return Plan(["variables", "set", *flags, "--", key, Masked(value, shown)])
    if action == "get":
        flags = ["--json"] if values.get("json") else []
        if "default" in values:
            flags.append(f"--default={values['default']}")
        return Plan(["variables", "get", *flags, "--", values["get"]])
    if action == "delete":
        return Plan(["variables", "delete", "--", values["delete"]])
    if action in ("import", "export"):
        return exchange_plan(["variables", action], action, values)
    json_flag = ["--output=json"] if values.get("output") == "json" else []
    return Plan(["variables", "list", *json_flag], json_output=bool(json_flag))


def exchange_plan(words: list[str], action: str, values: Values) -> Plan:
    """import/export through a file the daemon owns: export returns the file's JSON in
    ``data``; import takes JSON text (or an uploaded file) as the argument's value."""
    if action == "export":
        ignored = values["export"]
        warnings: tuple[str, ...] = ()
        if isinstance(ignored, str) and ignored.strip().lower() not in ("", *TRUE_WORDS):
            warnings = (f"export returns the JSON in 'data'; the path {ignored!r} was not used",)
        return Plan([*words, "--", EXCHANGE_FILE], warnings=warnings, export_file=True)
    content = values["import"]
    try:
        json.loads(content)
    except ValueError:
        raise RequestError(
            "import takes the JSON to import, as the value or as an uploaded file (multipart "
            "field 'import'), not a path on the server"
        ) from None
    return Plan([*words, "--", EXCHANGE_FILE], import_content=content)


def plan_connections(values: Values, ctx: Context) -> Plan:
    """connections: list (default), add (conn_id + conn_uri or conn_type), delete (conn_id),
    import (JSON), export."""
    actions = ("list", "add", "delete", "import", "export")
    action = _one_action(values, actions, "connections") or "list"
    if action in ("import", "export"):
        return exchange_plan(["connections", action], action, values)
    if action == "list":
        json_flag = ["--output=json"] if values.get("output") == "json" else []
        return Plan(["connections", "list", *json_flag], json_output=bool(json_flag))
    if "conn_id" not in values:
        raise RequestError(f"connections {action} needs 'conn_id'")
    if action == "delete":
        return Plan(["connections", "delete", "--", values["conn_id"]])
    if "conn_uri" not in values and "conn_type" not in values:
        raise RequestError("connections add needs 'conn_uri' or 'conn_type'")
    flags = [
        option(f"--conn-{arg.name.removeprefix('conn_')}", arg, values[arg.name], values)
        for arg in CONNECTION_FIELDS
        if arg.name in values
    ]
    return Plan(["connections", "add", *flags, "--", values["conn_id"]])


def plan_pool(values: Values, ctx: Context) -> Plan:
    """pool: set 'NAME SLOTS DESCRIPTION', get NAME, delete NAME; no action lists pools.
    output=json is for listing and get: the CLI's set and delete print a sentence whatever
    their -o says."""
    action = _one_action(values, ("set", "get", "delete", "import", "export"), "pool")
    if action in ("import", "export"):
        return exchange_plan(["pools", action], action, values)
    if action is None and values.get("cmd") == "set":  # the seed page's three-field form
        fields = [values.get(n, "") for n in ("pool_name", "slot_count", "pool_description")]
        action = "set"
    elif action == "set":
        fields = _split_fields(values["set"], 3, "NAME SLOTS DESCRIPTION")
    json_flag = ["--output=json"] if values.get("output") == "json" else []
    if json_flag and action in ("set", "delete"):
        raise RequestError(
            f"output=json is not supported for pool {action}: the CLI answers with a sentence; "
            "ask pool get=NAME with output=json for the pool as JSON"
        )
    if action == "set":
        name = parse_value(Arg("pool_name", Kind.ID, ""), fields[0], ctx)
        slots = parse_value(Arg("slot_count", Kind.INT, ""), fields[1], ctx)
        return Plan(["pools", "set", "--", name, slots, fields[2]])
    if action == "delete":
        return Plan(["pools", "delete", "--", values["delete"]])
    if action == "get":
        return Plan(["pools", "get", *json_flag, "--", values["get"]], json_output=bool(json_flag))
    return Plan(["pools", "list", *json_flag], json_output=bool(json_flag))


def plan_list_dags(values: Values, ctx: Context) -> Plan:
    """list_dags: 'dags list', or 'dags report' when report=true."""
    words = ["dags", "report"] if values.get("report") else ["dags", "list"]
    warnings: tuple[str, ...] = ()
    flags = []
    if "subdir" in values:
        if ctx.airflow_major == 2:
            flags.append(f"--subdir={values['subdir']}")
        else:
            warnings = (f"'subdir' was ignored: {NO_SUBDIR_ON_3['subdir']}",)
    json_output = values.get("output") == "json"
    if json_output:
        flags.append("--output=json")
    return Plan([*words, *flags], warnings, json_output)


def summarize_trigger(data: Any) -> dict[str, Any]:
    """The run that trigger_dag created (the seed did not report it)."""
    run = data[0] if isinstance(data, list) and data else data
    if not isinstance(run, dict):
        return {}
    return {
        "dag_run": {
            "dag_id": run.get("dag_id"),
            "run_id": run.get("dag_run_id") or run.get("run_id"),
            "logical_date": run.get("logical_date"),
            "state": run.get("state"),
        }
    }


def plan_dag_state_2(values: Values, ctx: Context) -> Plan:
    """dag_state on Airflow 2, whose dags state takes only a date: a run_id is looked up
    (its run's logical date) before the command runs."""
    dag_id, when = values["dag_id"], values["execution_date"]
    options = [f"--subdir={values['subdir']}"] if "subdir" in values else []
    if when[:4].isdigit() and when[4:5] == "-":  # a date, as checked by the argument's kind
        return Plan(argv=["dags", "state", *options, "--", dag_id, when])
    return Plan(argv=["dags", "state", *options, "--", dag_id, RUN_DATE], run_of=(dag_id, when))


def logical_date_of(runs: Any, run_id: str) -> str | None:
    """The logical date of ``run_id`` in `dags list-runs -o json` output, if it is there."""
    if not isinstance(runs, list):
        return None
    for run in runs:
        if isinstance(run, dict) and run.get("run_id") == run_id:
            date = run.get("execution_date") or run.get("logical_date")
            return str(date) if date else None
    return None
