"""deploy_dag and delete_dag through a git deploy target against the real Airflow
(shared/API.md, "Past one host"): a bare repository on disk is the team's DAG repository, and
this host's dags folder is a checkout of it, brought up to date as git-sync would; the import
check runs in Airflow's interpreter against the branch's own tree."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from bridge.http.app import create_app
from tests.demo.make_home import DEMO_DAGS, make_home
from tests.helpers import (
    DAG_SOURCE,
    call,
    call_ok,
    cli_async,
    new_marker,
    settings_for,
    upload,
    warm_mode,
)
from tests.test_deploy_targets import commit_all, git, tree_of

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
