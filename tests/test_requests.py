"""Request handling that needs no real Airflow: disabled APIs, methods, repeated arguments,
the 404 and error envelopes."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace

import pytest
from aiohttp import web

from bridge.http.keys import SETTINGS
from tests.helpers import API, ClientFactory, app_of, call


async def test_a_disabled_api_says_so(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(disabled_apis=frozenset({"list_dags"}))
    response = await client.get(API, params={"api": "list_dags"})
    body = await response.json()
    assert response.status == 400
    assert "disabled" in body["output"]


async def test_only_get_and_post(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.put(API, params={"api": "list_dags"})
    assert response.status == 405
    assert (await response.json())["status"] == "ERROR"


async def test_repeated_arguments_must_agree(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.get(f"{API}?api=pause&dag_id=a&dag_id=b")
    body = await response.json()
    assert response.status == 400
    assert "dag_id" in body["output"]


async def test_unknown_path_is_404(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.get("/admin/rest_api/nothing_here")
    assert response.status == 404
    assert (await response.json())["http_response_code"] == 404


async def test_health_needs_no_token(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(rest_api_plugin_expected_http_token="t")
    response = await client.get("/health")
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "OK" and body["commands_running"] == 0


async def test_refresh_dag_needs_a_dag_id(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.get(API, params={"api": "refresh_dag"})
    assert response.status == 400
    assert "dag_id" in (await response.json())["output"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"api=version"),  # no boundary
        ("multipart/form-data; boundary=b", b"no boundary in here"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="\x0e"\r\n',
        ),
    ],
)
async def test_a_malformed_multipart_body_is_a_400(
    make_fake_client: ClientFactory, content_type: str, body: bytes
) -> None:
    client = await make_fake_client()
    response = await client.post(API, data=body, headers={"Content-Type": content_type})
    assert response.status == 400
    assert "malformed multipart" in (await response.json())["output"]


async def test_import_documents_are_not_echoed(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client(disabled_apis=frozenset({"connections"}))
    document = '{"c": {"conn_type": "postgres", "password": "hunter2"}}'
    response = await client.post(API, data={"api": "connections", "import": document})
    body = await response.json()
    assert "hunter2" not in json.dumps(body)
    assert body["post_arguments"]["import"] == f"<{len(document)} characters of JSON>"


def test_access_log_masks_the_token_in_a_query_string(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp.test_utils import make_mocked_request

    from bridge.config.settings import Settings
    from bridge.http.access_log import AccessLogger
    from bridge.http.app import create_app
    from bridge.http.keys import settings_of

    app = create_app(Settings(rest_api_plugin_expected_http_token="tok-123"))
    request = make_mocked_request("GET", f"{API}?api=version&x=tok-123", app=app)
    logging.getLogger("test.access").setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logging.getLogger("test.access"), "").log(request, web.Response(), 0.01)
    assert settings_of(app).rest_api_plugin_expected_http_token == "tok-123"
    assert "tok-123" not in caplog.text
    assert "api=version" in caplog.text


async def test_a_reloaded_upload_cap_applies_to_form_bodies_at_once(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(max_upload_size=10 * 1024 * 1024)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = b"api=version&note=" + b"x" * (2 * 1024 * 1024)  # over 1 KiB + 1 MiB for fields
    named = f"{API}?api=version"  # a body this large needs its API named in the query
    assert (await client.post(named, data=io.BytesIO(body), headers=form)).status == 200
    current = app_of(client)[SETTINGS]
    current.settings = replace(current.settings, max_upload_size=1024)  # what SIGHUP does
    response = await client.post(named, data=io.BytesIO(body), headers=form)
    assert response.status == 413
    assert "larger than" in (await response.json())["output"]
    assert (await client.post(API, data={"api": "version"})).status == 200


async def test_unknown_arguments_are_named_in_the_warning(make_fake_client: ClientFactory) -> None:
    """A seed API keeps answering when sent names it does not know, but says which: a caller
    sending wait=true to a bridge without that feature must not believe the run ended."""
    client = await make_fake_client()
    status, body = await call(client, api="rest_api_plugin_version", wait="true", zeta="1")
    assert status == 200
    assert "['wait', 'zeta']" in body["warning"] and "ignored" in body["warning"]
    status, body = await call(client, api="rest_api_plugin_version", stream="false")
    assert status == 200 and "warning" not in body
