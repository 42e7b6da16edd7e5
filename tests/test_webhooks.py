"""Job webhooks (bridge.jobs.webhooks) through the real app on the fake airflow, with a
receiver started in the test: a signed record for a succeeded, a failed and a cancelled job;
a receiver that is down at first still gets it once it is up; the operator's filters; and
settings that could not sign. Then the deliveries on their own, with a scripted sender: a try
that fails in a way nobody foresaw, the daemon's stop, and the package's layer. The
integration suite does the same on real Airflow."""

from __future__ import annotations

import ast
import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.config.load import ConfigError, load
from bridge.config.settings import Settings
from bridge.http.keys import WEBHOOKS
from bridge.http.webhook_sender import AiohttpSender
from bridge.jobs import webhooks
from bridge.jobs.webhooks import Sender, SendFailed, Webhooks, shown
from tests.helpers import (
    FAKE_AIRFLOW,
    WEBHOOK_SECRET,
    ClientFactory,
    Receiver,
    detached,
    fault,
    new_marker,
    read_until,
    start_receiver,
    write_cfg,
)

JOBS = "/admin/rest_api/jobs"
LOGGER = "bridge.jobs.webhooks"
RECORD = {"job_id": "j1", "api": "test", "token": "-", "state": "succeeded"}


def run(mode: str) -> dict[str, str]:
    """The fake airflow's ``mode``, as a test call's parameters."""
    return fault(new_marker(), mode)


async def settled(client: TestClient[Any, Any]) -> Webhooks:
    """The app's webhooks, once every delivery started so far was delivered or given up:
    what is asserted about them after this is no longer in flight."""
    hooks = client.app[WEBHOOKS]
    await asyncio.wait_for(hooks.idle(), 60)
    return hooks


async def ended(client: TestClient[Any, Any], job_id: str) -> None:
    """Return once the job ended (its output, followed to the end)."""
    async with client.get(f"{JOBS}/{job_id}/output") as output:
        await output.read()


