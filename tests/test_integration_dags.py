"""deploy_dag, refresh_dag and refresh_all against the real Airflow."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from bridge.http.app import create_app
from tests.helpers import (
    API,
    DAG_SOURCE,
    ClientFactory,
    call,
    call_ok,
    dag_is_paused,
    new_marker,
    processes_with,
    settings_for,
    upload,
)

pytestmark = pytest.mark.airflow


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
    assert await dag_is_paused(settings, dag_id) is False
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
    assert await dag_is_paused(settings, dag_id) is True


async def test_delete_dag_keeps_the_file_as_a_backup_and_removes_the_records(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client()
    dag_id = new_marker("doomed")
    source = DAG_SOURCE.format(dag_id=dag_id, task_id="one")
    status, body = await upload(client, f"{dag_id}.py", source)
    assert status == 200, body
    await call_ok(client, api="trigger_dag", dag_id=dag_id)

    status, body = await call(client, api="delete_dag", dag_id=dag_id, metadata="true")
    assert status == 200, body
    assert not (settings.dags_folder / f"{dag_id}.py").exists()
    assert Path(body["output"]["backup"]).read_text() == source
    assert body["deploy"]["metadata_exit_code"] == 0
    listed = await call_ok(client, api="list_dags", output="json")
    names = {row["dag_id"] for row in listed["data"]}
    assert dag_id not in names and "bridge_demo" in names
    status, body = await call(client, api="delete_dag", dag_id=dag_id)
    assert status == 404, body


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


async def test_refresh_all_picks_up_files_changed_on_disk_with_their_import_errors(
    aiohttp_client: Any, private_home: Path, airflow_info: AirflowInfo
) -> None:
    """A bulk deploy the bridge did not make (files written into the dags folder): one
    refresh_all serializes them, counts the DAGs and names the file that does not import.
    In a home of its own: Airflow 3 records the import error in its database."""
    settings = settings_for(private_home, airflow_info.executable, warm_helper=False)
    client = await aiohttp_client(create_app(settings, airflow_info))
    dag_id = new_marker("bulk")
    written = settings.dags_folder / f"{dag_id}.py"
    broken = settings.dags_folder / f"{dag_id}_broken.py"
    helper = settings.dags_folder / f"{dag_id}_helper.py"
    executed = settings.dags_folder.parent / f"{dag_id}_helper_ran"
    written.write_text(DAG_SOURCE.format(dag_id=dag_id, task_id="one"))
    broken.write_text("import no_such_module_anywhere  # an airflow DAG's import error\n")
    # Not a DAG file to Airflow's safe mode (neither of its two words): never executed.
    helper.write_text(f"open({str(executed)!r}, 'w').close()\n")
    try:
        body = await call_ok(client, api="refresh_all")
        assert body["dags"] >= 2, body  # the demo DAGs and the new one
        assert [e["filepath"] for e in body["import_errors"]] == [str(broken)], body
        assert "no_such_module_anywhere" in body["import_errors"][0]["error"]
        assert "1 DAG file(s) do not import" in body["warning"]
        assert not executed.exists()
        listed = await call_ok(client, api="list_dags", output="json")
        assert dag_id in {row["dag_id"] for row in listed["data"]}, listed
    finally:
        for path in (written, broken, helper):
            path.unlink()
    response = await client.get(API, params={"api": "refresh_all", "stream": "true"})
    assert response.status == 200
    assert "DAG(s) in the dags folder, 0 import error(s)" in await response.text()


async def test_an_import_that_takes_too_long_is_stopped_and_refused(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client(dag_check_timeout=3.0, kill_grace_period=1.0)
    marker = new_marker("slowimport")
    source = "import time\ntime.sleep(120)\n" + DAG_SOURCE.format(dag_id=marker, task_id="t")
    before = folder_state(settings.dags_folder)
    status, body = await upload(client, f"{marker}.py", source)
    assert status == 400, body
    assert "longer than dag_check_timeout (3 s)" in body["output"]
    assert "nothing was deployed" in body["output"]
    assert folder_state(settings.dags_folder) == before
    assert processes_with(marker) == []  # the import check's process is stopped


async def test_every_process_a_deploy_starts_is_audited(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    caplog.set_level(logging.INFO, logger="bridge.audit")
    dag_id = new_marker("audited")
    status, body = await upload(
        client, f"{dag_id}.py", DAG_SOURCE.format(dag_id=dag_id, task_id="t"), pause="true"
    )
    assert status == 200, body
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    deploy = [line for line in lines if "api=deploy_dag" in line]
    assert len(deploy) == 3, deploy
    assert deploy[0].endswith("import check") and "dag_check.py" in deploy[0]
    assert deploy[1].endswith("serialize") and "dags reserialize" in deploy[1]
    assert deploy[2].endswith("pause") and f"dags pause --yes -- {dag_id}" in deploy[2]
    assert all("exit=0" in line for line in deploy)
