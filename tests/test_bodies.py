"""Request bodies (issue 25, bridge.http.bodies): the scope is decided from the query before
a byte of the body is read, bodies arriving at once have a byte budget (per token a share),
and a whole body has a deadline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge import cli
from bridge.config.load import load
from tests.helpers import ClientFactory, write_cfg

HEADER = "rest_api_plugin_http_token"
HANG = 60.0  # a hang detector: each of these answers without waiting for the body


@pytest.fixture
def tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict[str, str]]:
    cfg = write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {tmp_path / 'tokens.json'}\n")
    issued = {}
    for name, scopes in {"reader": "read", "admin": "admin"}.items():
        assert cli.main(["token", "add", name, "--scope", scopes, "--config", str(cfg)]) == 0
        issued[name] = capsys.readouterr().out.strip()
    return cfg, issued


async def client_for(
    make_fake_client: ClientFactory, cfg: Path, **overrides: Any
) -> TestClient[Any, Any]:
    settings = load(cfg, {})
    return await make_fake_client(
        tokens_file=settings.tokens_file, named_tokens=settings.named_tokens, **overrides
    )


async def started_upload(
    client: TestClient[Any, Any], token: str, length: int, query: str = "?api=deploy_dag"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A multipart upload whose headers promise ``length`` bytes, of which only the first
    part's headers are sent: the rest never comes."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = (
        f"POST /admin/rest_api/api{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{HEADER}: {token}\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        f"Content-Length: {length}\r\n\r\n"
        '--XyZ\r\nContent-Disposition: form-data; name="dag_file"; filename="big.py"\r\n\r\n'
    )
    writer.write(head.encode() + b"x" * 1024)
    await writer.drain()
    return reader, writer


async def answer_of(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG)
    status = int(head.split(b" ", 2)[1])
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        ).split(b":")[1]
    )
    body = await asyncio.wait_for(reader.readexactly(length), HANG)
    return status, json.loads(body)


async def test_a_token_without_the_scope_is_refused_before_its_body_is_read(
    make_fake_client: ClientFactory, tokens: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    cfg, issued = tokens
    client = await client_for(make_fake_client, cfg)
    reader, writer = await started_upload(client, issued["reader"], 10 * 1024 * 1024)
    try:
        status, body = await answer_of(reader)
    finally:
        writer.close()
    assert status == 403 and "needs the 'admin' scope" in body["output"], body
    assert not list((tmp_path / "dags").iterdir()), "nothing of the body was staged"


async def test_bodies_in_flight_have_a_budget_and_a_token_its_share(
    make_fake_client: ClientFactory, tokens: tuple[Path, dict[str, str]]
) -> None:
    cfg, issued = tokens
    client = await client_for(
        make_fake_client, cfg, max_body_bytes_in_flight=1024 * 1024, token_share=0.5
    )
    first = await started_upload(client, issued["admin"], 400 * 1024)
    try:
        # Over the admin's share (half of 1 MiB) with the first still arriving: refused.
        reader, writer = await started_upload(client, issued["admin"], 200 * 1024)
        try:
            status, body = await answer_of(reader)
        finally:
            writer.close()
        assert status == 429 and "its share (token_share 0.5" in body["output"], body
        # Another caller: within what is left of the whole budget, but not beyond it.
        reader, writer = await started_upload(client, issued["reader"], 700 * 1024, "?api=version")
        try:
            status, body = await answer_of(reader)
        finally:
            writer.close()
        assert status == 429 and "max_body_bytes_in_flight" in body["output"], body
    finally:
        first[1].close()


async def test_a_body_that_does_not_arrive_in_time_is_a_408(
    make_fake_client: ClientFactory, tokens: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    cfg, issued = tokens
    client = await client_for(make_fake_client, cfg, body_timeout=1.0)
    reader, writer = await started_upload(client, issued["admin"], 64 * 1024)
    try:
        status, body = await answer_of(reader)
    finally:
        writer.close()
    assert status == 408 and "body_timeout (1 s)" in body["output"], body
    assert not list((tmp_path / "dags").glob("*.py")), "the staged part was removed"


async def test_a_large_body_needs_its_api_named_in_the_query(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = b"api=version&note=" + b"x" * (128 * 1024)
    response = await client.post("/admin/rest_api/api", data=body, headers=form)
    refused = await response.json()
    assert response.status == 413 and "?api=NAME" in refused["output"], refused
    named = await client.post("/admin/rest_api/api?api=version", data=body, headers=form)
    assert named.status == 200, await named.text()
