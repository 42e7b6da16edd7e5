"""Installing the bridge beside Airflow, from a wheel of this checkout: into a virtualenv of
its own (with the tested set, constraints.txt), and into Airflow's own environment, where
the ranges in setup.py keep every version Airflow has. Both serve the API and the page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import ClientSession

from bridge.catalogue.installed import AirflowInfo
from tests.helpers import free_port, start_daemon, warm_mode, write_cfg

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(not warm_mode(), reason="no command runs warm or cold here"),
]
REPO = Path(__file__).parents[1]
UV = str(Path(sys.executable).parent / "uv")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), REPO],
        check=True,
        capture_output=True,
    )
    (built,) = wheels.glob("*.whl")
    return built


async def serves(python: str, tmp_path: Path, airflow_bin: str, env: dict[str, str]) -> None:
    """The daemon under ``python`` answers /health, a call of the API, and the page."""
    cfg = write_cfg(tmp_path / "airflow.cfg", f"airflow_executable = {airflow_bin}")
    port = free_port()
    # From elsewhere, so that only the installed copy of the package can be imported.
    daemon = await start_daemon(cfg, port, python=python, cwd=tmp_path, env=env)
    try:
        async with ClientSession(f"http://127.0.0.1:{port}") as session:
            async with session.get("/health") as health:
                assert health.status == 200, await health.text()
            async with session.get("/admin/rest_api/api", params={"api": "version"}) as call:
                assert call.status == 200 and (await call.json())["status"] == "OK"
            static = ("/admin/rest_api/static/app.js", "/admin/rest_api/static/style.css")
            for path in ("/admin/rest_api/", *static):  # installed inside the package
                async with session.get(path) as page:
                    assert page.status == 200, path
    finally:
        assert await daemon.stop() == 0


async def test_a_virtualenv_of_its_own_serves(
    wheel: Path, tmp_path: Path, airflow_bin: str
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            wheel,
            "-c",
            REPO / "constraints.txt",
        ],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    await serves(str(python), tmp_path, airflow_bin, env)


async def test_an_install_into_airflows_environment_keeps_its_versions(
    wheel: Path, tmp_path: Path, airflow_bin: str, airflow_info: AirflowInfo
) -> None:
    """What pip would do to Airflow's environment (asked with --dry-run: the suite's Airflow
    is shared): add packages, never replace one. Then the bridge and what would be added,
    beside Airflow's own packages (PYTHONPATH), serve."""
    python = airflow_info.python
    assert python is not None
    planned = subprocess.run(
        [UV, "pip", "install", "--dry-run", "--python", python, wheel],
        check=True,
        capture_output=True,
        text=True,
    )
    said = planned.stdout + planned.stderr
    replaced = [line for line in said.splitlines() if line.startswith(" - ")]
    assert replaced == [], f"installing the bridge would change Airflow's environment:\n{said}"
    added = [line[3:].split(" @ ")[0] for line in said.splitlines() if line.startswith(" + ")]
    assert any(name.startswith("airflow-rest-bridge") for name in added), said
    site = tmp_path / "site"
    requirements = [name for name in added if not name.startswith("airflow-rest-bridge")]
    subprocess.run(
        [UV, "pip", "install", "--quiet", "--no-deps", "--target", site, wheel, *requirements],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PYTHONPATH"] = str(site)
    await serves(python, tmp_path, airflow_bin, env)
