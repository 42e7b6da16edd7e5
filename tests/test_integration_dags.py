"""deploy_dag and refresh_dag against the real Airflow."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from bridge.config import Settings
from tests.conftest import API, ClientFactory
from tests.integration import call, call_ok, dag_is_paused
from tests.procs import new_marker

pytestmark = pytest.mark.airflow

DAG_SOURCE = """
import datetime
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG
try:
    from airflow.providers.standard.operators.empty import EmptyOperator
except ImportError:
    from airflow.operators.empty import EmptyOperator

with DAG(dag_id="{dag_id}", start_date=datetime.datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="{task_id}")
"""


async def upload(
    client: TestClient[Any, Any], filename: str, content: str, **fields: str
) -> tuple[int, dict[str, Any]]:
    form = FormData()
    form.add_field("dag_file", content.encode(), filename=filename)
    for name, value in fields.items():
        form.add_field(name, value)
    response = await client.post(API, params={"api": "deploy_dag"}, data=form)
    return response.status, await response.json()


async def test_deploy_a_new_dag_then_force_replace_keeps_a_backup(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client()
    dag_id = new_marker("deployed")
    filename = f"{dag_id}.py"
    first = DAG_SOURCE.format(dag_id=dag_id, task_id="one")
    status, body = await upload(client, filename, first, unpause="true")
    assert status == 200, body
    target = settings.dags_folder / filename
    assert body["output"]["file"] == str(target)
    assert body["output"]["dag_ids"] == [dag_id]
    assert target.read_text() == first
    assert target.stat().st_mode & 0o044, "other Airflow processes must be able to read it"
    assert dag_is_paused(settings, dag_id) is False
    listed = await call_ok(client, api="list_dags", output="json")
    assert dag_id in {row["dag_id"] for row in listed["data"]}
    # Serializing the new file must not lose the DAGs that were there before.
    await call_ok(client, api="trigger_dag", dag_id="bridge_demo")

    second = DAG_SOURCE.format(dag_id=dag_id, task_id="two")
    status, refused = await upload(client, filename, second)
    assert status == 400 and "force" in refused["output"]
    assert target.read_text() == first

    status, replaced = await upload(client, filename, second, force="true", pause="true")
    assert status == 200, replaced
    assert target.read_text() == second
    backup = Path(replaced["output"]["backup"])
    assert backup.parent == settings.backups_folder
    assert backup.read_text() == first
    assert dag_is_paused(settings, dag_id) is True


@pytest.mark.parametrize(
    "filename", ["../evil.py", "/abs.py", "sub/dir.py", "x.sh", ".hidden.py", "noext"]
)
async def test_bad_upload_names_write_nothing(
    make_client: ClientFactory, settings: Settings, filename: str
) -> None:
    client = await make_client()
    before = sorted(p.name for p in settings.dags_folder.iterdir())
    status, body = await upload(client, filename, "x = 1\n")
    assert status == 400, body
    assert sorted(p.name for p in settings.dags_folder.iterdir()) == before
    assert not (settings.dags_folder.parent / "evil.py").exists()


async def test_empty_and_oversized_uploads_write_nothing(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client(max_upload_size=1024)
    before = sorted(p.name for p in settings.dags_folder.iterdir())
    status, body = await upload(client, "empty.py", "")
    assert status == 400 and "empty" in body["output"]
    status, body = await upload(client, "big.py", "#" * 4096)
    assert status == 413 and "max_upload_size" in body["output"]
    assert sorted(p.name for p in settings.dags_folder.iterdir()) == before


def folder_state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def broken(:\n", "SyntaxError"),
        ("import no_such_module_for_bridge_tests\n", "No module named"),
        ("x = 1  # no DAG in here\n", "defines no DAG"),
    ],
)
async def test_a_broken_dag_is_refused_with_the_error_and_nothing_changes(
    make_client: ClientFactory, settings: Settings, source: str, expected: str
) -> None:
    client = await make_client()
    before = folder_state(settings.dags_folder)
    status, body = await upload(client, "broken_upload.py", source)
    assert status == 400, body
    assert expected in body["output"]
    assert "nothing was deployed" in body["output"]
    assert folder_state(settings.dags_folder) == before


async def test_the_seed_readme_curl_line_deploys(
    make_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    client = await make_client()
    dag_id = new_marker("seedcurl")
    dag_file = tmp_path / f"{dag_id}.py"
    dag_file.write_text(DAG_SOURCE.format(dag_id=dag_id, task_id="t"))
    url = f"http://127.0.0.1:{client.server.port}{API}?api=deploy_dag"
    result = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-X", "POST", "-H", "Content-Type: multipart/form-data",
        "-F", f"dag_file=@{dag_file}", "-F", "force=on", url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, _ = await result.communicate()
    body = json.loads(stdout)
    assert body["status"] == "OK", body
    assert body["output"]["dag_ids"] == [dag_id]
    listed = await call_ok(client, api="list_dags", output="json")
    assert dag_id in {row["dag_id"] for row in listed["data"]}


async def test_concurrent_uploads_of_one_name_end_in_one_whole_file(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client()
    dag_id = new_marker("race")
    name = f"{dag_id}.py"
    # Long files, so that interleaved writes would show.
    versions = [
        DAG_SOURCE.format(dag_id=dag_id, task_id=task) + f"# {task}\n" * 20000
        for task in ("first", "second")
    ]
    results = await asyncio.gather(*(upload(client, name, text, force="true") for text in versions))
    assert [status for status, _ in results] == [200, 200], results
    assert (settings.dags_folder / name).read_text() in versions
    backups = [Path(body["output"]["backup"]) for _, body in results if "backup" in body["output"]]
    assert len(backups) == 1 and backups[0].read_text() in versions


async def test_deploy_needs_post_and_a_file(make_client: ClientFactory) -> None:
    client = await make_client()
    status, body = await call(client, api="deploy_dag")
    assert status == 405
    assert "POST" in body["output"]
    response = await client.post(API, params={"api": "deploy_dag"}, data={"force": "true"})
    assert response.status == 400
    assert "dag_file" in (await response.json())["output"]


async def test_refresh_dag(make_client: ClientFactory) -> None:
    client = await make_client()
    body = await call_ok(client, api="refresh_dag", dag_id="bridge_demo")
    assert "bridge_demo" in body["output"]
    await call_ok(client, api="trigger_dag", dag_id="bridge_demo")
    status, unknown = await call(client, api="refresh_dag", dag_id="no_such_dag_here")
    assert status == 404
    assert "no_such_dag_here" in unknown["output"]
