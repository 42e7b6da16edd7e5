"""What another site's page can do through the operator's browser: nothing. Requests for a
host name that is not this daemon's are refused (DNS rebinding), cross-site calls of the API
need the token, no answer carries CORS headers, and no site may frame the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.config.settings import CurrentSettings, Settings
from bridge.http.guards.browsers import cross_site, host_allowed
from bridge.http.keys import SETTINGS
from tests.helpers import API, ClientFactory, fault, new_marker

TOKEN = "drive-by-token"
HEADER = "rest_api_plugin_http_token"
EVIL = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}


async def recording_client(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> tuple[TestClient[Any, Any], Path]:
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    client = await make_fake_client(**kw)
    record.unlink(missing_ok=True)  # what startup ran
    return client, record


def ran(record: Path) -> list[list[str]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "headers",
    [
        EVIL,
        {"Origin": "http://evil.example"},  # an older browser: no Sec-Fetch-Site
        {"Sec-Fetch-Site": "cross-site"},  # an <img>: no Origin
        {"Sec-Fetch-Site": "same-site"},  # another port of localhost is the same site
        {"Origin": "null"},  # a sandboxed frame, a file: page
    ],
)
async def test_a_cross_site_call_without_a_token_runs_nothing(
    make_fake_client: ClientFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    headers: dict[str, str],
) -> None:
    client, record = await recording_client(make_fake_client, tmp_path, monkeypatch)
    call = fault(new_marker(), "ok")
    if method == "GET":
        response = await client.get(API, params=call, headers=headers)
    else:
        response = await client.post(API, data=call, headers=headers)
    body = await response.json()
    assert response.status == 403, body
    assert "cross-site request refused" in body["output"]
    assert ran(record) == []


async def test_a_cross_site_page_can_neither_read_nor_cancel_jobs(
    make_fake_client: ClientFactory,
) -> None:
    """Job output is command output: a page of another site may not read it, and may not
    cancel what runs."""
    client = await make_fake_client()
    response = await client.get(API, params={**fault(new_marker(), "ok"), "detach": "true"})
    location = response.headers["Location"]
    for method, path in [
        ("GET", "/admin/rest_api/jobs"),
        ("GET", location),
        ("GET", f"{location}/output"),
        ("DELETE", location),
    ]:
        refused = await client.request(method, path, headers=EVIL)
        body = await refused.json()
        assert refused.status == 403 and "cross-site request refused" in body["output"], path
    assert (await client.get(location)).status == 200  # the same call from a script


async def test_the_jobs_endpoints_take_the_token(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(rest_api_plugin_expected_http_token="tok")
    token = {"rest_api_plugin_http_token": "tok"}
    for path in ["/admin/rest_api/jobs", f"/admin/rest_api/jobs/{'0' * 20}/output"]:
        response = await client.get(path)
        assert response.status == 403, path
        assert (await response.json())["output"] == "Token Authentication Failed"
    assert (await client.get("/admin/rest_api/jobs", headers=token)).status == 200


async def test_a_cross_site_call_with_the_token_is_a_script_and_runs(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, record = await recording_client(
        make_fake_client, tmp_path, monkeypatch, rest_api_plugin_expected_http_token=TOKEN
    )
    call = fault(new_marker(), "ok")
    refused = await client.get(API, params=call, headers=EVIL)
    assert refused.status == 403
    wrong = await client.get(API, params=call, headers={**EVIL, HEADER: "guess"})
    assert wrong.status == 403
    response = await client.get(API, params=call, headers={**EVIL, HEADER: TOKEN})
    assert response.status == 200
    assert len(ran(record)) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, scripts
        {"Sec-Fetch-Site": "same-origin"},  # the test page
        {"Sec-Fetch-Site": "none"},  # typed into the address bar
        {"Origin": "ORIGIN"},  # the page's own POST
    ],
)
async def test_the_page_and_scripts_keep_working(
    make_fake_client: ClientFactory, headers: dict[str, str]
) -> None:
    client = await make_fake_client()
    origin = f"http://127.0.0.1:{client.server.port}"
    headers = {name: value.replace("ORIGIN", origin) for name, value in headers.items()}
    response = await client.post(API, data=fault(new_marker(), "ok"), headers=headers)
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("path", [API + "?api=version", "/health", "/admin/rest_api/"])
async def test_a_foreign_host_name_is_refused(make_fake_client: ClientFactory, path: str) -> None:
    client = await make_fake_client()
    port = client.server.port
    response = await client.get(path, headers={"Host": f"evil.example:{port}"})
    assert response.status == 421
    assert "evil.example" in (await response.json())["output"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "127.0.0.1"):
        assert (await client.get(path, headers={"Host": host})).status == 200, host


async def test_names_the_operator_lists_are_served(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(allowed_hosts=frozenset({"bridge.example.com"}))
    response = await client.get("/health", headers={"Host": "Bridge.Example.com:443"})
    assert response.status == 200
    assert (await client.get("/health", headers={"Host": "example.com"})).status == 421


async def test_no_answer_carries_cors_headers_and_the_page_cannot_be_framed(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    answers = [
        await client.get(API, params={"api": "version"}),
        await client.options(API, headers={**EVIL, "Access-Control-Request-Method": "POST"}),
        await client.get("/admin/rest_api/", headers=EVIL),
        await client.get("/admin/rest_api/openapi.json"),
    ]
    for answer in answers:
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
    page = answers[2]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8799", True),
        ("[::1]:8799", True),
        ("10.1.2.3", True),
        ("localhost:8799", True),
        ("app.localhost", True),
        ("LOCALHOST.", True),
        ("evil.example:8799", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_host_names(host: str, allowed: bool) -> None:
    assert host_allowed(host, frozenset()) is allowed


def test_an_origin_on_another_port_is_cross_site() -> None:
    from aiohttp.test_utils import make_mocked_request

    app = web.Application()
    app[SETTINGS] = CurrentSettings(Settings())  # where the request was addressed: no proxies

    def request(origin: str, host: str) -> Any:
        headers = {"Origin": origin, "Host": host}
        return make_mocked_request("GET", API, headers=headers, app=app)

    assert not cross_site(request("http://127.0.0.1:8799", "127.0.0.1:8799"))
    assert not cross_site(request("https://bridge.example", "bridge.example:443"))
    assert cross_site(request("http://127.0.0.1:8080", "127.0.0.1:8799"))
    assert cross_site(request("http://localhost:8799", "127.0.0.1:8799"))
