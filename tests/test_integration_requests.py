"""Bad input, auth and output parity against the real Airflow."""

from __future__ import annotations

import pytest

from bridge.calls.envelope import FORBIDDEN_OUTPUT
from bridge.catalogue.table import NAMES
from bridge.config.settings import Settings
from tests.helpers import API, ClientFactory, call, call_ok, cli_async, warm_mode

pytestmark = pytest.mark.airflow


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "API should be provided"),
        ({"api": "no_such_api"}, "was not found"),
        ({"api": "trigger_dag"}, "dag_id"),
        ({"api": "pause", "dag_id": "--help"}, "must not start with '-'"),
        ({"api": "pause", "dag_id": "../x"}, "dag_id"),
        ({"api": "pause", "dag_id": "$(touch /tmp/bridge-pwned)"}, "dag_id"),
        ({"api": "variables", "set": "$(id) `id`"}, "may only contain"),
        ({"api": "trigger_dag", "dag_id": "bridge_demo", "conf": "{not json"}, "not valid JSON"),
        ({"api": "list_dags", "subdir": "../../etc"}, "inside"),
        ({"api": "variables", "import": "/etc/passwd"}, "not a path"),
        ({"api": "list_dags", "stream": "sometimes"}, "stream"),
        ({"api": "list_dags", "output": "yaml"}, "output"),
    ],
)
async def test_bad_input_is_a_4xx_envelope(
    make_client: ClientFactory, params: dict[str, str], expected: str
) -> None:
    client = await make_client()
    status, body = await call(client, **params)
    assert status == 400
    assert body["status"] == "ERROR"
    assert expected in body["output"]
    if not params.get("api") or params["api"] == "no_such_api":
        assert all(name in body["output"] for name in NAMES)


async def test_huge_query_string_then_the_daemon_keeps_serving(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    response = await client.get(f"{API}?api=pause&dag_id={'a' * 100_000}")
    body = await response.json()
    assert response.status == 414
    assert body["status"] == "ERROR"
    assert (await client.get("/health")).status == 200
    assert (await call_ok(client, api="list_dags"))["exit_code"] == 0


async def test_post_form_body_works_like_the_query(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.post(API, data={"api": "list_tasks", "dag_id": "bridge_demo"})
    body = await response.json()
    assert response.status == 200
    assert body["post_arguments"]["dag_id"] == "bridge_demo"
    assert "slow_lines" in body["output"]["stdout"]


async def test_query_and_body_may_name_an_argument_only_alike(make_client: ClientFactory) -> None:
    """The seed let the query win; a value a proxy checked in one must be what runs, so
    different values are a 400 and the same value in both is taken."""
    client = await make_client()
    response = await client.post(
        API, params={"api": "list_tasks", "dag_id": "bridge_demo"}, data={"dag_id": "other"}
    )
    body = await response.json()
    assert response.status == 400, body
    assert "'dag_id' has one value in the query string and another" in body["output"], body
    response = await client.post(
        API, params={"api": "list_tasks", "dag_id": "bridge_demo"}, data={"dag_id": "bridge_demo"}
    )
    body = await response.json()
    assert response.status == 200, body
    assert "slow_lines" in body["output"]["stdout"]


async def test_token_auth(make_client: ClientFactory) -> None:
    client = await make_client(rest_api_plugin_expected_http_token="s3cret-token")
    for headers in ({}, {"rest_api_plugin_http_token": "wrong"}):
        response = await client.get(API, params={"api": "version"}, headers=headers)
        body = await response.json()
        assert response.status == 403
        assert set(body) == {"call_time", "http_response_code", "output", "response_time", "status"}
        assert body["output"] == FORBIDDEN_OUTPUT
        assert body["http_response_code"] == 403 and body["status"] == "ERROR"
    response = await client.get(
        API,
        params={"api": "list_dags"},
        headers={"rest_api_plugin_http_token": "s3cret-token"},
    )
    assert response.status == 200
    assert "s3cret-token" not in await response.text()
    assert (await client.get("/health")).status == 200  # liveness needs no token


@pytest.mark.cold  # the cold CLI answers as the warm helper does
@pytest.mark.parametrize(
    ("params", "argv"),
    [
        ({"api": "list_dags"}, ["dags", "list"]),
        ({"api": "list_tasks", "dag_id": "bridge_demo"}, ["tasks", "list", "bridge_demo"]),
        ({"api": "variables"}, ["variables", "list"]),
        ({"api": "pool"}, ["pools", "list"]),
        ({"api": "connections"}, ["connections", "list"]),
    ],
)
async def test_read_only_output_matches_the_plain_cli(
    make_client: ClientFactory, settings: Settings, params: dict[str, str], argv: list[str]
) -> None:
    client = await make_client()
    response = await client.get(API, params=params)
    body = await response.json()
    assert response.status == 200, body
    assert body["output"]["stdout"] == await cli_async(settings, *argv)
    # The warm pass compares the warm helper's children with the plain CLI: they ran there.
    expected = "warm" if warm_mode() else "cold"
    assert f'desc="{expected}"' in response.headers["Server-Timing"]
