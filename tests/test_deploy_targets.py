"""Where deploy_dag puts a file and delete_dag removes it (shared/API.md, "Past one host"):
the dags folder with backups, or a git branch, through the real app, real git and a bare
repository on disk as the remote; the fake airflow stands in for Airflow's listing and import
check (tests/test_integration_deploy_git.py does the same against real Airflow)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.catalogue.installed import AirflowInfo
from bridge.config.load import load
from bridge.deploy.git import locked as clone_locked
from bridge.http.keys import SETTINGS, settings_of
from tests.helpers import FAKE_AIRFLOW, ClientFactory, app_of, call, git, upload, write_cfg
from tests.test_confined import HEADER, SEED, add


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository whose main holds dags/existing.py, as a team's DAG repository."""
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    work = tmp_path / "seed-clone"
    subprocess.run(["git", "clone", "--quiet", str(bare), str(work)], check=True)
    (work / "dags").mkdir()
    (work / "dags" / "existing.py").write_text("# existing DAG\n")
    commit_all(work, "the first DAG")
    return bare


def commit_all(work: Path, message: str) -> None:
    git(work, "add", "--all")
    env = ("-c", "user.name=someone", "-c", "user.email=someone@example.com")
    git(work, *env, "commit", "--quiet", "-m", message)
    git(work, "push", "--quiet", "origin", "HEAD:main")


def pushed_by_someone_else(remote: Path, tmp_path: Path, name: str, content: str) -> str:
    """Another engineer's commit on main, made in a clone of their own."""
    work = tmp_path / f"other-{name.replace('/', '-')}"
    if not work.exists():
        subprocess.run(["git", "clone", "--quiet", str(remote), str(work)], check=True)
    git(work, "pull", "--quiet", "origin", "main")
    (work / name).write_text(content)
    commit_all(work, f"edit {name} by hand")
    return git(work, "rev-parse", "HEAD")


def tree_of(remote: Path) -> dict[str, str]:
    """main's files in the remote, with their content."""
    names = git(remote, "ls-tree", "-r", "--name-only", "main").splitlines()
    return {name: git(remote, "show", f"main:{name}") for name in names}


async def git_client(
    make_fake_client: ClientFactory,
    tmp_path: Path,
    remote: Path,
    capsys: pytest.CaptureFixture[str],
) -> tuple[TestClient[Any, Any], dict[str, str]]:
    """The app with deploy_target = git, and the headers of an admin token named deployer."""
    cfg = write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {tmp_path / 'tokens.json'}\n")
    token = add(cfg, capsys, "deployer", "--scope", "admin")
    settings = load(cfg, {})
    client = await make_fake_client(
        replace(_fake_info(), python=str(FAKE_AIRFLOW)),
        tokens_file=settings.tokens_file,
        named_tokens=settings.named_tokens,
        rest_api_plugin_expected_http_token=SEED,
        deploy_target="git",
        deploy_git_url=str(remote),
        deploy_git_subdir="dags",
    )
    return client, {HEADER: token}


Deploying = tuple[TestClient[Any, Any], dict[str, str]]


@pytest.fixture
async def deploying(
    make_fake_client: ClientFactory,
    tmp_path: Path,
    remote: Path,
    capsys: pytest.CaptureFixture[str],
) -> Deploying:
    return await git_client(make_fake_client, tmp_path, remote, capsys)


def _fake_info() -> AirflowInfo:
    return AirflowInfo(str(FAKE_AIRFLOW), "3.3.2", 3, frozenset({"dags", "tasks", "scheduler"}))


async def deploy(
    client: TestClient[Any, Any], headers: dict[str, str], name: str, content: str, **fields: str
) -> tuple[int, dict[str, Any]]:
    from aiohttp import FormData

    form = FormData()
    form.add_field("dag_file", content.encode(), filename=name)
    for key, value in fields.items():
        form.add_field(key, value)
    response = await client.post(
        "/admin/rest_api/api", params={"api": "deploy_dag"}, data=form, headers=headers
    )
    return response.status, await response.json()


# --- the folder target: delete_dag --------------------------------------------------------


