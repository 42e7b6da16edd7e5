"""Fixtures: a real Airflow home per test session, settings, and a client on the real app."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge import config
from bridge.airflow_info import AirflowInfo, detect
from bridge.app import create_app
from bridge.warm import WarmHelper
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


def warm_mode() -> bool:
    """`make test` runs the integration suite twice per Airflow version: through the warm
    helper (BRIDGE_TEST_WARM=1, the default) and with the cold CLI (BRIDGE_TEST_WARM=0)."""
    return os.environ.get("BRIDGE_TEST_WARM", "1") != "0"


@pytest.fixture(scope="session")
def session_warm_helper(
    airflow_bin: str, airflow_home: Path, airflow_info: AirflowInfo
) -> Iterator[WarmHelper | None]:
    """One warm helper for the whole session (warming up per test would cost seconds each)."""
    if not warm_mode():
        yield None
        return
    settings = settings_for(airflow_home, airflow_bin)
    assert airflow_info.python is not None
    helper = WarmHelper(airflow_info.python, airflow_bin, settings.child_environment(os.environ))
    helper.start()
    yield helper
    helper.close()


@pytest.fixture
def make_client(
    aiohttp_client: Any,
    airflow_home: Path,
    airflow_info: AirflowInfo,
    airflow_bin: str,
    session_warm_helper: WarmHelper | None,
) -> ClientFactory:
    """Build the real app against the session's Airflow, with settings overridden; its
    commands run through the session's warm helper unless BRIDGE_TEST_WARM=0."""

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        overrides.setdefault("warm_helper", session_warm_helper is not None)
        settings = settings_for(airflow_home, airflow_bin, **overrides)
        warm = session_warm_helper if settings.warm_helper else None
        client: TestClient[Any, Any] = await aiohttp_client(
            create_app(settings, airflow_info, warm=warm)
        )
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
            warm_helper=False,  # the fake script is no Airflow to warm up
        )
        settings = replace(base, **overrides)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, fake_airflow_info))
        return client

    return factory
