"""The smoke set: what every Airflow minor from 2.7 to 3.3 must answer (`make smoke` runs it
against each, `make integration` against the full suite's two versions as part of it).

The calls a new user tries first (version, list_dags, list_tasks, pause, unpause,
trigger_dag, clear, render, test, a stream), then commands of the installed CLI by their
dotted names, built from that version's own parser.
"""

from __future__ import annotations

import pytest

from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from tests.helpers import (
    API,
    ClientFactory,
    call,
    call_ok,
    dag_is_paused,
    read_until,
    slow_lines,
    unique_date,
)

pytestmark = [pytest.mark.airflow, pytest.mark.smoke]
DAG = "bridge_demo"
TASKS = ("hello", "slow_lines", "templated")


async def test_version_and_lists(make_client: ClientFactory, airflow_info: AirflowInfo) -> None:
    client = await make_client()
    assert (await call_ok(client, api="version"))["output"] == airflow_info.version
    assert DAG in (await call_ok(client, api="list_dags"))["output"]["stdout"]
    listed = (await call_ok(client, api="list_tasks", dag_id=DAG))["output"]["stdout"]
    assert all(task in listed for task in TASKS), listed


async def test_pause_and_unpause(make_client: ClientFactory, settings: Settings) -> None:
    client = await make_client()
    was_paused = await dag_is_paused(settings, DAG)
    try:
        assert (await call_ok(client, api="pause", dag_id=DAG))["is_paused"] is True
        assert await dag_is_paused(settings, DAG) is True
        assert (await call_ok(client, api="unpause", dag_id=DAG))["is_paused"] is False
        assert await dag_is_paused(settings, DAG) is False
    finally:
        await call_ok(client, api="pause" if was_paused else "unpause", dag_id=DAG)


async def test_trigger_then_the_runs_task_states_and_clear(
    make_client: ClientFactory, airflow_info: AirflowInfo
) -> None:
    client = await make_client()
    triggered = await call_ok(client, api="trigger_dag", dag_id=DAG, exec_date=unique_date(2021))
    run_id = triggered["dag_run"]["run_id"]
    assert run_id, triggered
    # dag_state by run_id: Airflow 2's dags state takes only a date (the bridge looks it up).
    state = await call_ok(client, api="dag_state", dag_id=DAG, execution_date=run_id)
    assert state["output"]["stdout"].strip().startswith("queued"), state
    # tasks states-for-dag-run names its positional by version: execution_date_or_run_id
    # on 2.x, logical_date_or_run_id on 3.x; the parser says which.
    assert airflow_info.cli is not None
    command = airflow_info.cli.command(("tasks", "states-for-dag-run"))
    assert command is not None
    run_arg = [a.dest for a in command.arguments if a.positional][1]
    states = await call_ok(
        client,
        api="tasks.states-for-dag-run",
        dag_id=DAG,
        output="json",
        **{run_arg: run_id},
    )
    assert {row["task_id"] for row in states["data"]} == set(TASKS), states
    await call_ok(client, api="clear", dag_id=DAG, task_regex="hello")


async def test_render_and_test(make_client: ClientFactory) -> None:
    client = await make_client()
    rendered = await call_ok(
        client, api="render", dag_id=DAG, task_id="templated", execution_date="2024-01-02"
    )
    assert "echo run date 2024-01-02" in rendered["output"]["stdout"]
    tested = await call_ok(
        client, api="test", dag_id=DAG, task_id="hello", execution_date=unique_date()
    )
    output = tested["output"]
    assert "hello from bridge_demo" in output["stdout"] + output["stderr"]


async def test_a_stream_arrives_while_the_task_runs(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get(API, params=slow_lines(unique_date(), stream="true"))
    assert response.status == 200
    early = await read_until(response, b"first line")
    assert b"second line" not in early  # the task sleeps between its two lines
    assert b"second line" in early + await response.read()


async def test_commands_by_their_dotted_names(make_client: ClientFactory) -> None:
    client = await make_client(cli_commands=("dags.list-import-errors", "config.get-value"))
    errors = await call_ok(client, api="dags.list-import-errors", output="json")
    assert errors["data"] == [] or isinstance(errors["data"], list), errors
    value = await call_ok(client, api="config.get-value", section="core", option="load_examples")
    assert value["output"]["stdout"].strip().splitlines()[-1] in ("False", "false"), value
    # Not among the operator's patterns: a 400 naming the setting.
    status, body = await call(client, api="dags.next-execution", dag_id=DAG)
    assert status == 400 and "cli_commands" in body["output"], body


async def test_the_default_answers_what_changes_nothing(make_client: ClientFactory) -> None:
    client = await make_client()
    await call_ok(client, api="dags.list-import-errors")
    status, body = await call(client, api="config.get-value", section="core", option="x")
    assert status == 400 and "cli_commands" in body["output"], body
    status, body = await call(client, api="dags.list-import-errors", no_such="1")
    assert status == 400 and "no_such" in body["output"], body
