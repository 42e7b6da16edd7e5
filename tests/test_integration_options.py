"""Every option the catalogue maps, run once against the real CLI (an option the installed
Airflow lacks fails there, not here); output=json where the seed's APIs offer it; secrets the
CLI echoes, masked on a live stream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.calls.formats import TEXT_RESULT_PREFIX
from bridge.catalogue.installed import AirflowInfo
from bridge.catalogue.model import Cli, Kind
from bridge.catalogue.table import APIS
from bridge.config.settings import Settings
from tests.helpers import API, ClientFactory, call, call_ok, new_marker, unique_date, warm_mode

pytestmark = [
    pytest.mark.airflow,
    # Whether the CLI takes an option does not depend on how it starts: the warm pass only.
    pytest.mark.skipif(not warm_mode(), reason="BRIDGE_TEST_WARM=0: the cold CLI run"),
]

DAG = "bridge_demo"
REQUIRED = {"dag_id": DAG, "task_id": "hello", "execution_date": "2024-01-02T03:04:05"}
# Options whose value must name something that exists in the suite's Airflow home.
KNOWN_VALUES = {"pool": "default_pool", "task_regex": "hello", "subdir": "."}
# What argparse prints when the installed CLI does not take an option (or its value). A
# command may still fail for its own reasons (a pickle id that does not exist): the option
# was taken, which is what this checks.
ARGPARSE_ERRORS = ("unrecognized arguments", "error: argument", "invalid choice")


def value_for(name: str, kind: Kind, settings: Settings) -> str:
    if name in KNOWN_VALUES:
        return KNOWN_VALUES[name]
    if kind is Kind.BOOL:
        return "true"
    if kind in (Kind.DATE, Kind.DATE_OR_RUN):
        return unique_date(2021)
    if kind is Kind.RUN_ID:
        return new_marker("options")
    if kind is Kind.JSON:
        return '{"from": "the options test"}'
    if kind is Kind.INT:
        return "1"
    if kind is Kind.SERVER_PATH:  # inside allowed_paths: the bridge's own folder
        return str(settings.allowed_paths[0] / "airflow.cfg")
    return "text"


def option_cases(major: int) -> list[tuple[str, str]]:
    """(api, argument) for every argument a Cli mapping turns into an option on ``major``."""
    cases = []
    for api in APIS:
        mapping = api.by_major.get(major)
        if api.long_running or not isinstance(mapping, Cli):
            continue  # services are the service tests'; builders are the API tests'
        cases += [(api.name, name) for name in mapping.options]
    return cases


@pytest.mark.parametrize("major", [2, 3])
async def test_every_mapped_option_is_taken_by_the_installed_cli(
    make_client: ClientFactory,
    settings: Settings,
    airflow_info: AirflowInfo,
    major: int,
) -> None:
    if major != airflow_info.major:
        pytest.skip(f"the options of Airflow {major}")
    client = await make_client(command_timeout=180.0)
    refused = []
    for api_name, option in option_cases(major):
        api = next(a for a in APIS if a.name == api_name)
        params = {"api": api_name}
        params |= {a.name: REQUIRED.get(a.name, "x") for a in api.args if a.required}
        mapping = api.by_major[major]
        assert isinstance(mapping, Cli)
        for name in mapping.also_required:  # backfill's dates on Airflow 3
            params[name] = unique_date(2021)[:10]
        if "dry_run" in mapping.options and api_name == "backfill":
            params["dry_run"] = "true"  # accepted or not, nothing is run for real
        arg = api.arg(option)
        assert arg is not None
        params.setdefault(option, value_for(option, arg.kind, settings))
        status, body = await call(client, **params)
        output = body.get("output")
        text = json.dumps(output) if not isinstance(output, str) else output
        if status == 400 or any(error in text for error in ARGPARSE_ERRORS):
            refused.append((api_name, option, status, text[-300:]))
    assert refused == []


async def test_output_json_for_trigger_dag_and_pools(
    make_client: ClientFactory, airflow_info: AirflowInfo
) -> None:
    client = await make_client()
    run_id = new_marker("json")
    body = await call_ok(client, api="trigger_dag", dag_id=DAG, run_id=run_id, output="json")
    runs = body["data"] if isinstance(body["data"], list) else [body["data"]]
    assert [run.get("dag_run_id") or run.get("run_id") for run in runs] == [run_id]
    assert body["dag_run"]["run_id"] == run_id
    pool = new_marker("pool")
    status, refused = await call(client, api="pool", set=f"{pool} 7 x", output="json")
    assert status == 400 and "pool get=NAME with output=json" in refused["output"]
    await call_ok(client, api="pool", set=f"{pool} 7 from the json test")
    body = await call_ok(client, api="pool", get=pool, output="json")
    assert [(row["pool"], str(row["slots"])) for row in body["data"]] == [(pool, "7")]


@pytest.mark.parametrize("stream", ["true", "ndjson"])
async def test_connection_passwords_are_masked_on_a_live_stream(
    make_client: ClientFactory, stream: str
) -> None:
    client = await make_client()
    secret = "s3cr3t-" + new_marker("pw")
    conn_id = new_marker("conn")
    uri = f"postgres://bridge:{secret}@db.example:5432/airflow"
    params = {"api": "connections", "add": "true", "conn_id": conn_id, "conn_uri": uri}
    response = await client.get(API, params={**params, "stream": stream})
    text = await response.text()
    assert response.status == 200
    assert conn_id in text  # the CLI's own echo came through
    assert secret not in text
    if stream == "true":
        result: dict[str, Any] = json.loads(text.rsplit(TEXT_RESULT_PREFIX, 1)[1])
    else:
        result = json.loads(text.splitlines()[-1])
    assert result["exit_code"] == 0 and "***" in result["airflow_cmd"]
