"""Jobs belong to a token's identity, not its name (shared/API.md, "Bounds that fail closed"):
each token added gets an identity of its own, never reused; ``-``, ``seed``, ``open`` and other
reserved or malformed names are refused; a name revoked and added again sees none of the old
token's jobs; finished jobs are kept per owner; job files are the daemon's user's alone. The
tokens file's owner and folder are checked, and root's ``token add`` keeps the file's owner."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge import cli
from bridge.config.load import ConfigError, load
from bridge.config.tokens import derived_identity, hash_token, read_tokens
from bridge.http.keys import SETTINGS
from bridge.jobs.board import Jobs
from tests.helpers import API, ClientFactory, app_of, fault, new_marker, write_cfg

SEED = "the-seed-token"
HEADER = "rest_api_plugin_http_token"
JOBS = "/admin/rest_api/jobs"
NOBODY_UID = 65534  # another user than the daemon's (root, here): nobody


def add_token(cfg: Path, name: str, scopes: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()  # what an earlier command printed
    assert cli.main(["token", "add", name, "--scope", scopes, "--config", str(cfg)]) == 0
    return capsys.readouterr().out.strip()


@pytest.fixture
def tokens_cfg(tmp_path: Path) -> Path:
    return write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {tmp_path / 'tokens.json'}\n")


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a file made with open()'s default mode is 0644."""
    before = os.umask(0o022)
    yield
    os.umask(before)


async def client_for(
    make_fake_client: ClientFactory, cfg: Path, **overrides: Any
) -> TestClient[Any, Any]:
    settings = load(cfg, {})
    return await make_fake_client(
        tokens_file=settings.tokens_file,
        named_tokens=settings.named_tokens,
        rest_api_plugin_expected_http_token=SEED,
        **overrides,
    )


def reload_tokens(client: TestClient[Any, Any], cfg: Path) -> None:
    """What SIGHUP does to the tokens: the running app takes the file's table as it is now."""
    current = app_of(client)[SETTINGS]
    current.settings = dataclasses.replace(
        current.settings, named_tokens=load(cfg, {}).named_tokens
    )


async def detach(client: TestClient[Any, Any], token: str, params: dict[str, str]) -> str:
    response = await client.get(API, params={**params, "detach": "true"}, headers={HEADER: token})
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


