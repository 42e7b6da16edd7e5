"""Fixtures: a real Airflow home per test session, settings, a client on the real app; and
asyncio's debug mode on every test's loop, failing a test whose loop a callback held for
more than 50 ms (the daemon's own loop is checked the same way, see helpers.Daemon)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from bridge.http.app import create_app
from bridge.http.keys import airflow_of
from bridge.process.warm import WarmHelper
from bridge.service.loop_watch import watch
from tests.demo.make_home import make_home
from tests.helpers import FAKE_AIRFLOW, ClientFactory, counts, settings_for, warm_mode

SLOW_CALLBACK_SECONDS = 0.05


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Integration tests are only meaningful against a real Airflow; `make test` runs them
    # once per installed version with BRIDGE_TEST_AIRFLOW set.
    if os.environ.get("BRIDGE_TEST_AIRFLOW"):
        return
    for item in items:
        if "airflow" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="BRIDGE_TEST_AIRFLOW is not set"))


@pytest.fixture(autouse=True)
async def loop_never_blocks() -> AsyncIterator[None]:
    """asyncio's debug mode with a 50 ms slow-callback limit on every test's loop; a callback
    that held it longer (bridge.service.loop_watch) fails the test."""
    held: list[str] = []
    unwatch = watch(SLOW_CALLBACK_SECONDS, held.append)
    try:
        yield
    finally:
        unwatch()
    held = [report for report in held if counts(report)]
    assert not held, "\n".join(held)


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


@pytest.fixture(scope="session")
def airflow_info(airflow_bin: str, airflow_home: Path) -> AirflowInfo:
    """The installation, detected once by the real startup path of a throwaway app."""

    async def detect() -> AirflowInfo:
        app = create_app(settings_for(airflow_home, airflow_bin, warm_helper=False))
        runner = web.AppRunner(app)
        await runner.setup()  # the startup context: detection through the command path
        try:
            return airflow_of(app)
        finally:
            await runner.cleanup()

    return asyncio.run(detect())


@pytest.fixture
def settings(airflow_home: Path, airflow_bin: str) -> Settings:
    return settings_for(airflow_home, airflow_bin)


@pytest.fixture(scope="module")
def private_home(airflow_info: AirflowInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow home of the module's own (a migration's cost), for a test that must leave
    the session's home as it was while other tests use it: import errors in the database
    change what `dags list-import-errors` answers everywhere."""
    home = tmp_path_factory.mktemp("airflow-home-private")
    make_home(airflow_info.executable, home)
    return home


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
    helper.settled()
    assert helper.status().state == "ready", helper.status()
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

    async def factory(
        airflow: AirflowInfo = fake_airflow_info, **overrides: Any
    ) -> TestClient[Any, Any]:
        (tmp_path / "dags").mkdir(exist_ok=True)
        values: dict[str, Any] = {
            "airflow_home": tmp_path,
            "dags_folder": tmp_path / "dags",
            "airflow_executable": str(FAKE_AIRFLOW),
            "allowed_paths": (tmp_path,),
            "backups_folder": tmp_path / "backups",
            "warm_helper": False,  # the fake script is no Airflow to warm up
        }
        values.update(overrides)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(Settings(**values), airflow))
        return client

    return factory
