"""Two Airflow hosts on one machine, one PostgreSQL metadata database (issue 27, shared/API.md
"Past one host"): the bridge's host deploys through git and reads logs; the other host runs
Airflow's own services and every task.

- The other host ("worker") has Airflow's own services running: on Airflow 3 the API server,
  scheduler and DAG processor, reading DAGs from a ``GitDagBundle`` of the bare repository on
  disk; on Airflow 2 the scheduler, whose dags folder a git-sync-like loop keeps on the
  branch. Its scheduler serves its task logs (Airflow's log server, a shared secret key).
- The bridge's host has nothing running and an empty logs folder: a DAG deployed through the
  bridge (``wait=true``) is parsed on the worker, a triggered run succeeds there (on 3.x its
  bundle version is the deploy's commit), and its task's log reaches the bridge through
  Airflow's reader, buffered and followed: from the worker's log server; and, with remote
  logging on (the connection in the shared database), from an S3-compatible server (moto's
  server mode) while no log server is within the bridge's reach. With that store gone, the
  read is a 500 carrying the reader's error.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import json
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from bridge.catalogue.installed import AirflowInfo
from bridge.config.load import load
from bridge.config.settings import Settings
from bridge.http.app import create_app
from tests.demo.make_home import airflow_cfg, child_env
from tests.helpers import (
    API,
    POSTGRES,
    call,
    call_ok,
    cli_async,
    free_port,
    git,
    new_marker,
    pg,
    stop_services,
    unique_date,
    upload,
    wait_for_port,
    warm_mode,
)

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(not POSTGRES, reason="BRIDGE_TEST_POSTGRES is not set"),
    pytest.mark.skipif(not warm_mode(), reason="runs in the warm pass"),
]
BUNDLE = "team"
# A DAG as a team ships it: its one task says a line only this deploy knows.
SHIPPED = """
import datetime
try:
    from airflow.sdk import DAG, task
except ImportError:
    from airflow import DAG
    from airflow.decorators import task

with DAG(dag_id="{dag_id}", start_date=datetime.datetime(2024, 1, 1), schedule=None):
    @task
    def shipped() -> None:
        print("{line}", flush=True)

    shipped()
"""
BUNDLE_VERSION = """
import sys
from airflow.models import DagRun
from airflow.utils.session import create_session

with create_session() as session:
    run = session.query(DagRun).filter_by(dag_id=sys.argv[1], run_id=sys.argv[2]).one()
    print(run.bundle_version)
"""


@dataclass
class TwoHosts:
    remote: Path  # the team's DAG repository (bare, on disk)
    bridge_home: Path  # where the bridge runs: no services, an empty logs folder
    worker_home: Path  # where Airflow's services run every task
    settings: Settings  # the bridge's
    python: str
    database: str
    shared: dict[str, dict[str, str]]
    airflow3: bool

    @contextlib.contextmanager
    def worker_running(self, **environ: str) -> Iterator[None]:
        """Airflow's own services on the worker (``environ`` added to their environment):
        the scheduler, and on Airflow 3 the API server and DAG processor; stopped after,
        their whole sessions."""
        executable = self.settings.airflow_executable
        services = [[executable, "scheduler"]]
        api_port = None
        if self.airflow3:
            # The task runner reaches the API server's execution API. Its port is picked
            # here, as late as can be: one picked minutes earlier may be taken meanwhile.
            api_port = free_port()
            url = f"http://127.0.0.1:{api_port}/execution/"
            environ = {**environ, "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": url}
            services = [
                [executable, "api-server", "--port", str(api_port), "--workers", "1"],
                *services,
                [executable, "dag-processor"],
            ]
        started = []
        try:
            for argv in services:
                with (self.worker_home / f"{argv[1]}.log").open("ab") as log:
                    started.append(
                        subprocess.Popen(
                            argv,
                            env={**child_env(self.worker_home), **environ},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
            if api_port is not None:
                wait_for_port(api_port, started[0], "the worker's API server")
            yield
        finally:
            stop_services(started)


def write_airflow_cfg(home: Path, database: str, shared: dict[str, dict[str, str]]) -> None:
    """The home's airflow.cfg: the demo settings on ``database``, plus the settings both
    hosts share (the executor, the log server and its secret, the bundles)."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(airflow_cfg(home, free_port(), None, database))
    cfg.read_dict(shared)
    # Where a bundle's clones go: each host its own (the default is shared, under /tmp).
    cfg.read_dict({"dag_processor": {"dag_bundle_storage_path": str(home / "bundles")}})
    with (home / "airflow.cfg").open("w", encoding="utf-8") as out:
        cfg.write(out)
    (home / "dags").mkdir(exist_ok=True)


