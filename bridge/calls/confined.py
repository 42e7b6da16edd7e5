"""Tokens confined to some DAGs (``token add NAME --dags 'etl_*,report_daily'``): what such a
token may call, decided before anything runs, and what it is shown.

Fail closed, from the catalogue's reviewed table (``Api.confinement``), never from names:
- an API that names one DAG and acts on it alone (``ONE_DAG``) needs that DAG to be one of
  the token's; it is shown the command's stdout, never its stderr, where Airflow's own
  messages (a DAG file that does not import, a DAG it skipped) can name other DAGs;
- a list of DAGs (``DAG_LIST``) runs with JSON output and is answered whole, with the
  token's DAGs only, as a table or as JSON; it cannot stream or be a job, whose output
  would be the CLI's own;
- the versions (``NO_DAG``) say nothing of any DAG;
- everything else is refused (403), before the body is read: variables, connections,
  pools, the services, deploys, refresh_all, and the commands of the installed CLI by
  their dotted names that no one reviewed for confinement.
Arguments that name files on the server (``subdir`` reads another folder's DAGs) and the
API's ``confined_refuses`` (list_dags' ``report``) are refused to such a token too; on
Airflow 2 the bridge sets ``subdir`` itself, to the DAG's own file (:func:`pin_to_dag_file`).
The installed CLI's commands are classed by a reviewed table (``cli_classes.DAG_REPORTS``).
"""

from __future__ import annotations

import json
from typing import Any

from bridge.calls.call import Call, Caller
from bridge.catalogue.model import Api, Confinement, Kind, Use, Values
from bridge.errors import RequestError
from bridge.process.path import CommandSpec
from bridge.text.noise import filter_text, parse_json_output

# Argument kinds whose value names a file or folder on the server.
FILE_KINDS = frozenset({Kind.DAGS_PATH, Kind.SERVER_PATH, Kind.FILE})


def refuse_unconfinable(api: Api, caller: Caller) -> None:
    """A 403 for an API that cannot be confined to a DAG, called by a confined token."""
    if caller.confined and api.confinement is Confinement.REFUSED:
        raise RequestError(
            f"{api.name} cannot be confined to a DAG, and the token '{caller.name}' may only "
            "call what names one of its DAGs (docs/security.md)",
            403,
        )


def check(
    api: Api, values: Values, caller: Caller, streamed: bool, detached: bool, major: int
) -> None:
    """The call's checked values, for a confined token: its DAG one of the token's, no
    argument it may not give, those that keep it to its DAG set; a list is run for its JSON
    (the rows are filtered)."""
    if not caller.confined:
        return
    refuse_unconfinable(api, caller)
    refused = [
        arg.name
        for arg in api.args
        if values.get(arg.name) not in (None, "", False)
        and (arg.kind in FILE_KINDS or arg.name in api.confined_refuses)
    ]
    if refused:
        raise RequestError(
            f"the token '{caller.name}' is confined to some DAGs and may not give "
            f"{', '.join(refused)} to {api.name}",
            403,
        )
    if api.confinement is Confinement.ONE_DAG:
        dag_id = values.get("dag_id")
        if not isinstance(dag_id, str) or not caller.may_see(dag_id):
            raise RequestError(
                f"DAG '{dag_id}' is not one of the DAGs the token '{caller.name}' may call",
                403,
            )
    for name in api.confined_sets:
        arg = api.arg(name)
        if arg is not None and api.use_of(arg, major).use is Use.OPTION:
            values[name] = True
    if api.confinement is Confinement.DAG_LIST:
        if streamed or detached:
            raise RequestError(
                f"the token '{caller.name}' is confined to some DAGs: its {api.name} is "
                "answered whole, with its DAGs only (no stream, no detach=true)"
            )
        values["output"] = "json"  # the rows to filter; shown as the caller asked


async def pin_to_dag_file(call: Call) -> None:
    """On Airflow 2, a confined token's one-DAG command loads its DAG's own file only.

    Airflow 2 logs to stdout, and a command that loads the whole dags folder (``tasks
    test``, ``render``, ``list``...) logs there every other file that does not import, with
    its traceback; stdout is the token's to see. ``--subdir`` set to the file Airflow itself
    records for the DAG (``dags list``) keeps those out. Airflow 3 does not take ``subdir``
    and logs to stderr, which such a token is never shown."""
    if not call.caller.confined or call.api.confinement is not Confinement.ONE_DAG:
        return
    subdir = call.api.arg("subdir")
    if subdir is None or call.api.use_of(subdir, call.airflow.major).use is not Use.OPTION:
        return
    dag_id = call.values.get("dag_id")
    argv = [call.airflow.executable, "dags", "list", "--output=json"]
    spec = CommandSpec(argv, call.api.name, "find the DAG's file", call.peer)
    async with call.commands.slot(call.owner):
        listed = await call.commands.capture(spec)
    rows = parse_json_output(filter_text(listed.stdout))
    fileloc = next(
        (
            row.get("fileloc")
            for row in (rows if isinstance(rows, list) else [])
            if isinstance(row, dict) and row.get("dag_id") == dag_id
        ),
        None,
    )
    if not isinstance(fileloc, str) or not fileloc.startswith("/"):
        # Not one Airflow can load from a file it names: nothing runs that could load more.
        raise RequestError(f"The DAG ID '{dag_id}' does not exist", 404)
    call.values["subdir"] = fileloc


def withheld_streams(call: Call) -> frozenset[str]:
    """The command's output streams a confined caller is not shown as they come: the hidden
    ones (:func:`hidden_streams`), and stdout of a list (it is shown filtered, by
    :func:`listing`)."""
    hidden = hidden_streams(call)
    if call.caller.confined and call.api.confinement is Confinement.DAG_LIST:
        return hidden | {"stdout"}
    return hidden


def hidden_streams(call: Call) -> frozenset[str]:
    """The streams a confined caller is never shown, not even in part: stderr always, where
    Airflow logs other DAGs' files; stdout too where the API's command logs there on this
    major whatever file it is given (``Api.confined_hides_stdout``: Airflow 3's ``tasks
    test`` parses the whole bundle and logs to stdout)."""
    if not call.caller.confined:
        return frozenset()
    if call.airflow.major in call.api.confined_hides_stdout:
        return frozenset({"stdout", "stderr"})
    return frozenset({"stderr"})


def withheld_warning(characters: dict[str, int]) -> str:
    said = " and ".join(f"{name} ({count} characters)" for name, count in characters.items())
    verb = "is" if len(characters) == 1 else "are"
    return (
        f"{said} {verb} not shown to a token confined to some DAGs: Airflow's messages there "
        "can name other DAGs"
    )


def listing(call: Call, data: Any) -> tuple[list[dict[str, Any]], str]:
    """A list's rows that name one of the caller's DAGs (a row naming none is dropped), and
    the output the caller is shown: the rows as JSON, or as a table."""
    rows = [
        row
        for row in (data if isinstance(data, list) else [])
        if isinstance(row, dict)
        and isinstance(row.get("dag_id"), str)
        and call.caller.may_see(row["dag_id"])
    ]
    return rows, json.dumps(rows, indent=2) if call.want_json else table(rows)


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as the CLI's plain table: a header of the keys, each column as wide as its widest
    value."""
    if not rows:
        return "No data found\n"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(text) for text in column) for column in zip(columns, *cells, strict=True)]
    lines = [columns, *cells]
    return "".join(
        " | ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )
