"""task_log through Airflow's own log reader (issue 27), against real Airflow: a try whose log
is not in the bridge's logs folder but on the log server of the worker that ran it.

Two hosts on one machine: the "worker" is the session's Airflow home with a logs folder of its
own, served by Airflow's ``serve_logs`` on a free port with a shared secret key; the bridge
runs on a second home (the same metadata database and DAGs) whose logs folder is empty and
whose ``worker_log_server_port`` is that port. The try is the worker's: its state, its try
number and its hostname (``socket.getfqdn()``, as Airflow's default ``hostname_callable``
records it) set in the database, its log lines written into the worker's folder under the
name Airflow renders, the way a task there writes them. Read whole, raw and followed live
(each line once: the reader's own continuation), then a 404 once the log server is gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from bridge.http.app import create_app
from tests.helpers import API, call, call_ok, cli_async, free_port, new_marker, settings_for

pytestmark = [pytest.mark.airflow]
DAG, TASK = "bridge_demo", "templated"
HANG = 300.0  # a hang detector: a follow ends within a poll or two of the try's end
# The try as a worker left it: its state, try 1, the worker's hostname, and a line appended
# to its log, in the worker's logs folder, under the name Airflow renders for it.
PLANT = """
import socket, sys
from pathlib import Path
from airflow.models.taskinstance import TaskInstance
from airflow.utils.log.file_task_handler import FileTaskHandler
from airflow.utils.session import create_session

dag_id, task_id, run_id, state, folder, text = sys.argv[1:7]

def planted(session):
    ti = session.query(TaskInstance).filter(
        TaskInstance.dag_id == dag_id,
        TaskInstance.task_id == task_id,
        TaskInstance.run_id == run_id,
        TaskInstance.map_index == -1,
    ).one()
    ti.try_number = 1
    ti.state = state
    ti.hostname = socket.getfqdn()
    return ti

with create_session() as session:
    planted(session)
with create_session() as session:
    # Airflow 2 renders the name in a session of its own, which ends this one.
    path = Path(folder) / FileTaskHandler(folder)._render_filename(planted(session), 1)
path.parent.mkdir(parents=True, exist_ok=True)
with path.open("a", encoding="utf-8") as log:
    log.write(text)
"""


@dataclass
class Worker:
    """The worker's side: its home's settings, logs folder, log server and secret."""

    settings: Settings
    python: str
    folder: Path
    port: int
    secret: str
    server: subprocess.Popen[bytes]

    async def plant(self, run_id: str, state: str, line: str, major: int) -> None:
        """The try in ``state``, with ``line`` written to its log as the task writes it."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        if major >= 3:
            record = {"timestamp": f"{stamp}.000000Z", "level": "info", "event": line}
            text = json.dumps({**record, "logger": "task"}) + "\n"
        else:
            text = f"[{stamp}.000+0000] {{demo.py:1}} INFO - {line}\n"
        argv = [self.python, "-c", PLANT, DAG, TASK, run_id, state, str(self.folder), text]
        env = self.settings.child_environment(os.environ)
        done = await asyncio.to_thread(
            subprocess.run, argv, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]


def _secret_env(major: int, secret: str) -> dict[str, str]:
    # Airflow 2 signs served-log requests with [webserver] secret_key, Airflow 3 with [api].
    section = "API" if major >= 3 else "WEBSERVER"
    return {f"AIRFLOW__{section}__SECRET_KEY": secret}


