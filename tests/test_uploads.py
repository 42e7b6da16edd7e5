"""deploy_dag's input handling, before Airflow is asked anything: names, sizes, modes."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from bridge.deploy import staging as uploads
from bridge.http import forms
from bridge.http.keys import settings_of
from tests.helpers import API, FAKE_AIRFLOW, ClientFactory, app_of, free_port, start_daemon

BOUNDARY = "bridgeboundary"


def raw_multipart(filename: str, content: bytes) -> bytes:
    """A body exactly as a client might send it, with the filename not percent-encoded."""
    return (
        (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="dag_file"; filename="{filename}"\r\n'
            "Content-Type: text/x-python\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@pytest.mark.parametrize(
    "filename",
    ["../evil.py", "/abs.py", "sub/dir.py", "..\\evil.py", "x.sh", ".hidden.py", "a b.py", ""],
)
async def test_unsafe_names_are_refused_and_nothing_is_written(
    make_fake_client: ClientFactory, tmp_path: Path, filename: str
) -> None:
    client = await make_fake_client()
    response = await client.post(
        API,
        params={"api": "deploy_dag"},
        data=raw_multipart(filename, b"x = 1\n"),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    body = await response.json()
    assert response.status == 400, body
    assert body["status"] == "ERROR"
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == []
    assert not Path("/abs.py").exists()


def test_check_upload_name_accepts_plain_names() -> None:
    assert uploads.check_upload_name("my_dag-2.py") == "my_dag-2.py"
    assert uploads.check_upload_name("bundle.zip") == "bundle.zip"


def test_stale_temp_files_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / f"{uploads.STAGING_PREFIX}abc{uploads.STAGING_SUFFIX}"
    stale.write_text("half a file")
    keep = tmp_path / "real_dag.py"
    keep.write_text("x = 1")
    assert uploads.clean_stale_uploads(tmp_path) == 1
    assert not stale.exists() and keep.exists()


async def test_file_field_on_another_api_is_refused(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.post(
        API,
        params={"api": "list_dags"},
        data=raw_multipart("x.py", b"x = 1\n"),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status == 400
    assert "deploy_dag (dag_file)" in (await response.json())["output"]


async def test_wrong_content_type_is_415(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.post(
        API, params={"api": "list_dags"}, data=b"{}", headers={"Content-Type": "application/json"}
    )
    assert response.status == 415
    assert os.path.basename(API) == "api"


async def test_a_daemon_killed_mid_upload_leaves_nothing_airflow_would_parse(
    tmp_path: Path,
) -> None:
    dags_folder = tmp_path / "dags"
    dags_folder.mkdir()
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(
        f"[core]\ndags_folder = {dags_folder}\n\n"
        f"[rest_api_plugin]\nairflow_executable = {FAKE_AIRFLOW}\n"
    )
    port = free_port()
    daemon = await start_daemon(cfg, port)
    head = raw_multipart("half.py", b"")[: -len(f"\r\n--{BOUNDARY}--\r\n")]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"POST {API}?api=deploy_dag HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(head) + 10_000_000}\r\n\r\n"
        ).encode()
        + head
        + b"# half a file\n" * 20_000
    )
    await writer.drain()
    staged = await wait_for_glob(dags_folder, f"{uploads.STAGING_PREFIX}*")
    await daemon.stop(signal.SIGKILL)  # no cleanup code of the daemon runs
    writer.close()
    assert [p.name for p in dags_folder.iterdir()] == [staged.name]
    assert not staged.name.endswith((".py", ".zip"))  # Airflow's parser skips it
    daemon = await start_daemon(cfg, port)  # a new start cleans up what the crash left
    try:
        assert list(dags_folder.iterdir()) == []
    finally:
        assert await daemon.stop() == 0


async def wait_for_glob(folder: Path, pattern: str) -> Path:
    # The daemon creates the temp file while it reads the body; nothing signals that across
    # the process boundary, so look for it, bounded in time.
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 30
    while not (found := sorted(folder.glob(pattern))):
        assert loop.time() < give_up, f"no {pattern} appeared in {folder}"
        await asyncio.sleep(0.05)
    return found[0]


async def test_an_upload_that_stops_arriving_is_a_408_and_leaves_nothing(
    make_fake_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forms, "BODY_STALL_SECONDS", 0.3)
    client = await make_fake_client()
    dags_folder = settings_of(app_of(client)).dags_folder
    head = raw_multipart("stalled.py", b"")[: -len(f"\r\n--{BOUNDARY}--\r\n")]
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        (
            f"POST {API}?api=deploy_dag HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(head) + 1_000_000}\r\n\r\n"
        ).encode()
        + head
        + b"# the first lines of a DAG file\n" * 100
    )
    await writer.drain()
    # Nothing more is sent: the bridge must give up on its own and answer.
    status_line = await asyncio.wait_for(reader.readline(), timeout=30)
    assert status_line.startswith(b"HTTP/1.1 408 ")
    response = await asyncio.wait_for(reader.read(), timeout=30)
    assert b'"http_response_code": 408' in response
    assert b"stopped arriving" in response
    writer.close()
    assert list(dags_folder.iterdir()) == []
