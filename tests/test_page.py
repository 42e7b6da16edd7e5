"""The test page and its static files: served by the app, and by a non-editable install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import ClientSession

from bridge.catalogue.table import NAMES
from tests.helpers import ClientFactory, free_port, start_daemon, warm_mode, write_cfg

REPO = Path(__file__).resolve().parent.parent


async def test_page_lists_every_api(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.get("/admin/rest_api/")
    page = await response.text()
    assert response.status == 200
    for name in NAMES:
        assert f'id="api-{name}"' in page
    assert "unavailable" in page  # serve_logs, at least
    css = await client.get("/admin/rest_api/static/style.css")
    assert css.status == 200
    redirect = await client.get("/admin/rest_api", allow_redirects=False)
    assert redirect.status == 302


async def test_examples_carry_the_token_header_but_never_the_token(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(rest_api_plugin_expected_http_token="do-not-show-me")
    page = await (await client.get("/admin/rest_api/")).text()
    assert "do-not-show-me" not in page
    assert "rest_api_plugin_http_token: $BRIDGE_TOKEN" in page
    assert "curl -N" in page  # streaming examples print lines as they come
    assert 'id="token"' in page and 'type="password"' in page
    for external in ("https://", "//cdn", "googleapis"):
        assert external not in page


@pytest.mark.airflow
@pytest.mark.skipif(not warm_mode(), reason="the same with the cold CLI: the warm pass runs it")
async def test_a_non_editable_install_serves_the_page(tmp_path: Path, airflow_bin: str) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    cfg = write_cfg(tmp_path / "airflow.cfg", f"airflow_executable = {airflow_bin}")
    port = free_port()
    # Run from elsewhere so that only the installed copy of the package can be imported; the
    # dependencies come from this virtualenv's site-packages, after the install target.
    env = {**os.environ, "PYTHONPATH": str(site)}
    daemon = await start_daemon(cfg, port, cwd=tmp_path, env=env)
    try:
        async with ClientSession(f"http://127.0.0.1:{port}") as session:
            async with session.get("/admin/rest_api/") as page:
                assert page.status == 200
                assert "airflow-rest-bridge" in await page.text()
            async with session.get("/admin/rest_api/static/style.css") as css:
                assert css.status == 200
            async with session.get("/admin/rest_api/static/app.js") as script:
                assert script.status == 200
    finally:
        assert await daemon.stop() == 0
