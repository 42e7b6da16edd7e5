"""The warm helper without Airflow: what happens when it cannot start, and the exit-code
rules its children follow (the console script's)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from bridge import config, warm_helper
from bridge.airflow_info import AirflowInfo
from bridge.app import create_app
from tests.conftest import API, FAKE_AIRFLOW


@pytest.mark.parametrize(
    ("value", "code"),
    [(None, 0), (0, 0), (3, 3), (256, 0), (-1, 255), ("a message", 1)],
)
def test_exit_codes_follow_sys_exit(
    value: object, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert warm_helper.exit_code(value) == code
    if isinstance(value, str):
        assert capsys.readouterr().err == "a message\n"


async def test_a_helper_that_cannot_start_leaves_the_cold_cli_working(
    aiohttp_client: Any,
    tmp_path: Path,
    fake_airflow_info: AirflowInfo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "dags").mkdir()
    settings = config.Settings(
        airflow_home=tmp_path,
        dags_folder=tmp_path / "dags",
        airflow_executable=str(FAKE_AIRFLOW),
        airflow_python=sys.executable,  # this interpreter has no Airflow to import
        warm_helper=True,
    )
    client = await aiohttp_client(create_app(settings, fake_airflow_info))
    state = (await (await client.get("/health")).json())["warm_helper"]
    assert state["state"] == "failed"
    assert "No module named 'airflow'" in state["reason"]
    assert "commands run with the cold CLI" in caplog.text
    response = await client.get(
        API, params={"api": "test", "dag_id": "m", "task_id": "ok", "execution_date": "2024-01-01"}
    )
    assert response.status == 200
    assert 'desc="cold"' in response.headers["Server-Timing"]
