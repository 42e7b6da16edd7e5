"""The production backend: Airflow's metadata database on PostgreSQL (Debian's server on
loopback, started by `make test`). Many triggers at once must all land: none lost, none
failed on a lock, as SQLite cannot promise."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.catalogue.installed import AirflowInfo
from bridge.http.app import create_app
from tests.demo.make_home import make_home
from tests.helpers import (
    POSTGRES,
    call,
    cli_json,
    new_marker,
    pg,
    settings_for,
    unique_date,
    warm_mode,
)

TRIGGERS = 50

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(not POSTGRES, reason="BRIDGE_TEST_POSTGRES is not set"),
    # Once per Airflow version is enough: the cold pass would only repeat it, slower.
    pytest.mark.skipif(not warm_mode(), reason="runs in the warm pass"),
]


@pytest.fixture(scope="module")
def postgres_home(
    airflow_info: AirflowInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A fresh Airflow home whose metadata database is a new PostgreSQL database."""
    database = "bridge_airflow_" + airflow_info.version.replace(".", "_")
    pg("dropdb", database)
    pg("createdb", database)
    home = tmp_path_factory.mktemp("airflow-home-postgres")
    make_home(airflow_info.executable, home, database=f"{POSTGRES}/{database}")
    yield home
    pg("dropdb", database)


async def test_fifty_concurrent_triggers_all_land(
    aiohttp_client: Any, postgres_home: Path, airflow_info: AirflowInfo
) -> None:
    settings = settings_for(
        postgres_home,
        airflow_info.executable,
        max_concurrent_commands=TRIGGERS,
        command_timeout=300.0,
    )
    client = await aiohttp_client(create_app(settings, airflow_info))
    prefix = new_marker("pg")
    runs = {f"{prefix}_{n}": unique_date(2019) for n in range(TRIGGERS)}
    answers = await asyncio.gather(
        *(
            call(client, api="trigger_dag", dag_id="bridge_demo", run_id=run_id, exec_date=date)
            for run_id, date in runs.items()
        )
    )
    failed = [(status, body["output"]) for status, body in answers if status != 200]
    assert failed == []
    listed = await cli_json(settings, "dags", "list-runs", *_dag_flag(airflow_info), "bridge_demo")
    landed = {row["run_id"] for row in listed if row["run_id"].startswith(prefix)}
    assert landed == set(runs)
    assert all(row["state"] == "queued" for row in listed if row["run_id"] in landed)


def _dag_flag(info: AirflowInfo) -> list[str]:
    return ["-d"] if info.major == 2 else []
