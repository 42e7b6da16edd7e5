"""Request handling that needs no real Airflow: disabled APIs, methods, repeated arguments,
the 404 and error envelopes."""

from __future__ import annotations

from tests.conftest import API, ClientFactory


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


async def test_query_wins_over_the_body_as_in_the_seed(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.post(
        API,
        params={"api": "test", "dag_id": "from_query", "task_id": "ok"},
        data={"dag_id": "from_body", "execution_date": "2024-01-02"},
    )
    body = await response.json()
    assert response.status == 200, body
    assert "started from_query ok" in body["output"]["stdout"]
    assert body["post_arguments"] == {"dag_id": "from_body", "execution_date": "2024-01-02"}


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
