"""deploy_dag's input handling, before Airflow is asked anything: names, sizes, modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge import uploads
from tests.conftest import API, ClientFactory

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


async def test_installed_file_is_readable_by_others(
    make_fake_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_fake_client()
    response = await client.post(
        API,
        params={"api": "deploy_dag"},
        data=raw_multipart("plain.py", b"x = 1\n"),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status == 200
    mode = (tmp_path / "dags" / "plain.py").stat().st_mode & 0o777
    assert mode == 0o666 & ~uploads._UMASK
    assert mode & 0o044  # group and others may read it


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
    assert "only deploy_dag takes a file" in (await response.json())["output"]


async def test_wrong_content_type_is_415(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.post(
        API, params={"api": "list_dags"}, data=b"{}", headers={"Content-Type": "application/json"}
    )
    assert response.status == 415
    assert os.path.basename(API) == "api"
