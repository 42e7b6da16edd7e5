"""Follows against real Airflow (issue 25): a run's wait (trigger_dag&wait=true) and a task
log's follow (task_log&follow=true) each take one of the token's follows, so a third is a 429
naming its share before anything runs; ``token revoke`` and a reload end both with the 403
warning, the run and the task going on. The DAG is paused, so the run cannot start: both
would wait until command_timeout. Job output follows are in test_follows.py."""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bridge import cli
from bridge.calls.formats import TEXT_RESULT_PREFIX
from bridge.config.tokens import read_tokens
from bridge.http.keys import SETTINGS
from bridge.http.lifecycle import reloaded
from bridge.service.notify import Notifier
from bridge.service.serve import _reload
from tests.helpers import API, ClientFactory, app_of, read_until, warm_mode, write_cfg
from tests.test_integration_waits import DAG, RUN_SEEN, following_the_log, waiting_trigger

pytestmark = [
    pytest.mark.airflow,
    # What is bounded and ended does not depend on how a command starts.
    pytest.mark.skipif(not warm_mode(), reason="BRIDGE_TEST_WARM=0: the warm pass runs it"),
]
SEED = "the-seed-token"
HEADER = "rest_api_plugin_http_token"
JOBS = "/admin/rest_api/jobs"
HANG = 120.0  # a hang detector: these end within a poll interval or two (2 s each)


async def test_a_tokens_wait_and_log_follow_are_bounded_and_end_when_it_is_revoked(
    make_client: ClientFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {tmp_path / 'tokens.json'}\n")
    assert cli.main(["token", "add", "ops", "--scope", "read,operate", "--config", str(cfg)]) == 0
    ops = {HEADER: capsys.readouterr().out.strip()}
    seed = {HEADER: SEED}
    client = await make_client(
        named_tokens=read_tokens(tmp_path / "tokens.json"),
        rest_api_plugin_expected_http_token=SEED,
        max_follows=4,
        token_share=0.5,
    )
    paused = await client.get(API, params={"api": "pause", "dag_id": DAG}, headers=seed)
    assert paused.status == 200, await paused.text()
    waiting = waiting_trigger(stream="true")
    wait = await client.get(API, params=waiting, headers=ops)
    assert wait.status == 200, await wait.text()
    job_id = wait.headers["X-Job-Id"]
    seen = await asyncio.wait_for(read_until(wait, RUN_SEEN), HANG)
    run_id = seen.split(RUN_SEEN)[1].split(b" ")[0].decode()
    log_params = following_the_log(run_id)
    log = await client.get(API, params=log_params, headers=ops)
    assert log.status == 200, await log.text()
    # Its share (2 of 4) is taken: a third follow is refused before a command runs.
    third = await client.get(API, params=log_params, headers=ops)
    body = await third.json()
    assert third.status == 429 and third.headers["Retry-After"] == "1", body
    assert "the token 'ops' already has 2 follows or waits open" in body["output"], body

    assert cli.main(["token", "revoke", "ops", "--config", str(cfg)]) == 0
    current = app_of(client)[SETTINGS]
    ready = asyncio.Event()
    ready.set()  # the daemon serves

    def reread() -> Any:  # what SIGHUP reads: the tokens file as it is now
        return replace(current.settings, named_tokens=read_tokens(tmp_path / "tokens.json"))

    in_force = functools.partial(reloaded, app_of(client))
    await _reload(current, reread, Notifier({}), ready, in_force)

    lines = (await asyncio.wait_for(log.read(), HANG)).decode().splitlines()
    followed = json.loads(lines[-1])
    assert followed["event"] == "result" and followed["status"] == "ERROR", followed
    assert followed["http_response_code"] == 403, followed
    said = "the token 'ops' was revoked: following the log stopped; the task goes on"
    assert said in followed["warning"], followed
    streamed = text_result((await asyncio.wait_for(wait.read(), HANG)).decode())
    assert streamed["status"] == "ERROR" and streamed["http_response_code"] == 403, streamed
    assert "the token 'ops' was revoked" in streamed["warning"], streamed
    # The job's wait ended too (its record, once it ended), marked; the run goes on.
    output = await client.get(f"{JOBS}/{job_id}/output", headers=seed)
    record = text_result((await asyncio.wait_for(output.read(), HANG)).decode())
    assert record["state"] == "failed" and record["http_response_code"] == 403, record
    assert "the token 'ops' was revoked: the wait for run" in record["warning"], record
    assert "the run goes on" in record["warning"], record
    assert "its token 'ops' was revoked at " in record["warning"], record


def text_result(text: str) -> dict[str, Any]:
    """The result record a text stream ends with."""
    record: dict[str, Any] = json.loads(text.rpartition(TEXT_RESULT_PREFIX)[2])
    return record
