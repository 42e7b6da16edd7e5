"""Fixtures: a real Airflow home per test session, settings, and a client on the real app."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge import config
from bridge.airflow_info import AirflowInfo, detect
from bridge.app import create_app
from tests.demo.make_home import make_home

TESTS = Path(__file__).parent
FAKE_AIRFLOW = TESTS / "fake_airflow.py"
API = "/admin/rest_api/api"

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Integration tests are only meaningful against a real Airflow; `make test` runs them
    # once per installed version with BRIDGE_TEST_AIRFLOW set.
    if os.environ.get("BRIDGE_TEST_AIRFLOW"):
        return
    for item in items:
        if "airflow" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="BRIDGE_TEST_AIRFLOW is not set"))


@pytest.fixture(scope="session")
def airflow_bin() -> str:
    value = os.environ.get("BRIDGE_TEST_AIRFLOW")
    if not value:
        pytest.fail("set BRIDGE_TEST_AIRFLOW=/path/to/venv/bin/airflow (make test does)")
    return value


@pytest.fixture(scope="session")
def airflow_home(airflow_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh SQLite Airflow home with the demo DAG, shared by the session's tests."""
    home = tmp_path_factory.mktemp("airflow-home")
    make_home(airflow_bin, home)
    return home


def settings_for(home: Path, airflow: str, **overrides: Any) -> config.Settings:
    environ = {"AIRFLOW_HOME": str(home)}
    settings = config.load(home / "airflow.cfg", environ)
    return replace(settings, airflow_executable=airflow, **overrides)


def airflow_env(settings: config.Settings) -> dict[str, str]:
    """The environment the bridge gives its children, for running the CLI directly."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return settings.child_environment(clean)


@pytest.fixture(scope="session")
def airflow_info(airflow_bin: str, airflow_home: Path) -> AirflowInfo:
    settings = settings_for(airflow_home, airflow_bin)
    return asyncio.run(detect(airflow_bin, airflow_env(settings)))


@pytest.fixture
def settings(airflow_home: Path, airflow_bin: str) -> config.Settings:
    return settings_for(airflow_home, airflow_bin)


@pytest.fixture
def make_client(
    aiohttp_client: Any, airflow_home: Path, airflow_info: AirflowInfo, airflow_bin: str
) -> ClientFactory:
    """Build the real app against the session's Airflow, with settings overridden."""

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        settings = settings_for(airflow_home, airflow_bin, **overrides)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, airflow_info))
        return client

    return factory


@pytest.fixture
def fake_airflow_info() -> AirflowInfo:
    """The fault-injection stand-in for Airflow (tests/fake_airflow.py)."""
    return AirflowInfo(str(FAKE_AIRFLOW), "3.3.2", 3, frozenset({"dags", "tasks", "scheduler"}))


@pytest.fixture
def make_fake_client(
    aiohttp_client: Any, tmp_path: Path, fake_airflow_info: AirflowInfo
) -> ClientFactory:
    """The real app driving the fake airflow script, for faults the real CLI cannot show."""

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        (tmp_path / "dags").mkdir(exist_ok=True)
        base = config.Settings(
            airflow_home=tmp_path,
            dags_folder=tmp_path / "dags",
            airflow_executable=str(FAKE_AIRFLOW),
            allowed_paths=(tmp_path,),
            backups_folder=tmp_path / "backups",
        )
        settings = replace(base, **overrides)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, fake_airflow_info))
        return client

    return factory
