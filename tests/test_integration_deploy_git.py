"""deploy_dag and delete_dag through a git deploy target against the real Airflow
(shared/API.md, "Past one host"): a bare repository on disk is the team's DAG repository, and
this host's dags folder is a checkout of it, brought up to date as git-sync would; the import
check runs in Airflow's interpreter against the branch's own tree."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bridge.catalogue.installed import AirflowInfo
from bridge.config.load import load
from bridge.config.settings import Settings
from bridge.http.app import create_app
from tests.demo.make_home import DEMO_DAGS, make_home
from tests.helpers import (
    DAG_SOURCE,
    airflow_env,
    call,
    call_ok,
    cli_async,
    git,
    new_marker,
    settings_for,
    upload,
    warm_mode,
)
from tests.test_deploy_targets import commit_all, tree_of

pytestmark = [
    pytest.mark.airflow,
    # A home of its own costs a migration: once per Airflow version, in the warm pass.
    pytest.mark.skipif(not warm_mode(), reason="runs in the warm pass"),
]


@pytest.fixture(scope="module")
def git_home(airflow_info: AirflowInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An Airflow home whose dags folder is a checkout of a bare repository on disk."""
    root = tmp_path_factory.mktemp("git-deploy")
    remote = root / "dags.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(remote)], check=True)
    seed = root / "seed"
    subprocess.run(["git", "clone", "--quiet", str(remote), str(seed)], check=True)
    for dag in DEMO_DAGS.glob("*.py"):
        shutil.copy2(dag, seed / dag.name)
    commit_all(seed, "the demo DAGs")
    home = root / "home"
    home.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(remote), str(home / "dags")], check=True)
    make_home(airflow_info.executable, home)
    yield home


def synced(home: Path) -> None:
    """What git-sync does on every Airflow host: the dags folder follows the branch."""
    git(home / "dags", "pull", "--quiet", "--ff-only", "origin", "main")


def remote_of(home: Path) -> Path:
    return home.parent / "dags.git"


async def dag_ids(settings: Settings) -> set[str]:
    listed = json.loads(await cli_async(settings, "dags", "list", "--output=json"))
    return {row["dag_id"] for row in listed}


async def test_deploy_and_delete_through_git_reach_airflow_by_the_branch(
    aiohttp_client: Any, git_home: Path, airflow_info: AirflowInfo
) -> None:
    remote = remote_of(git_home)
    settings = settings_for(
        git_home, airflow_info.executable, deploy_target="git", deploy_git_url=str(remote)
    )
    client = await aiohttp_client(create_app(settings, airflow_info))
    dag_id = new_marker("gitdag")
    source = DAG_SOURCE.format(dag_id=dag_id, task_id="one")

    broken = "import airflow\nraise RuntimeError('no such DAG')\n"
    before = git(remote, "rev-parse", "main")
    status, body = await upload(client, f"{dag_id}_broken.py", broken)
    assert status == 400 and "does not import" in body["output"], body
    assert git(remote, "rev-parse", "main") == before

    status, body = await upload(client, f"{dag_id}.py", source)
    assert status == 200, body
    assert body["output"]["dag_ids"] == [dag_id]
    assert body["deploy"]["commit"] == git(remote, "rev-parse", "main")
    assert tree_of(remote)[f"{dag_id}.py"] == source.strip("\n")
    assert not (git_home / "dags" / f"{dag_id}.py").exists()  # until the host syncs

    synced(git_home)
    await call_ok(client, api="refresh_all")
    assert dag_id in await dag_ids(settings)
    await call_ok(client, api="trigger_dag", dag_id=dag_id)

    status, body = await call(client, api="delete_dag", dag_id=dag_id, metadata="true")
    assert status == 200, body
    assert body["deploy"]["path"] == f"{dag_id}.py"
    assert f"{dag_id}.py" not in tree_of(remote)
    assert body["deploy"]["metadata_exit_code"] == 0
    synced(git_home)
    await call_ok(client, api="refresh_all")
    assert dag_id not in await dag_ids(settings)
    assert "bridge_demo" in await dag_ids(settings)  # the other DAGs stay


# --- deploy_dag&wait=true: answered once Airflow parsed what was deployed ---------------------

HOST_ONLY_FAILURE = """
import os
if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "HOST_LACKS_IT")):
    raise RuntimeError("a module this host lacks")
"""