async def test_succeeded_failed_and_cancelled_jobs_each_arrive_signed(
    make_fake_client: ClientFactory,
    aiohttp_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AIRFLOW_GATE", str(tmp_path / "gate"))  # never opened: cancelled
    receiver = Receiver()
    url = await start_receiver(aiohttp_server, receiver)
    client = await make_fake_client(job_webhooks=(url,), job_webhook_secret=WEBHOOK_SECRET)
    ok = await detached(client, **run("ok"))
    (first,) = await receiver.records(1)
    crashed = await detached(client, **run("crash"))
    records = await receiver.records(2)
    gate_job = await detached(client, **run("until_gate"))
    async with client.get(f"{JOBS}/{gate_job}/output") as following:
        await read_until(following, b"tick 0")
        assert (await client.delete(f"{JOBS}/{gate_job}")).status == 200
    records = await receiver.records(3)
    states = {record["job_id"]: record["state"] for record in records}
    assert states == {ok: "succeeded", crashed: "failed", gate_job: "cancelled"}, records
    assert first["api"] == "test" and first["exit_code"] == 0 and first["token"] == "-"
    # The body is the job's record, as GET .../jobs/<id> answers it.
    status = await (await client.get(f"{JOBS}/{ok}")).json()
    assert {key: status[key] for key in first} == first


async def test_a_receiver_that_is_down_at_first_gets_it_once_it_is_up(
    make_fake_client: ClientFactory, aiohttp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.jobs.webhooks")
    receiver = Receiver(failing=2)  # 503, 503, then up (retried after 1 s, then 2 s)
    url = await start_receiver(aiohttp_server, receiver)
    client = await make_fake_client(job_webhooks=(url,), job_webhook_secret=WEBHOOK_SECRET)
    job = await detached(client, **run("ok"))
    (record,) = await receiver.records(1)
    await settled(client)  # the receiver has it; the delivery counts and logs it after
    assert record["job_id"] == job and receiver.refused == 2
    said = "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)
    assert "HTTP 503" in said and "delivered at try 3" in said
    assert "in-the-query" not in said  # a query may hold a secret: never logged
    metrics = await (await client.get("/metrics")).text()
    assert 'bridge_job_webhooks_total{outcome="delivered"} 1.0' in metrics


async def test_a_receiver_that_stays_down_is_given_up_after_the_retry_time(
    make_fake_client: ClientFactory, aiohttp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.jobs.webhooks")
    receiver = Receiver(failing=10**6)
    url = await start_receiver(aiohttp_server, receiver)
    client = await make_fake_client(
        job_webhooks=(url,), job_webhook_secret=WEBHOOK_SECRET, job_webhook_retry_for=2.5
    )
    await ended(client, await detached(client, **run("ok")))
    hooks = await settled(client)  # tries at 0 and 1 s; a third at 3 s is too late
    assert hooks.outcomes == {"given_up": 1}, hooks.outcomes
    assert receiver.refused in (1, 2) and receiver.received == []
    assert "given up after" in caplog.text


async def test_the_operators_filters_choose_what_is_sent(
    make_fake_client: ClientFactory, aiohttp_server: Any
) -> None:
    receiver = Receiver()
    url = await start_receiver(aiohttp_server, receiver)
    client = await make_fake_client(
        job_webhooks=(url,),
        job_webhook_secret=WEBHOOK_SECRET,
        job_webhook_apis=frozenset({"list_dags"}),
    )
    tested = await detached(client, **run("ok"))  # api=test: not among job_webhook_apis
    listed = await detached(client, api="list_dags")
    await ended(client, tested)
    await ended(client, listed)
    hooks = await settled(client)  # whatever either job's end started is over
    (record,) = await receiver.records(1)
    assert record["job_id"] == listed and len(receiver.received) == 1
    assert hooks.outcomes == {"delivered": 1}, hooks.outcomes


def test_webhooks_without_a_secret_or_with_a_bad_url_are_refused(tmp_path: Path) -> None:
    base = f"airflow_executable = {FAKE_AIRFLOW}\n"
    cfg = write_cfg(tmp_path / "airflow.cfg", base + "job_webhooks = https://ci.example/hook")
    with pytest.raises(ConfigError, match="job_webhook_secret"):
        load(cfg, {})
    cfg = write_cfg(tmp_path / "airflow.cfg", base + "job_webhooks = ftp://ci.example/hook")
    with pytest.raises(ConfigError, match="no http"):
        load(cfg, {})
    cfg = write_cfg(tmp_path / "airflow.cfg", base + "job_webhooks = http://ci.example:99999/")
    with pytest.raises(ConfigError, match="no valid port"):
        load(cfg, {})


def test_a_url_is_logged_without_credentials_or_query() -> None:
    assert shown("https://user:pw@ci.example:8443/hook?token=x#y") == "https://ci.example:8443/hook"


# -- the deliveries on their own -------------------------------------------------------------

SECRET_URL = "http://user:pw@%s/hook?token=in-the-query"


class ScriptedSender:
    """A Sender whose tries answer as scripted (a status, or an exception raised), then 204."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.tries = 0
        self.closed = False

    async def send(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        self.tries += 1
        answer = self.answers.pop(0) if self.answers else 204
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def close(self) -> None:
        self.closed = True


def hooks_for(sender: Sender, url: str, **settings: Any) -> Webhooks:
    chosen = Settings(job_webhooks=(url,), job_webhook_secret=WEBHOOK_SECRET, **settings)
    return Webhooks(lambda: chosen, sender)


def said(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)


async def test_a_try_that_fails_unforeseen_is_retried_and_logged_without_secrets(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setattr(webhooks, "FIRST_DELAY", 0.01)  # the backoff, shortened
    url = SECRET_URL % "ci.example"
    # Not a SendFailed: an exception the sender does not know, quoting the URL.
    sender = ScriptedSender(ValueError(f"cannot send to {url}"))
    hooks = hooks_for(sender, url)
    try:
        hooks.ended(RECORD)
        await asyncio.wait_for(hooks.idle(), 60)
    finally:
        await hooks.close()
    assert hooks.outcomes == {"delivered": 1} and sender.tries == 2, hooks.outcomes
    text = said(caplog)
    assert "http://ci.example/hook" in text and "unexpected ValueError at" in text, text
    assert "delivered at try 2" in text
    assert "pw" not in text and "in-the-query" not in text, text


async def test_a_host_name_the_client_cannot_encode_is_a_failed_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiohttp raises UnicodeError (no ClientError) for an empty label: it once escaped and
    ended the delivery unsaid and uncounted."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    hooks = hooks_for(AiohttpSender(), SECRET_URL % "a..b", job_webhook_retry_for=0.5)
    try:
        hooks.ended(RECORD)
        await asyncio.wait_for(hooks.idle(), 60)
    finally:
        await hooks.close()
    assert hooks.outcomes == {"given_up": 1}, hooks.outcomes  # no second try within 0.5 s
    text = said(caplog)
    assert "http://a..b/hook" in text and "unexpected UnicodeError" in text, text
    assert "pw" not in text and "in-the-query" not in text, text


async def test_a_url_the_client_refuses_is_said_without_its_secrets() -> None:
    sender = AiohttpSender()
    try:
        with pytest.raises(SendFailed) as refused:  # aiohttp's InvalidURL: its text is the URL
            await sender.send(SECRET_URL % "\u00e9\u3002\u3002x", b"{}", {}, 10.0)
    finally:
        await sender.close()
    assert "pw" not in str(refused.value) and "in-the-query" not in str(refused.value)


async def test_no_delivery_starts_once_the_daemon_stops() -> None:
    sender = ScriptedSender()
    hooks = hooks_for(sender, "http://ci.example/hook")
    await hooks.close()
    hooks.ended(RECORD)  # a job that ended while the daemon stops
    assert hooks.pending == 0
    await hooks.idle()
    assert sender.tries == 0 and sender.closed and not hooks.outcomes


def test_the_jobs_package_imports_no_http_client() -> None:
    """bridge/jobs/ is the domain: HTTP client code is an adapter's (bridge/http/)."""
    package = Path(webhooks.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in ("aiohttp", "multidict", "yarl"), (path, name)
