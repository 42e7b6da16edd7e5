"""Behind a reverse proxy the operator trusts: the logs name the client (and the access log
the token), the metrics the API, the page points at the proxy's address; from anyone else the
forwarding headers change nothing."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from bridge.http.guards.proxies import seen
from tests.helpers import API, ClientFactory, fault, new_marker, start_fake_daemon

PROXY = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the nearest untrusted hop
        ("127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # through two trusted proxies
        ("192.0.2.50", "203.0.113.9", "192.0.2.50"),  # not a trusted proxy: ignored
        ("127.0.0.1", "", "127.0.0.1"),
    ],
)
def test_the_client_behind_trusted_proxies(peer: str, forwarded_for: str, client: str) -> None:
    request = make_mocked_request(
        "GET", "/health", headers={"Host": "x", "X-Forwarded-For": forwarded_for}
    )
    request = request.clone(remote=peer)
    assert seen(request, PROXY).remote == client


async def test_logs_name_the_client_a_trusted_proxy_forwards(
    make_fake_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.audit")
    trusting = await make_fake_client(trusted_proxies=PROXY)
    headers = {"X-Forwarded-For": "203.0.113.9"}
    assert (
        await trusting.get(API, params=fault(new_marker(), "ok"), headers=headers)
    ).status == 200
    untrusting = await make_fake_client()
    assert (
        await untrusting.get(API, params=fault(new_marker(), "ok"), headers=headers)
    ).status == 200
    peers = [r.getMessage().split()[0] for r in caplog.records if r.name == "bridge.audit"]
    assert peers == ["peer=203.0.113.9", "peer=127.0.0.1"]


async def test_the_page_points_where_the_proxy_was_asked(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(
        trusted_proxies=PROXY, allowed_hosts=frozenset({"bridge.example.com"})
    )
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bridge.example.com"}
    page = await (await client.get("/admin/rest_api/", headers=headers)).text()
    assert "https://bridge.example.com/admin/rest_api/api?api=list_dags" in page
    plain = await (await client.get("/admin/rest_api/")).text()
    assert f"http://127.0.0.1:{client.server.port}/admin/rest_api/api?api=list_dags" in plain


async def test_behind_a_trusted_proxy_the_access_log_names_the_token_and_metrics_the_api(
    tmp_path: Path,
) -> None:
    """What auth and the view learn about a call reaches the access log and the metrics
    when a trusted proxy forwarded it, as when it did not."""
    token = "proxied-token-51c0"
    daemon, port = await start_fake_daemon(
        tmp_path, "trusted_proxies = 127.0.0.1", f"rest_api_plugin_expected_http_token = {token}"
    )
    marker = new_marker()
    headers = {"X-Forwarded-For": "203.0.113.9", "rest_api_plugin_http_token": token}
    try:
        async with ClientSession(f"http://127.0.0.1:{port}", headers=headers) as session:
            async with session.get(API, params=fault(marker, "ok")) as response:
                assert response.status == 200, await response.text()
            async with session.get("/metrics") as response:
                assert response.status == 200
                metrics = await response.text()
        found = await daemon.line_containing(f'"GET {API}?api=test&dag_id={marker}')
    finally:
        assert await daemon.stop() == 0
    assert "aiohttp.access: 203.0.113.9 token=seed " in daemon.lines[found], daemon.lines[found]
    counted = {
        (sample.labels["api"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "bridge_requests_total" and sample.labels["endpoint"] == "api"
    }
    assert counted == {("test", "200"): 1.0}