class PushSignal:
    """The remote's post-receive hook writes to a FIFO this test holds open: the push is an
    event the test awaits (while the deploy, waiting for a parse, has not answered)."""

    def __init__(self, remote: Path, folder: Path) -> None:
        self.fifo = folder / "pushed.fifo"
        os.mkfifo(self.fifo)
        self.fd = os.open(self.fifo, os.O_RDWR)  # never blocks, and keeps the hook's write
        self.hook = remote / "hooks" / "post-receive"
        self.hook.write_text(f"#!/bin/sh\necho pushed > '{self.fifo}'\n")
        self.hook.chmod(0o755)
        self.pushed = asyncio.ensure_future(asyncio.to_thread(os.read, self.fd, 64))

    async def close(self) -> None:
        self.hook.unlink()
        if not self.pushed.done():
            os.write(self.fd, b"nobody pushed\n")  # ends the read of the thread
        await asyncio.gather(self.pushed, return_exceptions=True)
        os.close(self.fd)


# Airflow 2's DAG processor for one file, as its scheduler runs it (its standalone command
# refuses SQLite): it parses the file, writes its DAGs and source, and records an import error.
PROCESS_ONE_FILE = (
    "import logging, sys\n"
    "from airflow.dag_processing.processor import DagFileProcessor\n"
    "processor = DagFileProcessor(None, sys.argv[1], logging.getLogger('host'))\n"
    "processor.process_file(sys.argv[2], [])\n"
)


