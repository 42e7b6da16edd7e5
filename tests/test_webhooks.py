"""Job webhooks (bridge.jobs.webhooks) through the real app on the fake airflow, with a
receiver started in the test: a signed record for a succeeded, a failed and a cancelled job;
a receiver that is down at first still gets it once it is up; the operator's filters; and
settings that could not sign. The integration suite does the same on real Airflow."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.config.load import ConfigError, load
from bridge.http.keys import WEBHOOKS
from bridge.jobs.webhooks import shown
from tests.helpers import (
    API,
    FAKE_AIRFLOW,
    WEBHOOK_SECRET,
    ClientFactory,
    Receiver,
    fault,
    new_marker,
    read_until,
    start_receiver,
    write_cfg,
)

JOBS = "/admin/rest_api/jobs"


async def detached(client: TestClient[Any, Any], mode: str) -> str:
    response = await client.get(API, params={**fault(new_marker(), mode), "detach": "true"})
    assert response.status == 202, await response.text()
    return str((await response.json())["job_id"])


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
    ok = await detached(client, "ok")
    (first,) = await receiver.records(1)
    crashed = await detached(client, "crash")
    records = await receiver.records(2)
    gate_job = await detached(client, "until_gate")
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
    job = await detached(client, "ok")
    (record,) = await receiver.records(1)
    assert record["job_id"] == job and receiver.refused == 2
    said = "\n".join(r.getMessage() for r in caplog.records if r.name == "bridge.jobs.webhooks")
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
    await ended(client, await detached(client, "ok"))
    hooks = client.app[WEBHOOKS]
    await asyncio.wait_for(hooks.idle(), 60)  # tries at 0 and 1 s; a third at 3 s is too late
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
    await detached(client, "ok")  # api=test: not among job_webhook_apis
    response = await client.get(API, params={"api": "list_dags", "detach": "true"})
    listed = (await response.json())["job_id"]
    (record,) = await receiver.records(1)
    assert record["job_id"] == listed and len(receiver.received) == 1


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
