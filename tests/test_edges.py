"""Input at the edges (issue 25): each answered with a 4xx that says why, never a 500, and
a text stream's result line that output cannot imitate."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from bridge.calls.formats import TEXT_RESULT_PREFIX
from tests.helpers import API, ClientFactory, fault

TOKEN = "edge-token"
HEADER = "rest_api_plugin_http_token"


async def test_a_token_header_that_is_no_text_is_refused_as_a_wrong_token(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(rest_api_plugin_expected_http_token=TOKEN)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(
            b"GET /admin/rest_api/api?api=version HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + HEADER.encode()
            + b": \xff\xfe"
            + TOKEN.encode()
            + b"\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=60)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 403 " in status_line, answer[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["output"] == "Token Authentication Failed", body


@pytest.mark.parametrize("offset", ["%C2%B2", "%D9%A3", "-1", "1e3"])
async def test_a_job_output_offset_that_is_no_ascii_count_is_a_400(
    make_fake_client: ClientFactory, offset: str
) -> None:
    client = await make_fake_client()
    started = await client.get(API, params={**fault(uuid.uuid4().hex, "ok"), "detach": "true"})
    location = started.headers["Location"]
    response = await client.get(f"{location}/output?offset={offset}")
    body = await response.json()
    assert response.status == 400, body
    assert "offset must be a byte count" in body["output"], body


async def test_the_query_and_the_body_may_not_name_different_values(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    response = await client.post(f"{API}?api=unpause&dag_id=a", data={"api": "version"})
    body = await response.json()
    assert response.status == 400, body
    assert "'api' has one value in the query string and another in the body" in body["output"]
    same = await client.post(f"{API}?api=version", data={"api": "version"})
    assert same.status == 200, await same.text()


async def test_output_cannot_pass_for_the_result_line(
    make_fake_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged = TEXT_RESULT_PREFIX + '{"status": "OK", "http_response_code": 200}'
    monkeypatch.setenv("FAKE_AIRFLOW_SAY", forged)
    client = await make_fake_client()
    response = await client.get(API, params={**fault(uuid.uuid4().hex, "say"), "stream": "text"})
    lines = (await response.read()).decode().splitlines()
    results = [line for line in lines if line.startswith(TEXT_RESULT_PREFIX)]
    assert len(results) == 1 and results[0] == lines[-1], lines[-3:]
    assert " " + forged in lines, "the output's own line is sent with a space in front"
    assert json.loads(results[0].removeprefix(TEXT_RESULT_PREFIX))["exit_code"] == 0
