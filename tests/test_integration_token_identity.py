"""Jobs belong to a token's identity, against the real Airflow with two named tokens: a read
token's many jobs never push the admin's finished job out (jobs_to_keep counts per owner), a
name revoked and added again sees none of the old token's jobs, and the job files are the
daemon's user's alone."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge import cli
from bridge.config.load import load
from bridge.http.keys import SETTINGS
from tests.helpers import API, ClientFactory, app_of, warm_mode, write_cfg

pytestmark = [
    pytest.mark.airflow,
    # What is refused, and who owns a job, does not depend on how a command starts.
    pytest.mark.skipif(not warm_mode(), reason="BRIDGE_TEST_WARM=0: the warm pass runs it"),
]
SEED = "the-seed-token"
HEADER = "rest_api_plugin_http_token"
JOBS = "/admin/rest_api/jobs"
READ_CALL = {"api": "list_dags"}


def add_token(cfg: Path, name: str, scopes: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()  # what an earlier command printed
    assert cli.main(["token", "add", name, "--scope", scopes, "--config", str(cfg)]) == 0
    return capsys.readouterr().out.strip()


async def detach(client: TestClient[Any, Any], token: str) -> str:
    response = await client.get(
        API, params={**READ_CALL, "detach": "true"}, headers={HEADER: token}
    )
    assert response.status == 202, await response.text()
    return str((await response.json())["job_id"])


async def until_ended(client: TestClient[Any, Any], token: str, job_id: str) -> dict[str, Any]:
    """Follow the job's output to its end (the follow returns when the job ends); its status."""
    output = await client.get(f"{JOBS}/{job_id}/output", headers={HEADER: token})
    assert output.status == 200, await output.text()
    await output.read()
    status = await client.get(f"{JOBS}/{job_id}", headers={HEADER: token})
    assert status.status == 200
    body: dict[str, Any] = await status.json()
    return body


async def test_jobs_are_kept_per_owner_and_a_renewed_name_sees_none_of_the_old_ones(
    make_client: ClientFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {tmp_path / 'tokens.json'}\n")
    admin = add_token(cfg, "boss", "read,operate,admin", capsys)
    reader = add_token(cfg, "reader", "read", capsys)
    settings = load(cfg, {})
    before = os.umask(0o022)  # the usual one: open()'s default would make files 0644
    try:
        client = await make_client(
            tokens_file=settings.tokens_file,
            named_tokens=settings.named_tokens,
            rest_api_plugin_expected_http_token=SEED,
            jobs_folder=tmp_path / "jobs",
            jobs_to_keep=3,
        )
        admins = await detach(client, admin)
        assert (await until_ended(client, admin, admins))["state"] == "succeeded"
        readers = []
        for _ in range(4):  # more than jobs_to_keep, each ended before the next starts
            readers.append(await detach(client, reader))
            assert (await until_ended(client, reader, readers[-1]))["state"] == "succeeded"
    finally:
        os.umask(before)
    kept = await client.get(f"{JOBS}/{admins}", headers={HEADER: admin})
    assert kept.status == 200, await kept.text()
    listed = await (await client.get(JOBS, headers={HEADER: reader})).json()
    assert [job["job_id"] for job in listed["jobs"]] == readers[:0:-1]  # its own 3 newest

    folder = tmp_path / "jobs" / admins
    assert stat.S_IMODE((tmp_path / "jobs").stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {entry.name: stat.S_IMODE(entry.stat().st_mode) for entry in folder.iterdir()}
    assert modes == {"job.json": 0o600, "output": 0o600, "streams": 0o600}

    capsys.readouterr()
    assert cli.main(["token", "revoke", "reader", "--config", str(cfg)]) == 0
    renewed = add_token(cfg, "reader", "read", capsys)
    current = app_of(client)[SETTINGS]  # what SIGHUP does to the tokens
    current.settings = dataclasses.replace(
        current.settings, named_tokens=load(cfg, {}).named_tokens
    )
    refused = await client.get(f"{JOBS}/{readers[-1]}/output", headers={HEADER: reader})
    assert refused.status == 403  # the revoked token is nobody now
    listed = await (await client.get(JOBS, headers={HEADER: renewed})).json()
    assert listed["jobs"] == []
    for job_id in readers[1:]:
        response = await client.get(f"{JOBS}/{job_id}/output", headers={HEADER: renewed})
        assert response.status == 404, job_id
    seen = await (await client.get(f"{JOBS}/{readers[-1]}", headers={HEADER: admin})).json()
    assert seen["token"] == "reader" and seen["state"] == "succeeded"