@pytest.fixture(scope="module")
def worker(
    airflow_home: Path,
    airflow_bin: str,
    airflow_info: AirflowInfo,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    """Airflow's own log server for the worker's logs folder, stopped (its whole session)
    after the module's tests."""
    assert airflow_info.python is not None
    settings = settings_for(airflow_home, airflow_bin)
    folder = tmp_path_factory.mktemp("worker-logs")
    port, secret = free_port(), secrets.token_urlsafe(24)
    env = settings.child_environment(os.environ)
    env.update(
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(folder),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(port),
        **_secret_env(airflow_info.major, secret),
    )
    out = (folder.parent / f"{folder.name}-serve-logs.log").open("wb")
    server = subprocess.Popen(
        [
            airflow_info.python,
            "-c",
            "from airflow.utils.serve_logs import serve_logs; serve_logs()",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    try:
        _wait_for_port(port, server)
        yield Worker(settings, airflow_info.python, folder, port, secret, server)
    finally:
        with _gone():
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with _gone():
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()


class _gone:
    """Ignore a process group that already ended."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *_: Any) -> bool:
        return kind is ProcessLookupError


def _wait_for_port(port: int, server: subprocess.Popen[bytes]) -> None:
    """Until the log server listens. Another process's readiness has no event to await
    here: look, bounded in time (as the runs tests wait for the API server)."""
    give_up = time.monotonic() + 180
    while time.monotonic() < give_up:
        assert server.poll() is None, "serve_logs exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"serve_logs did not listen on {port}")


def _bridge_home(airflow_home: Path, worker: Worker, major: int, home: Path) -> Path:
    """A second home on the worker's database and DAGs: its own, empty logs folder, the
    worker's log server port, the same secret key."""
    text = (airflow_home / "airflow.cfg").read_text(encoding="utf-8")
    logs = home / "logs"
    logs.mkdir(parents=True)
    text = re.sub(
        r"(?m)^base_log_folder = .*$",
        f"base_log_folder = {logs}\nworker_log_server_port = {worker.port}",
        text,
    )
    section = "api" if major >= 3 else "webserver"
    text += f"\n[{section}]\nsecret_key = {worker.secret}\n"
    (home / "airflow.cfg").write_text(text, encoding="utf-8")
    return logs


async def test_a_log_on_the_workers_log_server_is_read_and_followed(
    aiohttp_client: Any,
    airflow_home: Path,
    airflow_bin: str,
    airflow_info: AirflowInfo,
    worker: Worker,
    tmp_path: Path,
) -> None:
    major = airflow_info.major
    home = tmp_path / "bridge-home"
    logs = await asyncio.to_thread(_bridge_home, airflow_home, worker, major, home)
    cli = airflow_info.cli
    assert cli is not None and cli.task_logs is not None
    # What the bridge's home says of [logging], as detection would read it there.
    info = replace(
        airflow_info, cli=replace(cli, task_logs=replace(cli.task_logs, base_folder=str(logs)))
    )
    settings = settings_for(home, airflow_bin, warm_helper=False)
    client = await aiohttp_client(create_app(settings, info))

    run_id = new_marker("served")
    await cli_async(worker.settings, "dags", "trigger", f"--run-id={run_id}", DAG)
    await worker.plant(run_id, "running", "served line 1", major)
    task = {"dag_id": DAG, "task_id": TASK, "execution_date": run_id}
    params = {"api": "task_log", **task, "follow": "true", "stream": "ndjson"}
    response = await client.get(API, params=params)
    assert response.status == 200, await response.text()
    said = await asyncio.wait_for(_read_until(response, "served line 1"), HANG)
    await worker.plant(run_id, "running", "served line 2", major)
    said += await asyncio.wait_for(_read_until(response, "served line 2"), HANG)
    await worker.plant(run_id, "success", "served line 3", major)
    events = [
        json.loads(line) for line in (await asyncio.wait_for(response.read(), HANG)).splitlines()
    ]
    said += "".join(event["text"] for event in events if event["event"] == "output")
    # Each line once: the reader went on from where it was, it did not read all again.
    assert [said.count(f"served line {n}") for n in (1, 2, 3)] == [1, 1, 1], said
    result = events[-1]
    assert result["event"] == "result" and result["status"] == "OK", result
    assert result["task_state"] == "success", result
    served = f"http://{socket.getfqdn()}:{worker.port}/log/"
    described = result["task_log"]
    assert described["source"] == "log server" and described["try_number"] == 1, described
    assert described["sources"][0].startswith(served) and described["log_file"] is None

    body = await call_ok(client, api="task_log", **task)
    assert re.findall(r"served line \d", body["output"]) == [f"served line {n}" for n in (1, 2, 3)]
    assert body["task_log"] == described, body
    if major >= 3:  # raw: the JSON lines the reader gives
        raw = await call_ok(client, api="task_log", **task, raw="true")
        assert '"event":"served line 1"' in raw["output"], raw
    streamed = await client.get(API, params={"api": "task_log", **task, "stream": "true"})
    assert "served line 3" in await streamed.text()
    status, body = await call(client, api="task_log", **task, try_number="2")
    assert status == 404 and "no log of try 2" in body["output"], body

    # The log server gone: Airflow's reader finds nothing either, and says why.
    os.killpg(worker.server.pid, signal.SIGTERM)
    await asyncio.to_thread(worker.server.wait, 60)
    status, body = await call(client, api="task_log", **task)
    assert status == 404 and "Could not read served logs" in body["output"], body


async def _read_until(response: Any, text: str) -> str:
    """The output of an ndjson stream until ``text`` arrived in it."""
    said = ""
    while text not in said:
        line = await response.content.readline()
        assert line, f"the stream ended before {text!r}: {said[-500:]!r}"
        event = json.loads(line)
        assert event["event"] in ("job", "output"), event
        said += event.get("text", "")
    return said
