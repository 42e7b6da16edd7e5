"""The application's lifecycle through aiohttp: startup tidies up, loads the jobs a dead
daemon left (what was queued or running then reads lost) and sets every key before a
request; shutdown stops every command it started, a detached one included."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from bridge.deploy.staging import STAGING_PREFIX, STAGING_SUFFIX
from bridge.http.app import create_app
from bridge.http.keys import airflow_of
from bridge.jobs.board import Jobs
from bridge.process.ledger import FOLDER_NAME
from tests.helpers import API, FAKE_AIRFLOW, fault, new_marker, processes_with, read_until


def settings_in(home: Path, **overrides: Any) -> Settings:
    (home / "dags").mkdir(exist_ok=True)
    return Settings(
        airflow_home=home,
        dags_folder=home / "dags",
        airflow_executable=str(FAKE_AIRFLOW),
        warm_helper=False,
        **overrides,
    )


async def test_startup_tidies_up_and_sets_every_key(
    aiohttp_client: Any, tmp_path: Path, fake_airflow_info: AirflowInfo
) -> None:
    settings = settings_in(tmp_path)
    stale = settings.dags_folder / f"{STAGING_PREFIX}crashed{STAGING_SUFFIX}"
    stale.write_text("half an upload")
    app = create_app(settings, fake_airflow_info)
    client = await aiohttp_client(app)
    assert airflow_of(app) is fake_airflow_info
    assert not stale.exists()
    assert (await client.get("/health")).status == 200


async def test_startup_shows_the_jobs_a_dead_daemon_left_queued_or_running_as_lost(
    aiohttp_client: Any, tmp_path: Path, fake_airflow_info: AirflowInfo
) -> None:
    settings = settings_in(tmp_path)
    # What a daemon killed with SIGKILL leaves: a job running with some output, one queued
    # for a slot, one finished.
    dead = Jobs(settings.jobs_path)
    record = {"api": "test", "arguments": {"api": "test"}}
    running, queued, finished = [await dead.create(dict(record), 1024) for _ in range(3)]
    await running.set_state("running")
    await running.write("stdout", "so far\n")
    await finished.finish("succeeded", {"status": "OK"})
    for job in (running, queued):
        job.files.close()
    client = await aiohttp_client(create_app(settings, fake_airflow_info))
    states = {}
    for name, job in {"running": running, "queued": queued, "finished": finished}.items():
        response = await client.get(f"/admin/rest_api/jobs/{job.job_id}")
        assert response.status == 200, await response.text()
        states[name] = (await response.json())["state"]
    assert states == {"running": "lost", "queued": "lost", "finished": "succeeded"}
    output = await client.get(f"/admin/rest_api/jobs/{running.job_id}/output")
    assert (await output.text()).startswith("so far\n")
    listed = await (await client.get("/admin/rest_api/jobs")).json()
    assert [j["job_id"] for j in listed["jobs"]] == [finished.job_id, queued.job_id, running.job_id]


async def test_shutdown_stops_every_command_even_one_left_to_run_on(
    aiohttp_client: Any, tmp_path: Path, fake_airflow_info: AirflowInfo
) -> None:
    settings = settings_in(tmp_path, kill_on_disconnect=False, kill_grace_period=0.5)
    client = await aiohttp_client(create_app(settings, fake_airflow_info))
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "hang", stream="true"))
    await read_until(response, b"started")
    response.close()  # the client leaves; kill_on_disconnect = false: the command runs on
    assert processes_with(marker)
    await asyncio.wait_for(client.close(), timeout=60)  # runner cleanup: on_shutdown, cleanup
    assert processes_with(marker) == []
    assert list((tmp_path / FOLDER_NAME).iterdir()) == []  # the ledger knows nothing running
