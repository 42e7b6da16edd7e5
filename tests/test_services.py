"""Services started with daemon=true (with the fake airflow's scheduler): the answer says
whether the service stayed up, and under systemd the bridge starts none."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.helpers import ClientFactory, call


async def test_a_service_that_stays_up_is_reported_with_its_pid(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AIRFLOW_SERVICE", "lives")
    client = await make_fake_client()
    status, body = await call(client, api="scheduler", daemon="true", stream="true")
    service = body["service"]
    try:
        assert status == 200, body
        assert service["pid_file"] == str(tmp_path / "airflow-scheduler.pid")
        assert service["stderr_file"] == str(tmp_path / "airflow-scheduler.err")
        assert (tmp_path / "airflow-scheduler.pid").read_text() == str(service["pid"])
        os.kill(service["pid"], 0)  # it runs
    finally:
        os.kill(service["pid"], signal.SIGKILL)


async def test_a_service_that_dies_at_once_is_an_error_that_says_why(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AIRFLOW_SERVICE", "dies")
    client = await make_fake_client()
    stderr_file = tmp_path / "scheduler.err"
    status, body = await call(client, api="scheduler", daemon="true", stderr=str(stderr_file))
    assert status == 500, body
    assert body["status"] == "ERROR" and body["exit_code"] == 0  # the fork itself went well
    assert "the scheduler did not stay up: it exited right after it started" in body["warning"]
    assert str(stderr_file) in body["warning"]
    assert "kinit: no credentials cache found" in body["warning"]


async def test_under_systemd_daemon_true_is_refused_and_nothing_runs(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
    client = await make_fake_client()
    record.unlink(missing_ok=True)  # what startup ran
    status, body = await call(client, api="scheduler", daemon="true")
    assert status == 400
    assert "refused under systemd" in body["output"] and "docs/systemd.md" in body["output"]
    ran = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    assert ran == []