@pytest.fixture
def listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake airflow lists acc_x and acc_y, each in its own file in the dags folder."""
    monkeypatch.setenv("FAKE_AIRFLOW_DAGS", "acc_x,acc_y")
    monkeypatch.setenv("FAKE_AIRFLOW_DAGS_FOLDER", str(tmp_path / "dags"))
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    (tmp_path / "dags").mkdir(exist_ok=True)
    (tmp_path / "dags" / "acc_x.py").write_text("# acc_x\n")
    (tmp_path / "dags" / "acc_y.py").write_text("# acc_y\n")
    return record


def ran(record: Path) -> list[list[str]]:
    if not record.exists():
        return []
    return [json.loads(line)[:2] for line in record.read_text().splitlines()]


async def test_delete_dag_moves_the_file_to_the_backups_and_serializes(
    make_fake_client: ClientFactory, tmp_path: Path, listed: Path
) -> None:
    client = await make_fake_client()
    status, body = await call(client, api="delete_dag", dag_id="acc_x")
    assert status == 200, body
    assert not (tmp_path / "dags" / "acc_x.py").exists()
    assert (tmp_path / "dags" / "acc_y.py").exists()
    backup = Path(body["output"]["backup"])
    assert backup.parent == tmp_path / "backups" and backup.read_text() == "# acc_x\n"
    assert body["output"]["dag_ids"] == ["acc_x"]
    assert body["deploy"] == {"target": "folder", "path": str(tmp_path / "dags" / "acc_x.py")}
    assert ran(listed) == [["dags", "list"], ["dags", "reserialize"]]  # records stay


async def test_delete_dag_with_metadata_also_deletes_the_records(
    make_fake_client: ClientFactory, listed: Path
) -> None:
    client = await make_fake_client()
    status, body = await call(client, api="delete_dag", dag_id="acc_y", metadata="true")
    assert status == 200, body
    assert body["deploy"]["metadata_exit_code"] == 0
    deleted = [json.loads(line) for line in listed.read_text().splitlines()][-1]
    assert deleted[:2] == ["dags", "delete"] and deleted[-2:] == ["--", "acc_y"]


async def test_delete_of_an_unknown_dag_is_404_and_touches_nothing(
    make_fake_client: ClientFactory, tmp_path: Path, listed: Path
) -> None:
    client = await make_fake_client()
    status, body = await call(client, api="delete_dag", dag_id="acc_z", metadata="true")
    assert status == 404 and "acc_z" in body["output"]
    assert ran(listed) == [["dags", "list"]]
    assert sorted(p.name for p in (tmp_path / "dags").iterdir()) == ["acc_x.py", "acc_y.py"]


async def test_a_file_defining_other_dags_too_is_a_409_naming_them(
    make_fake_client: ClientFactory,
    tmp_path: Path,
    listed: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AIRFLOW_DAG_FILE", "both.py")
    (tmp_path / "dags" / "both.py").write_text("# acc_x and acc_y\n")
    client = await make_fake_client()
    status, body = await call(client, api="delete_dag", dag_id="acc_x", metadata="true")
    assert status == 409 and "acc_y" in body["output"], body
    assert (tmp_path / "dags" / "both.py").exists()
    assert ran(listed) == [["dags", "list"]]


async def test_a_dag_defined_outside_the_dags_folder_is_not_deleted(
    make_fake_client: ClientFactory,
    tmp_path: Path,
    listed: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "acc_x.py").write_text("# not ours\n")
    monkeypatch.setenv("FAKE_AIRFLOW_DAGS_FOLDER", str(elsewhere))
    client = await make_fake_client()
    status, body = await call(client, api="delete_dag", dag_id="acc_x")
    assert status == 409 and "outside the dags folder" in body["output"], body
    assert (elsewhere / "acc_x.py").exists()


# --- the git target -----------------------------------------------------------------------


async def test_a_git_deploy_commits_under_the_token_name_and_pushes(
    deploying: Deploying,
    tmp_path: Path,
    remote: Path,
) -> None:
    client, headers = deploying
    status, body = await deploy(client, headers, "acc_new.py", "# v1\n")
    assert status == 200, body
    head = git(remote, "rev-parse", "main")
    assert body["deploy"] == {
        "target": "git",
        "commit": head,
        "branch": "main",
        "path": "dags/acc_new.py",
    }
    assert body["output"]["dag_ids"] == ["acc_new"]
    assert tree_of(remote)["dags/acc_new.py"] == "# v1"
    assert git(remote, "log", "-1", "--format=%an", "main") == "deployer"
    assert "deployer" in git(remote, "log", "-1", "--format=%B", "main")
    assert not (tmp_path / "dags" / "acc_new.py").exists()  # not this host's folder

    status, body = await deploy(client, headers, "acc_new.py", "# v2\n")
    assert status == 400 and "force=true" in body["output"]
    assert git(remote, "rev-parse", "main") == head
    status, body = await deploy(client, headers, "acc_new.py", "# v2\n", force="true")
    assert status == 200, body
    assert tree_of(remote)["dags/acc_new.py"] == "# v2"
    assert git(remote, "rev-parse", "main~1") == head  # the history keeps v1

    status, body = await deploy(client, headers, "acc_new.py", "# v2\n", force="true")
    assert status == 200 and "nothing was committed" in body["warning"]
    assert body["deploy"]["commit"] == git(remote, "rev-parse", "main")


async def _deploy_while_main_moves(
    client: TestClient[Any, Any],
    headers: dict[str, str],
    remote: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    other_file: str,
) -> tuple[int, dict[str, Any], str]:
    """Deploy dags/acc_race.py while someone pushes ``other_file`` between the bridge's
    fetch and its push (the fake import check waits at a gate meanwhile)."""
    gate = tmp_path / "check-gate"
    monkeypatch.setenv("FAKE_AIRFLOW_CHECK_GATE", str(gate))
    deploying = asyncio.ensure_future(deploy(client, headers, "acc_race.py", "# ours\n"))
    waiting = Path(f"{gate}.waiting")
    while not waiting.exists():
        await asyncio.sleep(0.02)
    theirs = pushed_by_someone_else(remote, tmp_path, other_file, "# theirs\n")
    gate.touch()
    status, body = await deploying
    return status, body, theirs


async def test_a_branch_that_moved_on_gets_the_deploy_replayed_never_forced(
    deploying: Deploying,
    tmp_path: Path,
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, headers = deploying
    status, body, theirs = await _deploy_while_main_moves(
        client, headers, remote, tmp_path, monkeypatch, "dags/their_dag.py"
    )
    assert status == 200, body
    assert git(remote, "rev-parse", "main") == body["deploy"]["commit"]
    assert git(remote, "rev-parse", "main~1") == theirs  # replayed on top of theirs
    files = tree_of(remote)
    assert files["dags/their_dag.py"] == "# theirs" and files["dags/acc_race.py"] == "# ours"


async def test_a_conflicting_change_is_a_409_and_nothing_is_pushed(
    deploying: Deploying,
    tmp_path: Path,
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, headers = deploying
    status, body, theirs = await _deploy_while_main_moves(
        client, headers, remote, tmp_path, monkeypatch, "dags/acc_race.py"
    )
    assert status == 409, body
    assert "nothing was pushed" in body["output"]
    assert git(remote, "rev-parse", "main") == theirs
    assert tree_of(remote)["dags/acc_race.py"] == "# theirs"
    monkeypatch.delenv("FAKE_AIRFLOW_CHECK_GATE")
    status, body = await deploy(client, headers, "acc_later.py", "# later\n")
    assert status == 200, body  # the clone was left clean for the next deploy
    assert git(remote, "rev-parse", "main~1") == theirs


async def test_delete_dag_through_git_commits_the_removal(
    deploying: Deploying,
    tmp_path: Path,
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This host's Airflow sees the repository's dags folder (as git-sync gives it).
    monkeypatch.setenv("FAKE_AIRFLOW_DAGS", "existing")
    monkeypatch.setenv("FAKE_AIRFLOW_DAGS_FOLDER", str(tmp_path / "dags"))
    client, headers = deploying
    before = git(remote, "rev-parse", "main")
    response = await client.get(
        "/admin/rest_api/api", params={"api": "delete_dag", "dag_id": "existing"}, headers=headers
    )
    body = await response.json()
    assert response.status == 200, body
    assert "dags/existing.py" not in tree_of(remote)
    assert git(remote, "rev-parse", "main~1") == before
    assert body["deploy"]["path"] == "dags/existing.py"
    assert git(remote, "log", "-1", "--format=%an", "main") == "deployer"


async def test_credentials_in_the_url_never_reach_the_answer_or_the_logs(
    make_fake_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "http://robot:hunter2-secret@127.0.0.1:9/team/dags.git"  # nothing listens on 9
    client = await make_fake_client(
        replace(_fake_info(), python=str(FAKE_AIRFLOW)),
        deploy_target="git",
        deploy_git_url=url,
    )
    with caplog.at_level(logging.INFO):
        status, body = await upload(client, "acc_new.py", "# v1\n")
    assert status == 502, body
    assert "git clone failed" in body["output"]
    assert "hunter2" not in json.dumps(body)
    assert "hunter2" not in caplog.text
    assert "git clone" in caplog.text  # the audit line is there, the URL masked


async def test_two_deploys_racing_both_land(
    deploying: Deploying,
    remote: Path,
) -> None:
    client, headers = deploying
    answers = await asyncio.gather(
        *(deploy(client, headers, f"acc_{n}.py", f"# {n}\n") for n in range(3))
    )
    assert [status for status, _ in answers] == [200, 200, 200], answers
    files = tree_of(remote)
    assert all(files[f"dags/acc_{n}.py"] == f"# {n}" for n in range(3))
    commits = {body["deploy"]["commit"] for _, body in answers}
    assert len(commits) == 3  # each its own commit, none lost
    assert git(remote, "rev-list", "--count", "main") == "4"


async def test_a_second_daemon_changing_the_clone_holds_off_a_deploy(
    make_fake_client: ClientFactory,
    tmp_path: Path,
    remote: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two daemons on one Airflow home share the clone: while another process holds its
    lock, a deploy waits (here past a short command_timeout: a 503, nothing pushed), and
    takes the lock once that process is gone."""
    client, headers = await git_client(make_fake_client, tmp_path, remote, capsys)
    settings = replace(settings_of(app_of(client)), command_timeout=0.5)
    app_of(client)[SETTINGS].settings = settings
    lock_file = settings.git_clone_path.with_name(settings.git_clone_path.name + ".lock")
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(lock_file),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        before = tree_of(remote)
        status, body = await deploy(client, headers, "acc_held.py", "# held\n")
        assert status == 503, body
        assert "another bridge on this Airflow home" in body["output"], body
        assert tree_of(remote) == before
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
    async with clone_locked({}, replace(settings, command_timeout=60)):
        pass  # the lock is free again: taken at once
