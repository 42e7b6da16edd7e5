"""deploy_dag's, refresh_dag's and refresh_all's own logic without Airflow: installing with
backups, the arguments it refuses, and the commands they run (recorded by the fake airflow)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import FormData

from bridge.catalogue.installed import AirflowInfo
from bridge.deploy import install
from bridge.deploy.staging import StagedUpload
from tests.helpers import (
    API,
    FAKE_AIRFLOW,
    ClientFactory,
    call,
    commands_of,
    fault,
    new_marker,
    read_until,
    until_waiting,
    upload,
)


def staged(folder: Path, content: str) -> StagedUpload:
    temp = folder / ".airflow-rest-bridge-upload-test.tmp"
    temp.write_text(content)
    return StagedUpload(temp, "my_dag.py", len(content))


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_backups_beyond_backups_to_keep_are_removed(tmp_path: Path, keep: int) -> None:
    dags, backups = tmp_path / "dags", tmp_path / "backups"
    dags.mkdir()
    (dags / "other.py").write_text("x = 0\n")
    install.install(staged(dags, "v0\n"), dags, backups, keep, force=False)
    for version in range(1, 6):
        result = install.install(staged(dags, f"v{version}\n"), dags, backups, keep, force=True)
        assert result.backup is not None
        assert result.backup.read_text() == f"v{version - 1}\n"
    kept = sorted(backups.iterdir())
    assert [path.read_text() for path in kept] == [f"v{n}\n" for n in range(5 - keep, 5)]
    assert (dags / "my_dag.py").read_text() == "v5\n"
    assert (dags / "other.py").read_text() == "x = 0\n"  # another file's backups: untouched


def test_backups_to_keep_0_keeps_every_backup(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    for version in range(4):
        install.install(staged(dags, f"v{version}\n"), dags, tmp_path / "b", 0, force=True)
    assert len(list((tmp_path / "b").iterdir())) == 3


def test_an_existing_file_needs_force_and_stays_as_it_was(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "my_dag.py").write_text("old\n")
    upload = staged(dags, "new\n")
    with pytest.raises(ValueError, match="force=true"):
        install.install(upload, dags, tmp_path / "b", 10, force=False)
    assert (dags / "my_dag.py").read_text() == "old\n"
    assert not (tmp_path / "b").exists()


async def test_pause_and_unpause_together_are_refused(
    make_fake_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_fake_client()
    form = FormData()
    form.add_field("dag_file", b"x = 1\n", filename="both.py")
    form.add_field("pause", "true")
    form.add_field("unpause", "true")
    response = await client.post(API, params={"api": "deploy_dag"}, data=form)
    body = await response.json()
    assert response.status == 400
    assert body["output"] == "give pause or unpause, not both"
    assert list((tmp_path / "dags").iterdir()) == []  # nothing staged stays behind


async def test_refresh_dag_reserializes_through_the_command_path(
    make_fake_client: ClientFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    client = await make_fake_client()
    caplog.set_level(logging.INFO, logger="bridge.audit")
    status, body = await call(client, api="refresh_dag", dag_id="fake_dag")
    assert status == 200, body
    assert body["output"] == "DAG [fake_dag] is now fresh as a daisy"
    ran = [json.loads(line) for line in record.read_text().splitlines()]
    assert ran == [["dags", "list", "--output=json"], ["dags", "reserialize"]]
    audited = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    assert len(audited) == 2
    assert all("api=refresh_dag" in line and "exit=0" in line for line in audited)
    assert "dags reserialize" in audited[1]


async def test_refresh_of_an_unknown_dag_is_404_and_serializes_nothing(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    client = await make_fake_client()
    status, body = await call(client, api="refresh_dag", dag_id="not_there")
    assert status == 404
    assert "not_there" in body["output"]
    ran = [json.loads(line) for line in record.read_text().splitlines()]
    assert ran == [["dags", "list", "--output=json"]]


async def test_refresh_all_whose_folder_cannot_be_imported_says_so_and_stays_200(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The report imports the dags folder with Airflow's interpreter; one without Airflow
    (this test's) fails that: the refresh itself worked, the warning says what is missing.
    The integration suite has the report on real Airflow."""
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    caplog.set_level(logging.INFO, logger="bridge.audit")
    client = await make_fake_client(replace(fake_airflow_info, python=sys.executable))
    status, body = await call(client, api="refresh_all")
    assert status == 200 and body["status"] == "OK", body
    assert "could not be imported afterwards" in body["warning"], body
    assert "dags" not in body and "import_errors" not in body
    ran = [json.loads(line) for line in record.read_text().splitlines()]
    assert ran == [["dags", "reserialize"]]
    audited = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    assert len(audited) == 2 and "dag_check.py" in audited[1], audited  # the command path