def _git_sync(remote: Path, folder: Path, stop: threading.Event) -> None:
    """git-sync, as the Helm chart's sidecar does it: the dags folder follows the branch. A
    pull that fails or hangs is tried again on the next turn, as git-sync does."""
    pull = ["git", "-C", str(folder), "pull", "--quiet", "--ff-only", str(remote), "main"]
    while not stop.wait(1.0):
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(pull, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def two_hosts(
    airflow_info: AirflowInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoHosts]:
    root = tmp_path_factory.mktemp("two-hosts")
    remote = root / "dags.git"
    git(root, "init", "--quiet", "--bare", "-b", "main", str(remote))
    seed = root / "seed"
    git(root, "clone", "--quiet", str(remote), str(seed))
    (seed / "README").write_text("The team's DAGs.\n")
    git(seed, "add", "README")
    git(seed, "-c", "user.name=team", "-c", "user.email=team@example.com", "commit", "-qm", "start")
    git(seed, "push", "--quiet", "origin", "main")

    database = "bridge_two_hosts_" + airflow_info.version.replace(".", "_")
    pg("dropdb", database)
    pg("createdb", database)
    stop_sync = threading.Event()
    syncing: threading.Thread | None = None
    try:
        url = f"{POSTGRES}/{database}"
        secret_section = "api" if airflow_info.major >= 3 else "webserver"
        shared: dict[str, dict[str, str]] = {
            "core": {"executor": "LocalExecutor", "parallelism": "4"},
            "logging": {"worker_log_server_port": str(free_port())},
            secret_section: {"secret_key": secrets.token_urlsafe(24)},
        }
        if airflow_info.major < 3:
            # How often the scheduler looks for new files in its dags folder (default 5 min).
            shared["scheduler"] = {"dag_dir_list_interval": "2"}
        else:
            bundles = [
                {
                    "name": BUNDLE,
                    "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
                    "kwargs": {"repo_url": str(remote), "tracking_ref": "main"},
                }
            ]
            shared["dag_processor"] = {
                "dag_bundle_config_list": json.dumps(bundles),
                "refresh_interval": "2",  # how often the worker fetches the bundle
            }
            shared["api_auth"] = {"jwt_secret": secrets.token_urlsafe(24)}
        bridge_home, worker_home = root / "bridge-host", root / "worker-host"
        bridge_home.mkdir()
        write_airflow_cfg(bridge_home, url, shared)
        if airflow_info.major < 3:
            git(root, "clone", "--quiet", str(remote), str(worker_home / "dags"))
        worker_home.mkdir(exist_ok=True)
        write_airflow_cfg(worker_home, url, shared)
        executable = airflow_info.executable
        subprocess.run(
            [executable, "db", "migrate"],
            env=child_env(bridge_home),
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
        if airflow_info.major < 3:
            syncing = threading.Thread(
                target=_git_sync, args=(remote, worker_home / "dags", stop_sync)
            )
            syncing.start()

        settings = load(bridge_home / "airflow.cfg", {"AIRFLOW_HOME": str(bridge_home)})
        target: dict[str, Any] = {"deploy_target": "git", "deploy_git_url": str(remote)}
        if airflow_info.major >= 3:
            environ = {
                "AIRFLOW_HOME": str(bridge_home),
                "AIRFLOW__REST_API_PLUGIN__DEPLOY_BUNDLE": BUNDLE,
            }
            settings, target = load(bridge_home / "airflow.cfg", environ), {}
        assert airflow_info.python is not None
        yield TwoHosts(
            remote,
            bridge_home,
            worker_home,
            replace(settings, airflow_executable=executable, command_timeout=600.0, **target),
            airflow_info.python,
            url,
            shared,
            airflow_info.major >= 3,
        )
    finally:
        stop_sync.set()
        if syncing is not None:
            syncing.join()
        pg("dropdb", database)


async def deployed_and_run(client: Any, two_hosts: TwoHosts, major: int) -> dict[str, str]:
    """A DAG deployed through the bridge (``wait=true``: parsed on the worker), triggered
    and run to success by the worker's scheduler; the task's identity and its line."""
    dag_id, line = new_marker("shipped"), new_marker("said on the worker")
    source = SHIPPED.format(dag_id=dag_id, line=line)
    status, body = await upload(client, f"{dag_id}.py", source, wait="true", wait_timeout="240")
    assert status == 200, (body.get("output"), body.get("warning"), body.get("deploy"))
    commit = body["deploy"]["commit"]
    assert commit == git(two_hosts.remote, "rev-parse", "main")
    parsed = body["deploy"]["parsed"]["dags"][dag_id]
    assert parsed["parsed"] is True, parsed
    if major >= 3:
        assert parsed["bundle_version"] == commit, parsed

    await call_ok(client, api="unpause", dag_id=dag_id)
    run_id = new_marker("run")
    ran = await call_ok(
        client,
        api="trigger_dag",
        dag_id=dag_id,
        run_id=run_id,
        exec_date=unique_date(2026),
        wait="true",
        wait_timeout="270",  # under the test client's own 300 s
    )
    assert ran["dag_run"]["state"] == "success", ran
    if major >= 3:
        version = await asyncio.to_thread(
            subprocess.run,
            [two_hosts.python, "-c", BUNDLE_VERSION, dag_id, run_id],
            env=child_env(two_hosts.bridge_home),
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        assert version.stdout.strip() == commit  # the run ran what was deployed
    return {"dag_id": dag_id, "task_id": "shipped", "execution_date": run_id, "line": line}


async def read_and_follow(client: Any, task: dict[str, str]) -> tuple[dict[str, Any], str]:
    """task_log of the try, buffered and followed: the buffered answer and what the follow
    said (each line once; it ends with the task)."""
    line = task["line"]
    params = {"api": "task_log", **{k: v for k, v in task.items() if k != "line"}}
    body = await call_ok(client, **params)
    assert line in body["output"], body["output"]
    assert body["task_log"]["try_number"] == 1, body["task_log"]
    response = await client.get(API, params={**params, "follow": "true", "stream": "ndjson"})
    assert response.status == 200, await response.text()
    events = [json.loads(piece) for piece in (await response.read()).splitlines()]
    followed = "".join(e["text"] for e in events if e["event"] == "output")
    assert followed.count(line) == body["output"].count(line) >= 1, followed
    result = events[-1]
    assert result["status"] == "OK" and result["task_state"] == "success", result
    return body, followed


async def test_a_deploy_runs_on_the_other_host_and_its_log_comes_from_its_log_server(
    aiohttp_client: Any, two_hosts: TwoHosts, airflow_info: AirflowInfo
) -> None:
    client = await aiohttp_client(create_app(two_hosts.settings, airflow_info))
    with two_hosts.worker_running():
        task = await deployed_and_run(client, two_hosts, airflow_info.major)
        # The log is on the worker only; the bridge reads it through Airflow's reader.
        task_logs = f"dag_id={task['dag_id']}/**/*.log"
        assert not any((two_hosts.bridge_home / "logs").glob(task_logs))
        assert any((two_hosts.worker_home / "logs").glob(task_logs))
        body, _ = await read_and_follow(client, task)
    assert body["task_log"]["source"] == "log server", body["task_log"]


# --- remote logging: the worker uploads each try's log to S3, the bridge reads it there ------

BUCKET = "bridge-logs"
REMOTE_LOGGING = {
    "remote_logging": "True",
    "remote_base_log_folder": f"s3://{BUCKET}/logs",
    "remote_log_conn_id": "s3_logs",
}


@dataclass
class S3Server:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3-compatible server (moto's server mode) with the logs bucket."""
    port = free_port()
    with (tmp_path_factory.mktemp("s3") / "moto.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, server, "the S3 server")
        url = f"http://127.0.0.1:{port}"
        bucket = urllib.request.Request(f"{url}/{BUCKET}", method="PUT")
        urllib.request.urlopen(bucket, timeout=30).close()
        yield S3Server(url, server)
    finally:
        stop_services([server])


def stored_logs(s3: str, dag_id: str) -> list[str]:
    """The keys of the bucket's objects under the DAG's logs (S3's ListObjectsV2)."""
    query = urllib.parse.urlencode({"list-type": "2", "prefix": f"logs/dag_id={dag_id}/"})
    with urllib.request.urlopen(f"{s3}/{BUCKET}?{query}", timeout=30) as listing:
        tree = ElementTree.fromstring(listing.read())
    return [key.text or "" for key in tree.iter() if key.tag.endswith("}Key")]


async def test_a_log_in_remote_logging_comes_from_the_s3_server(
    aiohttp_client: Any, two_hosts: TwoHosts, airflow_info: AirflowInfo, s3_server: S3Server
) -> None:
    # Remote logging as a team sets it up: the connection in Airflow's database (both hosts
    # read it), the settings in each host's configuration.
    extra = json.dumps({"endpoint_url": s3_server.url, "region_name": "us-east-1"})
    await cli_async(
        two_hosts.settings,
        *("connections", "add", REMOTE_LOGGING["remote_log_conn_id"], "--conn-type", "aws"),
        *("--conn-login", "testing", "--conn-password", "testing", "--conn-extra", extra),
    )
    # The bridge's host reads with remote logging on, and no log server answers there: what
    # it shows can only come from S3.
    reading_home = two_hosts.bridge_home.parent / "bridge-host-s3"
    reading_home.mkdir()
    settings = dict(two_hosts.shared)
    settings["logging"] = {**settings["logging"], **REMOTE_LOGGING}
    settings["logging"]["worker_log_server_port"] = str(free_port())
    write_airflow_cfg(reading_home, two_hosts.database, settings)
    reading = replace(
        load(reading_home / "airflow.cfg", {"AIRFLOW_HOME": str(reading_home)}),
        airflow_executable=two_hosts.settings.airflow_executable,
    )
    deploying = await aiohttp_client(create_app(two_hosts.settings, airflow_info))
    client = await aiohttp_client(create_app(reading, airflow_info))
    worker_env = {
        f"AIRFLOW__LOGGING__{key.upper()}": value for key, value in REMOTE_LOGGING.items()
    }
    with two_hosts.worker_running(**worker_env):
        task = await deployed_and_run(deploying, two_hosts, airflow_info.major)
        # The task runner uploads the log as the try ends (Airflow 3: just after the state
        # says success); nothing announces it: look, bounded.
        give_up = time.monotonic() + 120
        while not await asyncio.to_thread(stored_logs, s3_server.url, task["dag_id"]):
            assert time.monotonic() < give_up, "the worker uploaded no log to S3"
            await asyncio.sleep(0.5)
    body, _ = await read_and_follow(client, task)
    assert body["task_log"]["source"] == "remote", body["task_log"]
    assert body["task_log"]["sources"][0].startswith(f"s3://{BUCKET}/logs/"), body["task_log"]

    # The store gone: a 500 that carries the reader's own error, not a silent empty log.
    stop_services([s3_server.process])
    params = {k: v for k, v in task.items() if k != "line"}
    status, body = await call(client, api="task_log", **params)
    assert status == 500 and "Airflow's log reader failed" in body["output"], body
