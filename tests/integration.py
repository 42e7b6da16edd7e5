"""Helpers for the integration suite: calling the bridge and the real CLI side by side."""

from __future__ import annotations

import itertools
import json
import subprocess
from typing import Any

from aiohttp.test_utils import TestClient

from bridge import config
from bridge.noise import filter_text
from tests.conftest import API, airflow_env

_days = itertools.count(1)


def unique_date(year: int = 2023) -> str:
    """A logical date no other test in this session uses (one day per call)."""
    n = next(_days)
    return f"{year}-{(n // 28) % 12 + 1:02d}-{n % 28 + 1:02d}T00:00:00"


async def call(client: TestClient[Any, Any], **params: str) -> tuple[int, dict[str, Any]]:
    """GET the API and return (HTTP status, envelope)."""
    response = await client.get(API, params=params)
    body = await response.json()
    assert body["http_response_code"] == response.status
    return response.status, body


async def call_ok(client: TestClient[Any, Any], **params: str) -> dict[str, Any]:
    status, body = await call(client, **params)
    assert status == 200, body
    assert body["status"] == "OK", body
    return body


def cli(settings: config.Settings, *args: str, check: bool = True) -> str:
    """Run the real Airflow CLI directly, the way the bridge would, and filter its noise."""
    result = subprocess.run(
        [settings.airflow_executable, *args],
        env=airflow_env(settings),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return filter_text(result.stdout)


def cli_json(settings: config.Settings, *args: str) -> Any:
    from bridge.noise import parse_json_output

    return parse_json_output(cli(settings, *args, "--output=json"))


def dag_is_paused(settings: config.Settings, dag_id: str) -> bool:
    rows = cli_json(settings, "dags", "list")
    row = next(r for r in rows if r["dag_id"] == dag_id)
    return str(row["is_paused"]).lower() == "true"


def dumps(value: Any) -> str:
    return json.dumps(value)
