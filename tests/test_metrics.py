"""GET /metrics (bridge.http.metrics): parsed with the Prometheus client library's own text
parser; request counters and durations move with calls, by route, API and status; commands
running and waiting, jobs by state and the warm helper's state read at the scrape; who may
read it (the metrics token as a bearer, the API token, never a cross-site page), and no
token in what it shows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bridge.config.tokens import NamedToken, Scope, TokenTable, hash_token
from tests.helpers import (
    API,
    ClientFactory,
    commands_of,
    fault,
    hold_the_slot,
    new_marker,
    read_until,
    until_waiting,
)

TOKEN = "api-token-6d1f"
METRICS_TOKEN = "metrics-token-93ab"


async def scrape(client: TestClient[Any, Any], **headers: str) -> dict[tuple[str, Any], float]:
    """Every sample: (name, its labels as sorted pairs) -> value."""
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests(samples: dict[tuple[str, Any], float], api: str, status: str) -> float:
    labels = (("api", api), ("endpoint", "api"), ("status", status))
    return samples.get(("bridge_requests_total", labels), 0.0)


async def test_request_counters_and_durations_move_with_calls(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    before = await scrape(client)
    assert (await client.get(API, params=fault(new_marker(), "ok"))).status == 200
    assert (await client.get(API, params={"api": "no_such_api"})).status == 400
    assert (await client.get(API, params={"api": "test"})).status == 400  # arguments missing
    after = await scrape(client)
    assert requests(after, "test", "200") == requests(before, "test", "200") + 1
    assert requests(after, "test", "400") == requests(before, "test", "400") + 1
    assert requests(after, "unknown", "400") == requests(before, "unknown", "400") + 1
    count = ("bridge_request_duration_seconds_count", (("api", "test"), ("endpoint", "api")))
    assert after[count] == before.get(count, 0) + 2
    # The scrapes count too, by their route.
    metrics = ("bridge_requests_total", (("api", ""), ("endpoint", "metrics"), ("status", "200")))
    assert after[metrics] == before.get(metrics, 0) + 1
    assert after[("bridge_warm_helper_state", (("state", "off"),))] == 1
    assert after[("bridge_warm_helper_restarts_total", ())] == 0


async def test_running_waiting_and_jobs_are_read_at_the_scrape(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(max_concurrent_commands=1, reattach_wait=0)
    commands = commands_of(client)
    held, _ = await hold_the_slot(client)
    waiting = asyncio.create_task(client.get(API, params=fault(new_marker(), "ok")))
    await until_waiting(commands, 1)
    samples = await scrape(client)
    assert samples[("bridge_commands_running", ())] == 1
    assert samples[("bridge_commands_waiting", ())] == 1
    assert samples[("bridge_airflow_processes", ())] == 1
    assert samples[("bridge_jobs", (("state", "running"),))] == 1  # a stream is a job
    held.close()
    assert (await waiting).status == 200
    await asyncio.wait_for(commands.idle.wait(), timeout=30)
    samples = await scrape(client)
    assert samples[("bridge_commands_running", ())] == 0
    assert samples[("bridge_commands_waiting", ())] == 0
    assert samples[("bridge_jobs", (("state", "running"),))] == 0
    assert samples[("bridge_jobs", (("state", "cancelled"),))] == 1  # its client left


async def test_who_may_read_the_metrics(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(
        rest_api_plugin_expected_http_token=TOKEN, metrics_token=METRICS_TOKEN
    )
    refused = await client.get("/metrics")
    assert refused.status == 403
    assert (await refused.json())["output"] == "Token Authentication Failed"
    wrong = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status == 403
    await scrape(client, Authorization=f"Bearer {METRICS_TOKEN}")
    await client.get(API, params={"api": "version"}, headers={"rest_api_plugin_http_token": TOKEN})
    text = await (
        await client.get("/metrics", headers={"rest_api_plugin_http_token": TOKEN})
    ).text()
    assert TOKEN not in text and METRICS_TOKEN not in text
    cross = await client.get(
        "/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status == 403 and "cross-site" in (await cross.json())["output"]


async def test_without_any_token_the_metrics_are_open(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    await scrape(client)


async def test_a_named_token_with_the_read_scope_reads_the_metrics(
    make_fake_client: ClientFactory, tmp_path: Path
) -> None:
    reader, operator = "arb_reader-5c2e", "arb_operator-a41f"
    table = TokenTable(
        (
            NamedToken("reader", frozenset({Scope.READ}), hash_token(reader)),
            NamedToken("operator", frozenset({Scope.OPERATE}), hash_token(operator)),
        )
    )
    client = await make_fake_client(tokens_file=tmp_path / "tokens.json", named_tokens=table)
    await scrape(client, rest_api_plugin_http_token=reader)
    await scrape(client, rest_api_plugin_http_token=operator)  # operate includes read
    refused = await client.get("/metrics", headers={"rest_api_plugin_http_token": "arb_no-such"})
    assert refused.status == 403
    assert (await refused.json())["output"] == "Token Authentication Failed"


def api_requests(samples: dict[tuple[str, Any], float]) -> float:
    """Requests to the API counted so far, whatever their status."""
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "bridge_requests_total" and ("endpoint", "api") in labels
    )


async def test_a_client_that_left_mid_request_is_counted_as_499(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(reattach_wait=0)
    before = await scrape(client)
    response = await client.get(API, params=fault(new_marker(), "hang", stream="true"))
    await read_until(response, b"started")
    response.close()  # the client goes away while the stream waits for more output
    await asyncio.wait_for(commands_of(client).idle.wait(), timeout=30)
    after = await scrape(client)
    async with asyncio.timeout(30):  # nothing to await: the count is taken as the handler ends
        while api_requests(after) == api_requests(before):
            await asyncio.sleep(0.05)
            after = await scrape(client)
    assert requests(after, "test", "499") == requests(before, "test", "499") + 1
    assert api_requests(after) == api_requests(before) + 1
