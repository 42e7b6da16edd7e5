"""Following work to its end, against Airflow with its own services really running (started
by the test: the scheduler on 2.x; the API server, scheduler and DAG processor on 3.x):
trigger_dag&wait=true follows a good run to success and a failing one to ERROR naming its
failed task, each state change streamed as it is seen; task_log&follow=true shows a running
task's lines as they are written and ends with the task."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.catalogue.installed import AirflowInfo
from tests.helpers import (
    API,
    ClientFactory,
    call,
    call_ok,
    free_port,
    new_marker,
    settings_for,
    stop_services,
    unique_date,
    wait_for_port,
    warm_mode,
)

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(not warm_mode(), reason="the same with the cold CLI: the warm pass runs it"),
]
DAG = "bridge_demo"
LONG = "bridge_long"
TICKS = 8
SET_ASIDE = """
import sys
from airflow.models import DagRun
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState

with create_session() as session:
    waiting = session.query(DagRun).filter(
        DagRun.dag_id.in_(sys.argv[1:]),
        DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING]),
    )
    for run in waiting:
        run.state = DagRunState.FAILED
"""


@pytest.fixture(scope="module")
def airflow_running(
    airflow_home: Path,
    airflow_bin: str,
    airflow_info: AirflowInfo,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Airflow's own services for the session's home, started once for this file's tests and
    stopped (their whole sessions) after."""
    settings = settings_for(airflow_home, airflow_bin)
    tmp_path = tmp_path_factory.mktemp("services")
    env = settings.child_environment(os.environ)
    executable = settings.airflow_executable
    services = [[executable, "scheduler"]]
    if airflow_info.major == 3:
        port = free_port()
        # The task runner reaches the API server's execution API; both sign and check its
        # tokens with the same secret (each makes up its own when none is configured).
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{port}/execution/"
        env["AIRFLOW__API_AUTH__JWT_SECRET"] = secrets.token_urlsafe(24)
        services = [
            [executable, "api-server", "--port", str(port), "--workers", "1"],
            [executable, "scheduler"],
            [executable, "dag-processor"],
        ]
    # Runs that other tests triggered while these DAGs were paused are still queued. Once a
    # DAG is unpaused the scheduler would run them first (one task at a time on SQLite), and
    # the runs these tests follow would wait minutes behind them: set them aside first.
    assert airflow_info.python is not None
    subprocess.run(
        [airflow_info.python, "-c", SET_ASIDE, DAG, LONG], env=env, check=True, timeout=300
    )
    started = []
    for argv in services:
        log = (tmp_path / f"{argv[1]}.log").open("wb")
        started.append(
            subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
        log.close()
    try:
        if airflow_info.major == 3:
            wait_for_port(port, started[0], "the API server")
        yield
    finally:
        stop_services(started)


async def test_trigger_and_wait_follows_the_run_to_its_end(
    make_client: ClientFactory, airflow_running: None
) -> None:
    client = await make_client()
    await call_ok(client, api="unpause", dag_id=DAG)
    try:
        # A good run: followed (buffered) until it succeeded.
        run_id = new_marker("good")
        body = await call_ok(
            client,
            api="trigger_dag",
            dag_id=DAG,
            run_id=run_id,
            exec_date=unique_date(2026),
            wait="true",
            wait_timeout="300",
        )
        assert body["dag_run"]["run_id"] == run_id and body["dag_run"]["state"] == "success"
        states = [seen["state"] for seen in body["run_states"]]
        assert states[-1] == "success" and "failed_tasks" not in body, body

        # A failing run, streamed: each state as it is seen, then ERROR naming the task.
        run_id = new_marker("bad")
        params = {
            "api": "trigger_dag",
            "dag_id": DAG,
            "run_id": run_id,
            "exec_date": unique_date(2026),
            "conf": json.dumps({"fail": True}),
            "wait": "true",
            "wait_timeout": "300",
            "stream": "ndjson",
        }
        response = await client.get(API, params=params)
        events = [json.loads(line) for line in (await response.read()).splitlines()]
        said = "".join(e["text"] for e in events if e["event"] == "output")
        assert f"run {run_id} of {DAG}: failed" in said, said
        assert said.index(f"run {run_id} of {DAG}: ") < said.index(": failed")
        result = events[-1]
        assert result["status"] == "ERROR" and result["http_response_code"] == 500, result
        assert result["failed_tasks"] == ["hello"] and result["state"] == "failed", result
        assert "failed tasks: hello" in result["warning"]
        # wait_timeout ends the wait, not the run: a 504 that says it goes on.
        status, body = await call(
            client,
            api="trigger_dag",
            dag_id=DAG,
            run_id=new_marker("slow"),
            exec_date=unique_date(2026),
            wait="true",
            wait_timeout="0",
        )
        assert status == 504 and "it goes on" in body["warning"], body
    finally:
        await call_ok(client, api="pause", dag_id=DAG)


async def test_task_log_follows_a_running_task(
    make_client: ClientFactory, airflow_running: None
) -> None:
    client = await make_client()
    await call_ok(client, api="unpause", dag_id=LONG)
    try:
        run_id = new_marker("log")
        await call_ok(
            client,
            api="trigger_dag",
            dag_id=LONG,
            run_id=run_id,
            exec_date=unique_date(2026),
            conf=json.dumps({"ticks": TICKS}),
        )
        task = {"dag_id": LONG, "task_id": "ticks", "execution_date": run_id}
        params = {"api": "task_log", **task, "follow": "true", "stream": "ndjson"}
        response = await client.get(API, params=params)
        assert response.status == 200, await response.text()
        said = ""
        while "tick 1\n" not in said:  # waits for the scheduler to start the task
            event = json.loads(await response.content.readline())
            assert event["event"] == "output", event
            said += event["text"]
        # The first line arrived while the task still runs.
        state = await call_ok(client, api="task_state", **task)
        assert "running" in state["output"]["stdout"], state
        events = [json.loads(line) for line in (await response.read()).splitlines()]
        said += "".join(e["text"] for e in events if e["event"] == "output")
        ticks = [int(word) for word in re.findall(r"tick (\d+)", said)]
        assert ticks == list(range(1, TICKS + 1)), said
        result = events[-1]
        assert result["event"] == "result" and result["status"] == "OK", result
        assert result["task_state"] == "success", result
        assert result["task_log"]["try_number"] == 1 and result["task_log"]["run_id"] == run_id

        # Afterwards, buffered: the whole log of the latest try; a try that never was: 404.
        body = await call_ok(client, api="task_log", **task)
        assert f"tick {TICKS}" in body["output"] and body["task_log"] == result["task_log"]
        raw = await call_ok(client, api="task_log", **task, raw="true")
        assert f"tick {TICKS}" in raw["output"]
        status, body = await call(client, api="task_log", **task, try_number="2")
        assert status == 404 and "no log of try 2" in body["output"], body
        # Following a task the run does not have: a 404 before any stream, not a long wait.
        status, body = await call(client, **{**params, "task_id": "no_such_task", "stream": "true"})
        assert status == 404 and "'no_such_task'" in body["output"], body
    finally:
        await call_ok(client, api="pause", dag_id=LONG)