@pytest.mark.parametrize("name", ["-", "seed", "open", "Open", "SEED", ".", "..", ".x", "_x"])
def test_reserved_and_malformed_names_are_refused(
    tokens_cfg: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # "--" ends the options, so that "-" and ".x" reach the name check and not argparse.
    argv = ["token", "add", "--scope", "read", "--config", str(tokens_cfg), "--", name]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert "reserved" in error or "starting with a letter or digit" in error, error
    path = load(tokens_cfg, {}).tokens_file
    assert path is not None and not path.exists()


def test_each_token_gets_an_identity_of_its_own_and_older_files_a_stable_one(
    tokens_cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_token(tokens_cfg, "ci", "read", capsys)
    path = load(tokens_cfg, {}).tokens_file
    assert path is not None
    first = read_tokens(path).named("ci")
    assert first is not None and first.identity.startswith("t-")
    assert json.loads(path.read_text())["tokens"][0]["id"] == first.identity
    assert cli.main(["token", "revoke", "ci", "--config", str(tokens_cfg)]) == 0
    add_token(tokens_cfg, "ci", "read", capsys)
    again = read_tokens(path).named("ci")
    assert again is not None and again.identity.startswith("t-")
    assert again.identity != first.identity  # a new token, though of the same name
    # A file written before identities: the token's is derived from its hash, the same at
    # every read, and shows nothing of the hash itself.
    digest = hash_token("arb_an-older-token")
    older = {"name": "old", "scopes": ["read"], "sha256": digest, "created": ""}
    path.write_text(json.dumps({"tokens": [older]}))
    identities = {read_tokens(path).tokens[0].identity for _ in range(2)}
    assert identities == {derived_identity(digest)}
    assert derived_identity(digest).startswith("h-") and digest[:16] not in identities.pop()
    twice = {**older, "id": again.identity}
    path.write_text(json.dumps({"tokens": [twice, {**twice, "name": "copy"}]}))
    with pytest.raises(ConfigError, match="same id"):
        load(tokens_cfg, {})


async def test_a_name_added_again_sees_none_of_the_old_tokens_jobs(
    make_fake_client: ClientFactory, tokens_cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = add_token(tokens_cfg, "ci", "read,operate", capsys)
    admin = add_token(tokens_cfg, "boss", "read,operate,admin", capsys)
    client = await client_for(make_fake_client, tokens_cfg)
    job_id = await detach(client, old, fault(new_marker(), "hang"))
    assert cli.main(["token", "revoke", "ci", "--config", str(tokens_cfg)]) == 0
    new = add_token(tokens_cfg, "ci", "read,operate", capsys)
    reload_tokens(client, tokens_cfg)
    # The revoked token is nobody now, even for its own job: its follows are refused.
    refused = await client.get(f"{JOBS}/{job_id}/output", headers={HEADER: old})
    assert refused.status == 403
    # The new token of the same name: the old one's job is no job of its.
    for path in (f"{JOBS}/{job_id}", f"{JOBS}/{job_id}/output"):
        response = await client.get(path, headers={HEADER: new})
        assert response.status == 404, path
    listed = await (await client.get(JOBS, headers={HEADER: new})).json()
    assert listed["jobs"] == []
    cancel = await client.delete(f"{JOBS}/{job_id}", headers={HEADER: new})
    assert cancel.status == 404
    # Its command ran on; admin sees it, owned by the old identity, and may cancel it.
    status = await (await client.get(f"{JOBS}/{job_id}", headers={HEADER: admin})).json()
    assert status["state"] in ("queued", "running") and status["token"] == "ci"
    renewed = read_tokens(tokens_cfg.parent / "tokens.json").named("ci")
    assert renewed is not None and status["owner"] != renewed.identity
    cancel = await client.delete(f"{JOBS}/{job_id}", headers={HEADER: admin})
    assert cancel.status == 200


async def test_the_no_token_jobs_are_no_named_tokens(
    make_fake_client: ClientFactory, tmp_path: Path, tokens_cfg: Path
) -> None:
    """A file an older version wrote may hold a token named "-" (the name calls without a token
    go by): it still owns none of those calls' jobs."""
    value = "arb_dash-token"
    dash = {"name": "-", "scopes": ["read"], "sha256": hash_token(value), "created": ""}
    (tmp_path / "tokens.json").write_text(json.dumps({"tokens": [dash]}))
    (tmp_path / "tokens.json").chmod(0o600)
    open_client = await make_fake_client(jobs_folder=tmp_path / "jobs")
    job_id = await detach(open_client, "", fault(new_marker(), "ok"))
    await until_ended(open_client, "", job_id)
    # A second daemon on the same jobs folder loads the first one's jobs at its start.
    client = await client_for(make_fake_client, tokens_cfg, jobs_folder=tmp_path / "jobs")
    for path in (f"{JOBS}/{job_id}", f"{JOBS}/{job_id}/output"):
        response = await client.get(path, headers={HEADER: value})
        assert response.status == 404, path
    seen = await (await client.get(f"{JOBS}/{job_id}", headers={HEADER: SEED})).json()
    assert seen["token"] == "-" and seen["owner"] == "open"


async def test_finished_jobs_are_kept_per_owner(
    make_fake_client: ClientFactory, tokens_cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reader = add_token(tokens_cfg, "reader", "read", capsys)
    admin = add_token(tokens_cfg, "boss", "read,operate,admin", capsys)
    client = await client_for(make_fake_client, tokens_cfg, jobs_to_keep=3)
    admins = await detach(client, admin, {"api": "list_dags"})
    assert (await until_ended(client, admin, admins))["state"] == "succeeded"
    readers = []
    for _ in range(5):  # more than jobs_to_keep, each ended before the next starts
        readers.append(await detach(client, reader, {"api": "list_dags"}))
        await until_ended(client, reader, readers[-1])
    kept = await (await client.get(f"{JOBS}/{admins}", headers={HEADER: admin})).json()
    assert kept["state"] == "succeeded" and kept["job_id"] == admins
    listed = await (await client.get(JOBS, headers={HEADER: reader})).json()
    assert [job["job_id"] for job in listed["jobs"]] == readers[:1:-1]  # its 3 newest


async def test_prune_counts_each_owners_jobs_apart(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path / "jobs")
    made = {
        owner: [await jobs.create({"api": "test", "owner": owner}, 100) for _ in range(count)]
        for owner, count in (("t-a", 1), ("t-b", 4))
    }
    for job in [*made["t-a"], *made["t-b"]]:
        await job.finish("succeeded", {"status": "OK"})
    await jobs.prune(keep=2, max_age=3600)
    assert set(jobs.jobs) == {made["t-a"][0].job_id, made["t-b"][2].job_id, made["t-b"][3].job_id}


@pytest.mark.usefixtures("umask_022")
async def test_job_files_are_the_daemon_users_alone(
    make_fake_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_fake_client(jobs_folder=tmp_path / "jobs")
    job_id = await detach(client, "", fault(new_marker(), "ok"))
    await until_ended(client, "", job_id)
    assert stat.S_IMODE((tmp_path / "jobs").stat().st_mode) == 0o700
    folder = tmp_path / "jobs" / job_id
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {entry.name: stat.S_IMODE(entry.stat().st_mode) for entry in folder.iterdir()}
    assert modes == {"job.json": 0o600, "output": 0o600, "streams": 0o600}


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_tokens_folder_others_may_change_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o700)
    cfg = write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {folder / 'tokens.json'}\n")
    add_token(cfg, "reader", "read", capsys)
    folder.chmod(mode)  # someone else could put a file of theirs in its place
    with pytest.raises(ConfigError, match=f"folder\\): mode {mode:04o} lets others replace"):
        load(cfg, {})
    argv = ["token", "add", "other", "--scope", "read", "--config", str(cfg)]
    assert cli.main(argv) == 2
    assert "lets others replace" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_tokens_file_of_another_user_is_refused_and_root_keeps_its_owner(
    tokens_cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_token(tokens_cfg, "reader", "read", capsys)
    path = tokens_cfg.parent / "tokens.json"
    os.chown(path, NOBODY_UID, NOBODY_UID)  # the Airflow user's file; the daemon runs as root
    add_token(tokens_cfg, "ci", "read", capsys)  # root edits it for that user
    after = path.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
        NOBODY_UID,
        NOBODY_UID,
        0o600,
    )
    assert read_tokens(path, any_owner=True).named("ci") is not None
    lock = tokens_cfg.parent / ".tokens.json.lock"
    assert lock.stat().st_uid == NOBODY_UID  # that user can still lock it next time
    # The daemon (root here) takes no file another user could add a token to.
    with pytest.raises(ConfigError, match=f"owned by uid {NOBODY_UID}, who could add tokens"):
        load(tokens_cfg, {})
    os.chown(path.parent, NOBODY_UID, 0)
    os.chown(path, 0, 0)
    add_token(tokens_cfg, "ops", "read", capsys)  # root's token command takes either owner
    with pytest.raises(ConfigError, match=f"folder\\): owned by uid {NOBODY_UID}"):
        load(tokens_cfg, {})