async def test_a_refresh_all_whose_report_finds_no_slot_stays_ok_and_says_why(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reserialize worked; the report after it waits for a slot like any command. A wait
    that ends in a 503 (slot_wait_timeout) leaves the call OK, with a warning saying why."""
    gate = tmp_path / "gate"
    monkeypatch.setenv("FAKE_AIRFLOW_RESERIALIZE", "gated")
    monkeypatch.setenv("FAKE_AIRFLOW_GATE", str(gate))
    client = await make_fake_client(
        replace(fake_airflow_info, python=sys.executable),
        max_concurrent_commands=1,
        slot_wait_timeout=5.0,
        reattach_wait=0,
    )
    commands = commands_of(client)
    refresh = await client.get(API, params={"api": "refresh_all", "stream": "ndjson"})
    await read_until(refresh, b"reserializing")
    # A call that waits for the only slot now gets it when the reserialize ends (a freed
    # slot goes to the first waiter), so the report after it waits in vain.
    marker = new_marker()
    holder = asyncio.create_task(client.get(API, params=fault(marker, "hang", stream="true")))
    await until_waiting(commands, 1)
    gate.touch()
    events = [json.loads(line) for line in (await refresh.read()).splitlines() if line]
    result = events[-1]
    assert result["event"] == "result" and result["status"] == "OK", result
    assert "could not be imported afterwards" in result["warning"], result
    assert "slot_wait_timeout" in result["warning"], result
    held = await holder
    assert held.status == 200
    held.close()
    await asyncio.wait_for(commands.idle.wait(), timeout=30)


async def test_a_refresh_all_that_fails_reports_nothing_more(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    monkeypatch.setenv("FAKE_AIRFLOW_RESERIALIZE", "fails")
    client = await make_fake_client()
    status, body = await call(client, api="refresh_all")
    assert status == 500 and body["status"] == "ERROR", body
    assert "the bundle could not be read" in body["output"]["stderr"]
    assert "dags" not in body and "import_errors" not in body
    ran = [json.loads(line) for line in record.read_text().splitlines()]
    assert ran == [["dags", "reserialize"]]


def test_a_backups_folder_that_does_not_exist_yet_is_made(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    backups = tmp_path / "not" / "there" / "yet"
    install.install(staged(dags, "v0\n"), dags, backups, 10, force=False)
    result = install.install(staged(dags, "v1\n"), dags, backups, 10, force=True)
    assert result.target == dags / "my_dag.py"
    assert result.backup is not None and result.backup.parent == backups
    # Named after the time in UTC, so that they sort by age whatever the host's zone.
    stamp = result.backup.name.removeprefix("my_dag.py.")
    assert re.fullmatch(r"\d{8}T\d{12}Z", stamp)
    made = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - made).total_seconds()) < 60


def test_the_overwrite_refusal_says_how_to_replace(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "my_dag.py").write_text("old\n")
    with pytest.raises(ValueError) as refused:
        install.refuse_overwrite(staged(dags, "new\n"), dags, force=False)
    assert str(refused.value) == (
        f"The file '{dags / 'my_dag.py'}' already exists on this host; send force=true to "
        "replace it (the current version is kept as a backup)"
    )


async def test_a_wait_longer_than_command_timeout_is_refused_before_anything_is_deployed(
    make_fake_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_fake_client(command_timeout=30)
    status, body = await upload(client, "waited.py", "x = 1\n", wait="true", wait_timeout="31")
    assert status == 400, body
    assert body["output"] == "wait_timeout may be at most command_timeout (30 s)"
    assert list((tmp_path / "dags").iterdir()) == []


@pytest.mark.parametrize(
    ("found", "parsed"),
    [
        ({"known": True, "source_matches": True, "last_parsed_time": 5.0}, True),
        ({"known": True, "source_matches": False, "last_parsed_time": 500.0}, False),
        ({"known": False}, False),
        # Airflow keeps no source: a parse after the deploy counts, one before it does not.
        ({"known": True, "source_matches": None, "last_parsed_time": 100.0}, True),
        ({"known": True, "source_matches": None, "last_parsed_time": 99.0}, False),
    ],
)
def test_a_dag_counts_as_parsed_only_at_the_deployed_version(
    found: dict[str, object], parsed: bool
) -> None:
    from bridge.calls.deploy_wait import _not_parsed

    report = {"dags": {"a": found}, "since": 100.0}
    assert _not_parsed(["a"], report) == ([] if parsed else ["a"])
    assert _not_parsed(["a", "b"], report)[-1] == "b"  # a DAG not in the report waits


def test_the_source_hash_is_of_the_text_airflow_keeps(tmp_path: Path) -> None:
    from bridge.deploy.dags import source_hash

    (tmp_path / "unix.py").write_bytes(b"a = 1\nb = 2\n")
    (tmp_path / "dos.py").write_bytes(b"a = 1\r\nb = 2\r\n")
    (tmp_path / "other.py").write_bytes(b"a = 1\nb = 3\n")
    unix, dos, other = (source_hash(tmp_path / f"{n}.py") for n in ("unix", "dos", "other"))
    assert unix == dos != other
    assert unix == hashlib.sha256(b"a = 1\nb = 2\n").hexdigest()
    # The child that reads what Airflow kept hashes it the same way.
    from bridge.airflow_side.parsed_check import _hash

    assert _hash("a = 1\r\nb = 2\r\n") == _hash("a = 1\nb = 2\n") == unix


@pytest.mark.parametrize(("parsed", "status"), [("yes", 200), ("no", 504)])
async def test_a_folder_deploy_installs_the_file_and_waits_for_its_parse(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    parsed: str,
    status: int,
) -> None:
    """The file lands in the dags folder whole; wait=true answers from the parsed check
    (the fake stands in for Airflow's interpreter: parsed, or not within wait_timeout)."""
    monkeypatch.setenv("FAKE_AIRFLOW_PARSED", parsed)
    client = await make_fake_client(replace(fake_airflow_info, python=str(FAKE_AIRFLOW)))
    status_seen, body = await upload(
        client, "my_dag.py", "x = 1\r\n", wait="true", wait_timeout="1"
    )
    assert status_seen == status, body
    assert (tmp_path / "dags" / "my_dag.py").read_bytes() == b"x = 1\r\n"
    assert body["deploy"]["parsed"]["dags"]["my_dag"]["parsed"] is (parsed == "yes")