async def host_parses(settings: Settings, airflow: AirflowInfo, file: Path) -> None:
    """The host's Airflow parses the deployed file, as its DAG processor does: on Airflow 2
    that processor's own code for the file (only it records import errors there), on
    Airflow 3 a reserialize (which records them too)."""
    if airflow.major >= 3:
        await cli_async(settings, "dags", "reserialize")
        return
    assert airflow.python is not None
    argv = [airflow.python, "-c", PROCESS_ONE_FILE, str(settings.dags_folder), str(file)]
    done = await asyncio.to_thread(
        subprocess.run,
        argv,
        env=airflow_env(settings),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


async def deploy_parsed_by_the_host(
    client: Any,
    home: Path,
    settings: Settings,
    name: str,
    source: str,
    tmp_path: Path,
    airflow: AirflowInfo,
) -> tuple[int, dict[str, Any]]:
    """deploy_dag&wait=true while the other host is idle; once the push landed, that host
    syncs and parses (reserialize): the answer comes after that."""
    signal = PushSignal(remote_of(home), tmp_path)
    try:
        deploying = asyncio.ensure_future(
            upload(client, name, source, force="true", wait="true", wait_timeout="240")
        )
        done, _ = await asyncio.wait(
            {deploying, signal.pushed}, return_when=asyncio.FIRST_COMPLETED
        )
        assert signal.pushed in done, deploying.result()
        assert not deploying.done()  # nothing has parsed it yet
        synced(home)
        await host_parses(settings, airflow, home / "dags" / name)
        return await deploying
    finally:
        await signal.close()


async def git_target(aiohttp_client: Any, home: Path, airflow: AirflowInfo) -> tuple[Settings, Any]:
    """A bridge whose deploy target is the branch the home's dags folder follows."""
    settings = settings_for(
        home, airflow.executable, deploy_target="git", deploy_git_url=str(remote_of(home))
    )
    return settings, await aiohttp_client(create_app(settings, airflow))


async def test_deploy_wait_answers_once_the_synced_host_parsed_that_version(
    aiohttp_client: Any, git_home: Path, airflow_info: AirflowInfo, tmp_path: Path
) -> None:
    settings, client = await git_target(aiohttp_client, git_home, airflow_info)
    dag_id = new_marker("waitdag")
    first = DAG_SOURCE.format(dag_id=dag_id, task_id="one")

    # Nobody syncs: the wait ends at wait_timeout, the deploy stands.
    status, body = await upload(client, f"{dag_id}.py", first, wait="true", wait_timeout="1")
    assert status == 504, body
    assert "had not parsed the deployed version" in body["warning"], body
    assert body["deploy"]["parsed"]["dags"].get(dag_id, {}).get("parsed") is not True
    assert f"{dag_id}.py" in tree_of(remote_of(git_home))

    # The host syncs and parses only after the push: the answer waits for that.
    second = DAG_SOURCE.format(dag_id=dag_id, task_id="two")
    status, body = await deploy_parsed_by_the_host(
        client, git_home, settings, f"{dag_id}.py", second, tmp_path, airflow_info
    )
    assert status == 200, body
    parsed = body["deploy"]["parsed"]
    assert parsed["dags"][dag_id]["parsed"] is True, parsed
    assert parsed["import_errors"] == []
    listed = (await cli_async(settings, "tasks", "list", dag_id)).split()
    assert "two" in listed and "one" not in listed, listed  # Airflow has the second version


async def test_deploy_wait_answers_the_import_error_of_the_host_that_parsed_it(
    aiohttp_client: Any, git_home: Path, airflow_info: AirflowInfo, tmp_path: Path
) -> None:
    settings, client = await git_target(aiohttp_client, git_home, airflow_info)
    dag_id = new_marker("hostfails")
    source = HOST_ONLY_FAILURE + DAG_SOURCE.format(dag_id=dag_id, task_id="one")
    (git_home / "dags" / "HOST_LACKS_IT").write_text("")
    try:
        status, body = await deploy_parsed_by_the_host(
            client, git_home, settings, f"{dag_id}.py", source, tmp_path, airflow_info
        )
    finally:
        (git_home / "dags" / "HOST_LACKS_IT").unlink()
    assert status == 500, body
    errors = body["deploy"]["parsed"]["import_errors"]
    assert errors and all(e["filename"].endswith(f"{dag_id}.py") for e in errors), errors
    assert "a module this host lacks" in errors[0]["stacktrace"]
    assert "the file stays deployed" in body["warning"]
    assert f"{dag_id}.py" in tree_of(remote_of(git_home))


# --- deploy_bundle: the git target taken from an Airflow 3 DAG bundle -------------------------

BUNDLES_ENV = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"


def bundle_settings(home: Path, airflow: str, conn_id: str) -> Settings:
    """The bridge's settings with deploy_bundle = team: a GitDagBundle that tracks main's
    team/ folder of the repository named by Airflow's connection ``conn_id``."""
    bundles = [
        {
            "name": "team",
            "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
            "kwargs": {"tracking_ref": "main", "subdir": "team", "git_conn_id": conn_id},
        }
    ]
    environ = {
        "AIRFLOW_HOME": str(home),
        BUNDLES_ENV: json.dumps(bundles),
        "AIRFLOW__REST_API_PLUGIN__DEPLOY_BUNDLE": "team",
    }
    return replace(load(home / "airflow.cfg", environ), airflow_executable=airflow)


async def test_deploy_bundle_commits_where_the_bundle_reads_through_its_connection(
    aiohttp_client: Any,
    git_home: Path,
    airflow_info: AirflowInfo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if airflow_info.major < 3:
        pytest.skip("DAG bundles are Airflow 3's")
    plain = settings_for(git_home, airflow_info.executable)
    remote = remote_of(git_home)
    conn_id = new_marker("team_repo")
    await cli_async(
        plain, "connections", "add", conn_id, "--conn-type", "git", "--conn-host", str(remote)
    )
    settings = bundle_settings(git_home, airflow_info.executable, conn_id)
    assert settings.deploy_git_connection == conn_id
    client = await aiohttp_client(create_app(settings, airflow_info))
    dag_id = new_marker("bundled")
    status, body = await upload(
        client, f"{dag_id}.py", DAG_SOURCE.format(dag_id=dag_id, task_id="one")
    )
    assert status == 200, body
    assert body["deploy"]["path"] == f"team/{dag_id}.py"
    assert body["deploy"]["commit"] == git(remote, "rev-parse", "main")
    assert f"team/{dag_id}.py" in tree_of(remote)

    # A token in the connection goes to git inside the URL, and nowhere else.
    secret = new_marker("tok")
    https_id = new_marker("team_https")
    await cli_async(
        plain,
        "connections",
        "add",
        https_id,
        "--conn-type",
        "git",
        "--conn-host",
        "https://127.0.0.1:9/team/dags.git",
        "--conn-login",
        "bot",
        "--conn-password",
        secret,
    )
    settings = bundle_settings(git_home, airflow_info.executable, https_id)
    client = await aiohttp_client(create_app(settings, airflow_info))
    status, body = await upload(
        client, f"{dag_id}_2.py", DAG_SOURCE.format(dag_id=dag_id, task_id="x")
    )
    assert status == 502, body  # nothing listens there
    assert "127.0.0.1:9" in body["output"]
    assert secret not in json.dumps(body) and secret not in caplog.text


async def test_deploy_wait_to_the_folder_answers_once_this_host_reserialized_it(
    aiohttp_client: Any, git_home: Path, airflow_info: AirflowInfo
) -> None:
    settings = settings_for(git_home, airflow_info.executable)  # deploy_target = folder
    client = await aiohttp_client(create_app(settings, airflow_info))
    dag_id = new_marker("folderwait")
    for task_id in ("one", "two"):  # a new file, then a replaced one: each version parsed
        source = DAG_SOURCE.format(dag_id=dag_id, task_id=task_id)
        status, body = await upload(
            client, f"{dag_id}.py", source, force="true", wait="true", wait_timeout="120"
        )
        assert status == 200, (body.get("output"), body.get("warning"), body.get("deploy"))
        assert body["deploy"]["parsed"]["dags"][dag_id]["parsed"] is True, body
    listed = (await cli_async(settings, "tasks", "list", dag_id)).split()
    assert "two" in listed and "one" not in listed, listed
    await call_ok(client, api="delete_dag", dag_id=dag_id)
