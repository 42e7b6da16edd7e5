"""Adding a stream format is one entry in bridge.calls.formats.FORMATS: a throwaway format
registered here is served by the API and by a job's output (by its word and by its Accept
type), named when a word is refused, and listed in the OpenAPI document served."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from bridge.calls import formats
from bridge.calls.formats import Encoder, Format
from tests.helpers import API, ClientFactory, fault, new_marker

DOCUMENT = "/admin/rest_api/openapi.json"
JOB_OUTPUT = "/admin/rest_api/jobs/{job_id}/output"
RESULT = "= "


class LinesEncoder(Encoder):
    """Each line of output as ``> text``, then the result as one last line."""

    def output(self, stream: str, text: str) -> bytes:
        return "".join(f"> {line}\n" for line in text.splitlines()).encode()

    def result(self, result: dict[str, Any]) -> bytes:
        return (RESULT + formats.dumps(result) + "\n").encode()


LINES = Format("lines", ("lines",), "text/x-lines", "text/x-lines; charset=utf-8", LinesEncoder)


@pytest.fixture
def lines_format(monkeypatch: pytest.MonkeyPatch) -> Format:
    monkeypatch.setitem(formats.FORMATS, "lines", LINES)
    return LINES


async def lines_of(response: Any) -> tuple[list[str], dict[str, Any]]:
    """A LinesEncoder answer: its output lines (without '> ') and its result."""
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == LINES.content_type
    *output, last = (await response.text()).splitlines()
    assert all(line.startswith("> ") for line in output), output
    assert last.startswith(RESULT), last
    return [line.removeprefix("> ") for line in output], json.loads(last.removeprefix(RESULT))


async def a_call(client: TestClient[Any, Any], **extra: Any) -> tuple[Any, str]:
    """The fake's ``ok`` call (prints 'started MARKER ok', then 'hello'); its marker."""
    marker = new_marker()
    headers = extra.pop("headers", None)
    response = await client.get(API, params=fault(marker, "ok", **extra), headers=headers)
    return response, marker


@pytest.mark.usefixtures("lines_format")
async def test_its_word_chooses_it_on_the_api_and_on_a_jobs_output(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    response, marker = await a_call(client, stream="lines")
    output, result = await lines_of(response)
    assert output == [f"started {marker} ok", "hello"]
    assert result["exit_code"] == 0 and result["status"] == "OK"
    job_id = response.headers["X-Job-Id"]
    again = await client.get(JOB_OUTPUT.format(job_id=job_id), params={"stream": "lines"})
    output, job = await lines_of(again)
    assert output == [f"started {marker} ok", "hello"]
    assert job["job_id"] == job_id and job["state"] == "succeeded"


@pytest.mark.usefixtures("lines_format")
async def test_its_accept_type_chooses_it_without_a_word(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    accept = {"Accept": "text/x-lines"}
    response, marker = await a_call(client, headers=accept)
    output, _ = await lines_of(response)
    assert output == [f"started {marker} ok", "hello"]
    job_output = JOB_OUTPUT.format(job_id=response.headers["X-Job-Id"])
    output, _ = await lines_of(await client.get(job_output, headers=accept))
    assert output == [f"started {marker} ok", "hello"]


@pytest.mark.usefixtures("lines_format")
async def test_an_unknown_word_is_refused_naming_it_too(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    refused, _ = await a_call(client, stream="nosuch")
    assert refused.status == 400
    body = await refused.json()
    assert body["output"] == "stream must be true, text, ndjson or lines (or false)"
    response, _ = await a_call(client, stream="lines")
    await lines_of(response)
    job_output = JOB_OUTPUT.format(job_id=response.headers["X-Job-Id"])
    refused = await client.get(job_output, params={"stream": "nosuch"})
    assert refused.status == 400
    assert (await refused.json())["output"] == "stream must be true, text, ndjson or lines"


async def test_the_openapi_document_lists_it_once_registered(
    make_fake_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_fake_client()

    async def listed() -> tuple[list[str], list[str], list[str], list[str]]:
        """The API's and the job output's stream enums and stream content types."""
        doc = await (await client.get(DOCUMENT)).json()
        get = doc["paths"][API]["get"]
        (stream,) = (p for p in get["parameters"] if p["name"] == "stream")
        job = doc["paths"]["/admin/rest_api/jobs/{job_id}/output"]["get"]
        (job_stream,) = (p for p in job["parameters"] if p["name"] == "stream")
        await asyncio.to_thread(validate, doc)  # a second of CPU: not on the loop
        return (
            stream["schema"]["enum"],
            list(get["responses"]["200"]["content"]),
            job_stream["schema"]["enum"],
            list(job["responses"]["200"]["content"]),
        )

    before = await listed()  # the cached document, before the format exists
    assert before == (
        ["false", "true", "text", "ndjson"],
        ["application/json", "text/plain", "application/x-ndjson"],
        ["true", "text", "ndjson"],
        ["text/plain", "application/x-ndjson"],
    )
    monkeypatch.setitem(formats.FORMATS, "lines", LINES)
    assert await listed() == (
        ["false", "true", "text", "ndjson", "lines"],
        ["application/json", "text/plain", "application/x-ndjson", "text/x-lines"],
        ["true", "text", "ndjson", "lines"],
        ["text/plain", "application/x-ndjson", "text/x-lines"],
    )
