"""What a stopped command's result says, with tests/fake_airflow.py (a command that ignores
SIGTERM, one that does not): who stopped it (a cancel names its token, never the token's
value; a timeout) and how it ended (SIGKILL after kill_grace_period, not a bare "exited with
code -9"). And what follows a `tasks test` the bridge had to kill: ending the DAG run it
left is tried through the command path, and failing to is a warning, never the call's
crash. What the ending does in Airflow: tests/test_integration_test_runs.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge import cli
from bridge.calls.temporary_runs import TaskTest
from bridge.catalogue.installed import AirflowInfo
from bridge.config.load import load
from bridge.process.command import Outcome
from tests.helpers import API, ClientFactory, fault, new_marker, processes_with, write_cfg

HEADER = "rest_api_plugin_http_token"
JOBS = "/admin/rest_api/jobs"
SEED = "the-seed-token-value"


async def sigterm_ignored(pid: int) -> None:
    """Until the process ignores SIGTERM (the fake prints its first line just before)."""
    bit = 1 << (signal.SIGTERM - 1)
    while True:
        status = await asyncio.to_thread(Path(f"/proc/{pid}/status").read_text)
        ignored = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
        if int(ignored.split()[1], 16) & bit:
            return
        await asyncio.sleep(0.02)  # the fake's next instruction: polled, not guessed


async def running_pid(client: TestClient[Any, Any], job_id: str, token: str) -> int:
    """The pid of the job's command once it printed its first line."""
    output = await client.get(f"{JOBS}/{job_id}/output", headers={HEADER: token})
    async for data in output.content.iter_any():
        if b"started" in data:
            break
    output.close()
    status = await (await client.get(f"{JOBS}/{job_id}", headers={HEADER: token})).json()
    return int(status["pid"])


async def test_a_cancel_names_its_token_and_says_why_sigkill_was_needed(
    make_fake_client: ClientFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {tmp_path / 'tokens.json'}\n")
    assert cli.main(["token", "add", "ops", "--scope", "operate", "--config", str(cfg)]) == 0
    token = capsys.readouterr().out.strip()
    settings = load(cfg, {})
    client = await make_fake_client(
        tokens_file=settings.tokens_file,
        named_tokens=settings.named_tokens,
        rest_api_plugin_expected_http_token=SEED,
        kill_grace_period=0.5,
    )
    marker = new_marker()
    params = fault(marker, "ignore_term", detach="true")
    started = await client.get(API, params=params, headers={HEADER: token})
    assert started.status == 202, await started.text()
    job_id = (await started.json())["job_id"]
    await sigterm_ignored(await running_pid(client, job_id, token))

    response = await client.delete(f"{JOBS}/{job_id}", headers={HEADER: token})
    body = await response.json()
    assert response.status == 200 and body["state"] == "cancelled", body
    warning = body["warning"]
    assert (
        "cancelled (DELETE) by token 'ops': the command was stopped; it ignored SIGTERM for "
        "0.5 s (kill_grace_period), so it was killed with SIGKILL (exit code -9)"
    ) in warning, warning
    assert "exited with code" not in warning
    assert token not in json.dumps(body) and SEED not in json.dumps(body)
    # The fake is no Airflow: there is no interpreter to end the test's run with, and the
    # result says so rather than failing.
    assert f"the DAG run that `tasks test` made for {marker} was not ended" in warning
    assert processes_with(marker) == []


async def test_a_cancel_without_auth_says_no_token_was_asked(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(kill_grace_period=0.5)
    marker = new_marker()
    started = await client.get(API, params=fault(marker, "hang", detach="true"))
    job_id = (await started.json())["job_id"]
    await running_pid(client, job_id, "")
    body = await (await client.delete(f"{JOBS}/{job_id}")).json()
    assert body["state"] == "cancelled"
    assert (
        "cancelled (DELETE) with no token (the daemon asks for none): the command was "
        "stopped; it was ended by SIGTERM (exit code -15)"
    ) in body["warning"], body["warning"]


async def test_a_timeout_says_how_the_command_ended(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(command_timeout=1.0, kill_grace_period=0.5)
    for mode, how in [
        ("ignore_term", "it ignored SIGTERM for 0.5 s (kill_grace_period), so it was killed "
         "with SIGKILL (exit code -9)"),
        ("hang", "it was ended by SIGTERM (exit code -15)"),
    ]:  # fmt: skip
        marker = new_marker()
        response = await client.get(API, params=fault(marker, mode))
        body = await response.json()
        assert response.status == 504
        expected = f"the command timed out after 1 s and was stopped; {how}"
        assert expected in body["warning"], body["warning"]


async def test_failing_to_end_a_killed_tests_run_is_a_warning_through_the_command_path(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An interpreter without Airflow (this suite's own): the script fails, the call answers
    as it would have, with the script's last line in its warning, and the script ran as any
    command runs (an audit line)."""
    caplog.set_level(logging.INFO, logger="bridge.audit")
    without_airflow = dataclasses.replace(fake_airflow_info, python=sys.executable)
    client = await make_fake_client(without_airflow, command_timeout=1.0, kill_grace_period=0.2)
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "hang"))
    body = await response.json()
    assert response.status == 504 and body["exit_code"] == -15
    assert (
        f"the DAG run that `tasks test` made for {marker} could not be ended (exit code 1): "
        "ModuleNotFoundError: No module named 'airflow'"
    ) in body["warning"], body["warning"]
    assert "ended_test_runs" not in body
    audited = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    assert any("end_test_runs.py" in line and marker in line for line in audited), audited


async def test_a_test_that_ended_by_itself_leaves_no_run_to_end(
    make_fake_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Its own ``finally`` deleted the run: nothing more runs, nothing more is said."""
    caplog.set_level(logging.INFO, logger="bridge.audit")
    client = await make_fake_client()
    for mode in ("ok", "crash"):
        response = await client.get(API, params=fault(new_marker(), mode))
        body = await response.json()
        assert "DAG run" not in body.get("warning", ""), body
    audited = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    assert len(audited) == 2 and not any("end_test_runs" in line for line in audited)


def test_the_run_a_test_names_is_found_across_reads() -> None:
    run_id = b"__airflow_temporary_run_2026-12-02T13:04:48.219348+00:00__"
    line = b"[info] Created dag run. dagrun=<DagRun bridge_long @ None: " + run_id + b", state"
    for cut in range(1, len(line)):
        test = TaskTest("bridge_long")
        test.feed("stderr", line[:cut])
        test.feed("stdout", b"tick 1\n")  # the other stream's reads come between
        test.feed("stderr", line[cut:])
        assert test.named == run_id.decode(), cut
    test = TaskTest("bridge_long")
    test.feed("stdout", b"__airflow_temporary_run_not a date__ " + run_id)
    assert test.named == run_id.decode()


def test_only_a_command_ended_by_a_signal_left_its_run() -> None:
    test = TaskTest("bridge_long")
    assert test.left_behind(Outcome(-9, 1.0, killed_after=5.0))
    assert test.left_behind(Outcome(-15, 1.0))
    assert test.left_behind(Outcome(None, 1.0))  # never seen to end
    assert not test.left_behind(Outcome(1, 1.0))  # SIGTERM handled: its finally ran
    assert not test.left_behind(Outcome(0, 1.0))
    assert not test.left_behind(None)  # it runs on after its client left
