"""Every seed API over HTTP against the real Airflow, with its effect checked in Airflow."""

from __future__ import annotations

import json

import pytest

import bridge
from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from tests.helpers import (
    ClientFactory,
    call,
    call_ok,
    cli_async,
    cli_json,
    dag_is_paused,
    new_marker,
    unique_date,
)

pytestmark = pytest.mark.airflow
DAG = "bridge_demo"


async def test_versions(make_client: ClientFactory, airflow_info: AirflowInfo) -> None:
    client = await make_client()
    assert (await call_ok(client, api="version"))["output"] == airflow_info.version
    body = await call_ok(client, api="rest_api_plugin_version")
    assert body["output"] == bridge.__version__


async def test_pause_and_unpause_change_is_paused(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client()
    # The envelope says the state the call leaves (Airflow 3 prints the one before it).
    assert (await call_ok(client, api="unpause", dag_id=DAG))["is_paused"] is False
    assert await dag_is_paused(settings, DAG) is False
    body = await call_ok(client, api="pause", dag_id=DAG)
    assert body["exit_code"] == 0 and body["is_paused"] is True
    assert await dag_is_paused(settings, DAG) is True


async def test_variables_round_trip_a_value_with_spaces(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client()
    await call_ok(client, api="variables", set="bridge_greeting hello big  world")
    assert (
        await cli_async(settings, "variables", "get", "bridge_greeting")
    ).strip() == "hello big  world"
    body = await call_ok(client, api="variables", get="bridge_greeting")
    assert body["output"]["stdout"].strip() == "hello big  world"
    await call_ok(client, api="variables", cmd="set", key="bridge_form", value="from the form")
    assert (await cli_async(settings, "variables", "get", "bridge_form")).strip() == "from the form"
    listed = await call_ok(client, api="variables", output="json")
    assert {"bridge_greeting", "bridge_form"} <= {row["key"] for row in listed["data"]}
    await call_ok(client, api="variables", delete="bridge_form")
    status, gone = await call(client, api="variables", get="bridge_form")
    assert status == 500 and gone["exit_code"] != 0
    defaulted = await call_ok(client, api="variables", get="bridge_form", default="fallback")
    assert defaulted["output"]["stdout"].strip() == "fallback"


async def test_connections_add_list_delete_without_leaking_the_password(
    make_client: ClientFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    conn_id = new_marker("conn")
    secret = "s3cr3t-" + conn_id
    uri = f"postgres://bridge_user:{secret}@db.example:5432/airflow"
    body = await call_ok(client, api="connections", add="true", conn_id=conn_id, conn_uri=uri)
    assert secret not in json.dumps(body)
    assert secret not in caplog.text
    listed = await call_ok(client, api="connections", list="true", output="json")
    assert conn_id in {row["conn_id"] for row in listed["data"]}
    await call_ok(client, api="connections", delete="true", conn_id=conn_id)
    rows = await cli_json(settings, "connections", "list")
    assert conn_id not in {row["conn_id"] for row in rows}


async def test_pool_set_get_delete(make_client: ClientFactory, settings: Settings) -> None:
    client = await make_client()
    await call_ok(client, api="pool", set="bridge_pool 3 pool for bridge tests")
    got = await call_ok(client, api="pool", get="bridge_pool", output="json")
    assert got["data"][0]["pool"] == "bridge_pool"
    assert str(got["data"][0]["slots"]) == "3"
    assert got["data"][0]["description"] == "pool for bridge tests"
    await call_ok(
        client,
        api="pool",
        cmd="set",
        pool_name="bridge_pool2",
        slot_count="2",
        pool_description="x",
    )
    await call_ok(client, api="pool", delete="bridge_pool")
    await call_ok(client, api="pool", delete="bridge_pool2")
    names = {row["pool"] for row in await cli_json(settings, "pools", "list")}
    assert not {"bridge_pool", "bridge_pool2"} & names


async def test_trigger_dag_creates_that_run_with_that_conf(
    make_client: ClientFactory, settings: Settings, airflow_info: AirflowInfo
) -> None:
    client = await make_client()
    run_id = new_marker("run")
    date = unique_date()
    body = await call_ok(
        client,
        api="trigger_dag",
        dag_id=DAG,
        run_id=run_id,
        conf='{"answer": 42}',
        exec_date=date,
    )
    assert body["dag_run"]["run_id"] == run_id
    assert body["dag_run"]["logical_date"].startswith(date[:10])
    state = await cli_async(settings, "dags", "state", DAG, date)
    assert state.strip().startswith("queued")
    assert json.loads(state.split(",", 1)[1]) == {"answer": 42}
    dag_state = await call_ok(client, api="dag_state", dag_id=DAG, execution_date=date)
    assert dag_state["output"]["stdout"].strip().startswith("queued")
    # By its run_id too: Airflow 2's dags state takes only a date; the bridge looks it up.
    by_run_id = await call_ok(client, api="dag_state", dag_id=DAG, execution_date=run_id)
    assert by_run_id["output"]["stdout"].strip().startswith("queued"), by_run_id
    if airflow_info.major == 2:  # the lookup finds no such run: the caller's mistake
        status, body = await call(client, api="dag_state", dag_id=DAG, execution_date="no_run")
        assert status == 400 and "no run with run_id 'no_run'" in body["output"], body
    cleared = await call_ok(client, api="clear", dag_id=DAG, task_regex="hello")
    assert cleared["exit_code"] == 0


async def test_test_runs_a_task(make_client: ClientFactory) -> None:
    client = await make_client()
    body = await call_ok(
        client, api="test", dag_id=DAG, task_id="hello", execution_date=unique_date()
    )
    assert "hello from bridge_demo" in body["output"]["stdout"] + body["output"]["stderr"]


async def test_render_shows_the_templated_command(make_client: ClientFactory) -> None:
    client = await make_client()
    body = await call_ok(
        client, api="render", dag_id=DAG, task_id="templated", execution_date="2024-01-02"
    )
    assert "echo run date 2024-01-02" in body["output"]["stdout"]


async def test_list_tasks(make_client: ClientFactory, airflow_info: AirflowInfo) -> None:
    client = await make_client()
    body = await call_ok(client, api="list_tasks", dag_id=DAG)
    assert body["output"]["stdout"].split() == ["hello", "slow_lines", "templated"]
    status, tree = await call(client, api="list_tasks", dag_id=DAG, tree="true")
    if airflow_info.major == 3:
        assert status == 400 and "tree" in tree["output"]
    else:
        assert status == 200 and "slow_lines" in tree["output"]["stdout"]


async def test_list_dags_table_json_and_report(make_client: ClientFactory) -> None:
    client = await make_client()
    table = await call_ok(client, api="list_dags")
    assert DAG in table["output"]["stdout"]
    as_json = await call_ok(client, api="list_dags", output="json")
    assert DAG in {row["dag_id"] for row in as_json["data"]}
    report = await call_ok(client, api="list_dags", report="true")
    assert "bridge_demo.py" in report["output"]["stdout"]


async def test_task_level_apis(
    make_client: ClientFactory, settings: Settings, airflow_info: AirflowInfo
) -> None:
    client = await make_client()
    run_id, date = new_marker("run"), unique_date()
    await call_ok(client, api="trigger_dag", dag_id=DAG, run_id=run_id, exec_date=date)
    # Task-level APIs take the run_id as well as the date.
    args = {"dag_id": DAG, "task_id": "hello", "execution_date": run_id}
    assert (await call_ok(client, api="task_state", **args))["output"]["stdout"] == "None\n"
    deps = await call_ok(client, api="task_failed_deps", **args)
    assert "Dagrun Running" in deps["output"]["stdout"]
    if airflow_info.major == 3:
        status, body = await call(client, api="run", **args)
        assert status == 400
        assert "trigger_dag" in body["output"]
        return
    await call_ok(client, api="run", local="true", ignore_all_dependencies="true", **args)
    assert (await cli_async(settings, "tasks", "state", DAG, "hello", run_id)).strip() == "success"


async def test_backfill(
    make_client: ClientFactory, settings: Settings, airflow_info: AirflowInfo
) -> None:
    client = await make_client()
    day = unique_date(2022)[:10]
    if airflow_info.major == 3:
        status, body = await call(client, api="backfill", dag_id=DAG, start_date=day)
        assert status == 400 and "end_date" in body["output"]
        await call_ok(client, api="backfill", dag_id=DAG, start_date=day, end_date=day)
        runs = await cli_json(settings, "dags", "list-runs", DAG)
        assert f"backfill__{day}T00:00:00+00:00" in {r["run_id"] for r in runs}
        return
    await call_ok(
        client, api="backfill", dag_id=DAG, start_date=day, end_date=day, mark_success="true"
    )
    assert (await cli_async(settings, "dags", "state", DAG, day)).strip().startswith("success")


async def test_kerberos_reports_the_cli_failure(make_client: ClientFactory) -> None:
    client = await make_client(command_timeout=120.0)
    status, body = await call(client, api="kerberos", principal="bridge@EXAMPLE.COM")
    assert status == 500
    assert body["exit_code"] != 0
    assert "kinit" in body["output"]["stderr"] + body["output"]["stdout"]


@pytest.mark.parametrize(
    ("api", "reason"),
    [("worker", "celery"), ("flower", "celery"), ("serve_logs", "scheduler")],
)
async def test_unavailable_apis_say_why(make_client: ClientFactory, api: str, reason: str) -> None:
    client = await make_client()
    status, body = await call(client, api=api)
    assert status == 400
    assert reason in body["output"]
