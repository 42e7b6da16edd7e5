"""Named tokens and scopes (shared/API.md, "Tokens and scopes"): the token file holds hashes
only and must be its owner's alone; each scope calls its APIs, buffered, streamed, detached
and from the page, and gets a 403 naming the scope for the others; a token sees its own jobs
(admin all); a reload picks up a revoked token at once; no token value reaches a log."""

from __future__ import annotations

import hmac
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient

from bridge import cli
from bridge.config.load import ConfigError, load
from bridge.config.tokens import Scope, TokenTable, read_tokens
from tests.helpers import (
    API,
    FAKE_AIRFLOW,
    ClientFactory,
    fault,
    free_port,
    new_marker,
    start_daemon,
    write_cfg,
)

SEED = "the-seed-token"
HEADER = "rest_api_plugin_http_token"  # the seed's header name
AUDIT = "bridge.audit"


def add_token(cfg: Path, name: str, scopes: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["token", "add", name, "--scope", scopes, "--config", str(cfg)]) == 0
    return capsys.readouterr().out.strip()


@pytest.fixture
def tokens_cfg(tmp_path: Path) -> Path:
    return write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {tmp_path / 'tokens.json'}\n")


@pytest.fixture
def issued(tokens_cfg: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """One token per scope, and one with read and operate, issued the operator's way."""
    names = {"reader": "read", "operator": "operate", "admin": "admin", "ci": "read,operate"}
    return {name: add_token(tokens_cfg, name, scopes, capsys) for name, scopes in names.items()}


def test_the_file_holds_hashes_only_and_is_its_owners_alone(
    tokens_cfg: Path, issued: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = load(tokens_cfg, {}).tokens_file
    assert path is not None
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    for value in issued.values():
        assert value.startswith("arb_") and value not in text
    table = read_tokens(path)
    assert table.named("ci") is not None
    assert table.named("ci").scopes == {Scope.READ, Scope.OPERATE}  # type: ignore[union-attr]
    assert table.find(issued["ci"]) == table.named("ci")
    assert cli.main(["token", "list", "--config", str(tokens_cfg)]) == 0
    listed = capsys.readouterr().out
    assert "ci\tread,operate\t" in listed and issued["ci"] not in listed
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="mode 0640 lets others read"):
        load(tokens_cfg, {})
    path.chmod(0o600)
    assert cli.main(["token", "add", "seed", "--scope", "read", "--config", str(tokens_cfg)]) == 2
    assert cli.main(["token", "add", "x", "--scope", "root", "--config", str(tokens_cfg)]) == 2
    assert cli.main(["token", "revoke", "nobody", "--config", str(tokens_cfg)]) == 1
    assert cli.main(["token", "revoke", "ci", "--config", str(tokens_cfg)]) == 0
    assert read_tokens(path).named("ci") is None


def test_every_stored_hash_is_compared_in_constant_time(
    issued: dict[str, str], tokens_cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = load(tokens_cfg, {}).named_tokens
    compared: list[bytes] = []
    constant_time = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return constant_time(a, b)

    monkeypatch.setattr("bridge.config.tokens.hmac.compare_digest", compare)
    assert table.find(issued["reader"]) is not None
    assert len(compared) == len(table.tokens)  # no early exit: the timing names nobody
    assert table.find("arb_wrong") is None


async def client_with_tokens(
    make_fake_client: ClientFactory, tokens_cfg: Path, **overrides: Any
) -> TestClient[Any, Any]:
    settings = load(tokens_cfg, {})
    return await make_fake_client(
        tokens_file=settings.tokens_file,
        named_tokens=settings.named_tokens,
        rest_api_plugin_expected_http_token=SEED,
        **overrides,
    )


READ_CALL = {"api": "list_dags"}
ADMIN_CALL = {"api": "refresh_dag", "dag_id": "fake_dag"}
# How a call is made: buffered, streamed, detached (202, a job), from the page.
MODES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "buffered": ({}, {}),
    "streamed": ({"stream": "ndjson"}, {}),
    "detached": ({"detach": "true"}, {}),
    "page": ({}, {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}),
}


@pytest.mark.parametrize("mode", MODES)
async def test_each_scope_calls_its_apis_and_is_told_which_scope_the_others_need(
    make_fake_client: ClientFactory, tokens_cfg: Path, issued: dict[str, str], mode: str
) -> None:
    client = await client_with_tokens(make_fake_client, tokens_cfg)
    extra, headers = MODES[mode]
    calls = {"read": READ_CALL, "operate": fault(new_marker(), "ok"), "admin": ADMIN_CALL}
    # Scopes nest: each includes the ones before it.
    allowed = {
        "reader": {"read"},
        "operator": {"read", "operate"},
        "admin": {"read", "operate", "admin"},
        "ci": {"read", "operate"},
    }
    for name, scopes in allowed.items():
        for needed, params in calls.items():
            if needed == "admin" and mode in ("streamed", "detached"):
                params = {"api": "scheduler"}  # an admin API that streams (the fake exits)
            response = await client.get(
                API, params={**params, **extra}, headers={HEADER: issued[name], **headers}
            )
            text = await response.text()
            if needed in scopes:
                assert response.status in (200, 202), (name, needed, text)
            else:
                assert response.status == 403, (name, needed, text)
                output = json.loads(text)["output"]
                assert f"needs the '{needed}' scope" in output and f"'{name}'" in output
    # The seed's token keeps every scope; a wrong one gets the seed's 403 body.
    for params in calls.values():
        if mode in ("streamed", "detached") and params is ADMIN_CALL:
            continue
        response = await client.get(
            API, params={**params, **extra}, headers={HEADER: SEED, **headers}
        )
        assert response.status in (200, 202), await response.text()
    response = await client.get(API, params=READ_CALL, headers={HEADER: "arb_not-a-token"})
    assert response.status == 403
    assert "needs the" not in await response.text()


async def test_a_token_sees_and_cancels_its_own_jobs_and_admin_every_job(
    make_fake_client: ClientFactory,
    tokens_cfg: Path,
    issued: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await client_with_tokens(make_fake_client, tokens_cfg)
    caplog.set_level(logging.INFO)
    started = await client.get(
        API,
        params={**fault(new_marker(), "hang"), "detach": "true"},
        headers={HEADER: issued["operator"]},
    )
    assert started.status == 202, await started.text()
    job = (await started.json())["job_id"]

    async def seen_by(name: str) -> tuple[list[str], int]:
        headers = {HEADER: issued[name]}
        listed = await (await client.get(f"{API[: -len('/api')]}/jobs", headers=headers)).json()
        one = await client.get(f"{API[: -len('/api')]}/jobs/{job}", headers=headers)
        return [j["job_id"] for j in listed["jobs"]], one.status

    assert await seen_by("ci") == ([], 404)  # another token's job is no job at all
    cancel = await client.delete(
        f"{API[: -len('/api')]}/jobs/{job}", headers={HEADER: issued["ci"]}
    )
    assert cancel.status == 404
    assert await seen_by("admin") == ([job], 200)
    assert await seen_by("operator") == ([job], 200)
    cancel = await client.delete(
        f"{API[: -len('/api')]}/jobs/{job}", headers={HEADER: issued["operator"]}
    )
    assert cancel.status == 200
    assert (await cancel.json())["token"] == "operator"
    audit = [
        r.getMessage() for r in caplog.records if r.name == AUDIT and "api=test" in r.getMessage()
    ]
    assert audit and all("token=operator" in line for line in audit)
    for value in issued.values():
        assert value not in caplog.text


@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_a_tokens_file_others_may_change_is_refused(
    tokens_cfg: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    add_token(tokens_cfg, "reader", "read", capsys)
    path = load(tokens_cfg, {}).tokens_file
    assert path is not None
    path.chmod(mode)  # the group or everyone may write it: a token of theirs would be let in
    with pytest.raises(ConfigError, match=f"mode {mode:04o} lets others read or change it"):
        load(tokens_cfg, {})


async def test_another_tokens_job_output_is_a_404(
    make_fake_client: ClientFactory, tokens_cfg: Path, issued: dict[str, str]
) -> None:
    client = await client_with_tokens(make_fake_client, tokens_cfg)
    marker = new_marker()
    started = await client.get(
        API,
        params={**fault(marker, "ok"), "detach": "true"},
        headers={HEADER: issued["operator"]},
    )
    assert started.status == 202, await started.text()
    output = f"{started.headers['Location']}/output"
    for other in ("ci", "reader"):
        refused = await client.get(output, headers={HEADER: issued[other]})
        assert refused.status == 404, other
        assert marker not in await refused.text()
    for allowed in ("operator", "admin"):
        response = await client.get(output, headers={HEADER: issued[allowed]})
        assert response.status == 200, allowed
        assert f"started {marker} ok" in await response.text()


async def test_a_revoked_token_is_refused_after_a_reload(
    tmp_path: Path, tokens_cfg: Path, issued: dict[str, str]
) -> None:
    text = tokens_cfg.read_text() + f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\n"
    cfg = write_cfg(tmp_path / "daemon.cfg", text.split("[rest_api_plugin]\n", 1)[1])
    port = free_port()
    daemon = await start_daemon(cfg, port)
    url = f"http://127.0.0.1:{port}{API}"
    try:
        async with ClientSession() as session:
            headers = {HEADER: issued["reader"]}
            async with session.get(url, params=READ_CALL, headers=headers) as response:
                assert response.status == 200
            assert cli.main(["token", "revoke", "reader", "--config", str(cfg)]) == 0
            seen = len(daemon.lines)
            daemon.signal(signal.SIGHUP)
            await daemon.line_containing("configuration reloaded", after=seen)
            async with session.get(url, params=READ_CALL, headers=headers) as response:
                assert response.status == 403
        assert not any(value in line for line in daemon.lines for value in issued.values())
        assert any("token=reader" in line for line in daemon.lines)  # the access log
    finally:
        assert await daemon.stop() == 0


def test_no_tokens_file_means_no_named_token(tmp_path: Path) -> None:
    settings = load(write_cfg(tmp_path / "airflow.cfg", ""), {})
    assert settings.named_tokens == TokenTable() and not settings.auth_enabled
    assert os.environ.get("AIRFLOW__REST_API_PLUGIN__TOKENS_FILE") is None
