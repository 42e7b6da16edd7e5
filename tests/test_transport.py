"""Transport and secrets: HTTPS with the configured certificate (and nothing in plain HTTP on
that port); the token and connection passwords never reach a log line, ``airflow_cmd`` or
the audit log, whichever way a request carries them."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import ClientSession, FormData

from bridge.text.redact import MASK
from tests.helpers import API, FAKE_AIRFLOW, Daemon, free_port, start_daemon

TOKEN_HEADER = "rest_api_plugin_http_token"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made with the openssl binary (the
    development virtualenv has no ``cryptography``)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


async def start(folder: Path, *settings: str, **env: str) -> tuple[Daemon, int]:
    """The daemon on the fake airflow with extra [rest_api_plugin] settings."""
    (folder / "dags").mkdir(exist_ok=True)
    cfg = folder / "airflow.cfg"
    cfg.write_text(
        f"[core]\ndags_folder = {folder / 'dags'}\n\n[rest_api_plugin]\n"
        f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\n" + "\n".join(settings) + "\n"
    )
    port = free_port()
    return await start_daemon(cfg, port, env={**os.environ, **env}), port


# --- HTTPS -------------------------------------------------------------------------------------


async def test_https_with_the_configured_certificate_and_no_plain_http(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    daemon, port = await start(tmp_path, f"tls_cert_file = {cert}", f"tls_key_file = {key}")
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        assert any(f"serving on https://127.0.0.1:{port}/" in line for line in daemon.lines)
        async with ClientSession() as session:
            # Verified against the test's certificate, host name included.
            url = f"https://localhost:{port}{API}"
            async with session.get(url, params={"api": "version"}, ssl=trusted) as response:
                body = await response.json()
            assert response.status == 200 and body["output"] == "3.3.2"
            # A client that does not trust it refuses it: the daemon really presents it.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"https://127.0.0.1:{port}/health")
            # Plain HTTP to the TLS port gets no HTTP answer.
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/health") as response:
                    await response.read()
            async with session.get(f"https://127.0.0.1:{port}/health", ssl=trusted) as response:
                assert response.status == 200
    finally:
        assert await daemon.stop() == 0


async def test_the_served_certificate_is_the_configured_one(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    daemon, port = await start(tmp_path, f"tls_cert_file = {cert}", f"tls_key_file = {key}")
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=trusted, server_hostname="localhost"
        )
        served = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
        assert served == ssl.PEM_cert_to_DER_cert(cert.read_text())
    finally:
        assert await daemon.stop() == 0


# --- secrets -----------------------------------------------------------------------------------


class Secrets:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:12]
        self.token = f"tok-{tag}"
        self.password = f"pw{tag}Z9"
        self.extra_password = f"xpw{tag}Q7"
        self.uri = f"postgres://admin:{self.password}@db.example:5432/app"

    def leaked(self, text: str) -> list[str]:
        return [s for s in (self.token, self.password, self.extra_password) if s in text]


@pytest.fixture
async def secret_daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, int, Secrets, Path]]:
    """A daemon with a token, logging its settings (log_loading), on the fake airflow that
    records what it was given."""
    secrets = Secrets()
    record = tmp_path / "argv.jsonl"
    daemon, port = await start(
        tmp_path,
        f"rest_api_plugin_expected_http_token = {secrets.token}",
        "log_loading = true",
        FAKE_AIRFLOW_RECORD=str(record),
    )
    try:
        yield daemon, port, secrets, record
    finally:
        assert await daemon.stop() == 0


async def test_the_token_and_passwords_stay_out_of_logs_and_airflow_cmd(
    secret_daemon: tuple[Daemon, int, Secrets, Path],
) -> None:
    daemon, port, secrets, record = secret_daemon
    url = f"http://127.0.0.1:{port}{API}"
    auth = {TOKEN_HEADER: secrets.token}
    add = {"api": "connections", "add": "true", "conn_uri": secrets.uri}
    extra = json.dumps({"password": secrets.extra_password, "sslmode": "require"})
    answers: list[tuple[str, str]] = []  # (how, the whole response text)
    async with ClientSession(headers=auth) as session:

        async def buffered(how: str, method: str, **kwargs: Any) -> dict[str, Any]:
            async with session.request(method, url, **kwargs) as response:
                text = await response.text()
            answers.append((how, text))
            body: dict[str, Any] = json.loads(text)
            assert body["http_response_code"] == response.status
            return body

        body = await buffered("query", "GET", params={**add, "conn_id": "c_query"})
        assert body["status"] == "OK", body
        assert f"admin:{MASK}@db.example" in body["airflow_cmd"]
        assert f"admin:{MASK}@db.example" in body["output"]["stdout"]  # the CLI's echo
        body = await buffered("form", "POST", data={**add, "conn_id": "c_form"})
        assert body["status"] == "OK", body
        multipart = FormData({**add, "conn_id": "c_multipart"}, default_to_multipart=True)
        body = await buffered("multipart", "POST", data=multipart)
        assert body["status"] == "OK", body
        body = await buffered(
            "extra",
            "GET",
            params={"api": "connections", "add": "true", "conn_id": "c_extra",
                    "conn_type": "postgres", "conn_extra": extra},
        )  # fmt: skip
        assert body["status"] == "OK", body
        assert '"sslmode": "require"' in body["airflow_cmd"]
        body = await buffered("refused", "GET", params=add)  # no conn_id: a 400 echoing it
        assert body["http_response_code"] == 400
        body = await buffered(
            "token-in-query", "GET", params={"api": "version", TOKEN_HEADER: secrets.token}
        )
        assert body["status"] == "OK"
        for mode in ("true", "ndjson"):
            params = {**add, "conn_id": f"c_stream_{mode}", "stream": mode}
            async with session.get(url, params=params) as response:
                text = await response.text()
            assert response.status == 200 and "Successfully added" in text
            answers.append((f"stream={mode}", text))
    async with ClientSession() as session:
        wrong = {TOKEN_HEADER: secrets.token + "x"}
        async with session.get(url, params={"api": "version"}, headers=wrong) as response:
            assert response.status == 403
            assert (await response.json())["output"] == "Token Authentication Failed"
    assert await daemon.stop() == 0

    # The secrets did travel: the CLI got the password, so the masking had work to do.
    received = record.read_text()
    assert secrets.password in received and secrets.extra_password in received
    for how, text in answers:
        assert secrets.leaked(text) == [], (how, text)
    assert [line for line in daemon.lines if secrets.leaked(line)] == []
    audit = [line for line in daemon.lines if "bridge.audit" in line]
    assert len([line for line in audit if "api=connections" in line]) == 6, audit
    assert all(f"admin:{MASK}@db.example" in line for line in audit if "conn-uri" in line)
    assert any("settings: Settings(" in line for line in daemon.lines)  # log_loading ran


async def test_a_request_the_parser_refuses_does_not_log_its_secrets(
    secret_daemon: tuple[Daemon, int, Secrets, Path],
) -> None:
    daemon, port, secrets, _record = secret_daemon
    target = f"{API}?api=connections&add=true&conn_id=c&conn_uri={quote(secrets.uri)}"
    requests = [
        # curl sends what it is given: a non-ASCII character, not percent-encoded
        f"GET {target}&note=caf\u00e9 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode(),
        # a request line over the limit (128 KiB)
        f"GET {target}&pad={'a' * 140_000} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode(),
        # a token header with a character a header may not hold
        (
            f"GET /health HTTP/1.1\r\nHost: localhost\r\n"
            f"{TOKEN_HEADER}: {secrets.token}\x01\r\n\r\n"
        ).encode(),
    ]
    for data in requests:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.0 400") or answer == b""
    assert await daemon.stop() == 0
    errors = [line for line in daemon.lines if "Error handling request" in line]
    assert len(errors) == len(requests), daemon.lines[-20:]
    assert [line for line in daemon.lines if secrets.leaked(line)] == []
