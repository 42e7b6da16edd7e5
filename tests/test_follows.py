"""Follows are bounded and shared, and a revoked token's end (issue 25, shared/API.md "Bounds
that fail closed"): at most max_follows at once, one token its token_share of them, the last
kept for the seed token and admin, a 429 naming the limit before any stream starts; a reload
that revoked a token ends its follows and streams with a 403 warning and marks its running
jobs, whose commands run on. The registry alone, then the real app driving the fake airflow
(a command that hangs until cancelled is its fault to inject); the task log's follow and the
run's wait against real Airflow are in test_integration_follows.py."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncGenerator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bridge.calls.follows import Follow, Follows, holding
from bridge.calls.formats import TEXT_RESULT_PREFIX
from bridge.config.settings import Settings
from bridge.config.tokens import (
    NamedToken,
    Scope,
    TokenTable,
    hash_token,
    new_identity,
    new_token,
)
from bridge.errors import RequestError
from bridge.http.keys import SETTINGS
from bridge.http.lifecycle import reloaded
from bridge.process.slots import Owner
from bridge.service.notify import Notifier
from bridge.service.serve import _reload
from tests.helpers import API, ClientFactory, app_of, fault, new_marker, processes_with, read_until

SEED = "the-seed-token"
HEADER = "rest_api_plugin_http_token"
JOBS = "/admin/rest_api/jobs"
HANG = 60.0
OPS = Owner("t-" + "1" * 32, name="ops")
OTHER = Owner("t-" + "2" * 32, name="other")
ADMIN = Owner("t-" + "3" * 32, privileged=True, name="boss")


class Limits:
    def __init__(self, **values: Any) -> None:
        self.settings = replace(Settings(), **values)

    def __call__(self) -> Settings:
        return self.settings


def named(owner: Owner) -> NamedToken:
    return NamedToken(
        owner.name, frozenset({Scope.READ}), hash_token(owner.name), "", owner.identity
    )


async def refused(follows: Follows, owner: Owner | None) -> RequestError:
    with pytest.raises(RequestError) as caught:
        async with follows.place(owner):
            pass
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
    return caught.value


async def test_follows_are_bounded_and_shared_like_the_slots() -> None:
    held_tokens = TokenTable(tuple(named(owner) for owner in (OPS, OTHER, ADMIN)))
    limits = Limits(max_follows=4, token_share=0.5, named_tokens=held_tokens)
    follows = Follows(limits)
    async with contextlib.AsyncExitStack() as held:
        first = await held.enter_async_context(follows.place(OPS))
        await held.enter_async_context(follows.place(OPS))
        said = str(await refused(follows, OPS))  # 2 of 4: its share
        assert "the token 'ops' already has 2" in said, said
        assert "token_share 0.5 of max_follows 4" in said, said
        await held.enter_async_context(follows.place(OTHER))  # another token's place
        said = str(await refused(follows, OTHER))  # the last one is the privileged's
        assert "kept for the seed token and admin tokens" in said, said
        await held.enter_async_context(follows.place(ADMIN))
        assert follows.open == 4
        said = str(await refused(follows, ADMIN))  # capped too
        assert "4 follows or waits are open (max_follows 4)" in said, said
        await refused(follows, None)  # without auth: the total still bounds
        # A stream's own client counts for nothing here, and is never refused.
        await held.enter_async_context(follows.place(OPS, counted=False))
        assert follows.open == 4 and not first.stop.is_set()
        # A reload that raises the limit: the next follow is measured against it.
        limits.settings = replace(limits.settings, max_follows=8)
        await held.enter_async_context(follows.place(OTHER))
        assert follows.open == 5
    assert follows.open == 0
    async with follows.place(OPS), follows.place(OPS):  # each place was given back
        pass


async def test_revoking_stops_the_places_of_tokens_no_longer_held() -> None:
    limits = Limits(max_follows=8, named_tokens=TokenTable((named(OPS), named(OTHER))))
    follows = Follows(limits)
    seed = Owner("seed", privileged=True, name="seed")
    async with contextlib.AsyncExitStack() as held:
        places: dict[str, Follow] = {}
        for key, owner, counted in (
            ("ops", OPS, True),
            ("ops stream", OPS, False),
            ("other", OTHER, True),
            ("seed", seed, True),
            ("nobody", None, True),
        ):
            places[key] = await held.enter_async_context(follows.place(owner, counted))
        kept = TokenTable((named(OTHER),))
        assert follows.revoke(kept) == 2
        stopped = sorted(key for key, place in places.items() if place.stop.is_set())
        assert stopped == ["ops", "ops stream"]
        assert places["ops"].why == "the token 'ops' was revoked"
        assert follows.revoke(kept) == 0  # once is enough
        # A place the revoked token takes in the moment before the reload ends at once.
        limits.settings = replace(limits.settings, named_tokens=kept)
        late = await held.enter_async_context(follows.place(OPS))
        assert late.stop.is_set()


async def test_a_follows_events_give_their_place_back_started_or_not() -> None:
    follows = Follows(Limits(max_follows=1))

    async def events(place: Follow) -> AsyncGenerator[str, None]:
        yield "one"
        yield "two"

    never_started = await holding(events, follows, OPS)
    assert follows.open == 1
    await refused(follows, OTHER)
    await never_started.aclose()  # a client that left before its stream started
    assert follows.open == 0
    read_through = await holding(events, follows, OPS)
    assert [event async for event in read_through] == ["one", "two"]
    assert follows.open == 0  # given back at the end, before anyone closes it


# -- the real app ----------------------------------------------------------------------------


class Tokens:
    """Named tokens of the app: each name's value and its table entry."""

    def __init__(self, **scopes: frozenset[Scope]) -> None:
        self.values = {name: new_token() for name in scopes}
        self.entries = {
            name: NamedToken(name, scope, hash_token(self.values[name]), "", new_identity())
            for name, scope in scopes.items()
        }

    def table(self, *without: str) -> TokenTable:
        return TokenTable(tuple(e for name, e in self.entries.items() if name not in without))

    def of(self, name: str) -> dict[str, str]:
        return {HEADER: self.values[name]}


OPERATE = frozenset({Scope.READ, Scope.OPERATE})


async def app_with(make_fake_client: ClientFactory, tokens: Tokens, **overrides: Any) -> Any:
    return await make_fake_client(
        named_tokens=tokens.table(), rest_api_plugin_expected_http_token=SEED, **overrides
    )


async def detached_hang(client: TestClient[Any, Any], headers: dict[str, str]) -> tuple[str, str]:
    """A job whose command runs until cancelled: its id and its marker."""
    marker = new_marker()
    response = await client.get(API, params=fault(marker, "hang", detach="true"), headers=headers)
    assert response.status == 202, await response.text()
    return str((await response.json())["job_id"]), marker


async def follow(client: TestClient[Any, Any], job_id: str, headers: dict[str, str]) -> Any:
    """A follow of the job's output, open once its command said it started."""
    response = await client.get(f"{JOBS}/{job_id}/output", headers=headers)
    assert response.status == 200, await response.text()
    await read_until(response, b"started")
    return response


async def result_of(response: ClientResponse) -> dict[str, Any]:
    """A text stream read to its end: its result record. A hang detector, not a timing:
    these end within a loop turn or two of what ends them."""
    text = (await asyncio.wait_for(response.read(), HANG)).decode()
    record: dict[str, Any] = json.loads(text.rpartition(TEXT_RESULT_PREFIX)[2])
    return record


async def reload_without(client: TestClient[Any, Any], tokens: Tokens, *revoked: str) -> None:
    """SIGHUP's reload (bridge.service.serve) after ``token revoke`` of ``revoked``."""
    current = app_of(client)[SETTINGS]
    new = replace(current.settings, named_tokens=tokens.table(*revoked))
    ready = asyncio.Event()
    ready.set()  # the daemon serves
    in_force = functools.partial(reloaded, app_of(client))
    await _reload(current, lambda: new, Notifier({}), ready, in_force)


async def follows_open(client: TestClient[Any, Any]) -> str:
    metrics = await (await client.get("/metrics", headers={HEADER: SEED})).text()
    return next(line for line in metrics.splitlines() if line.startswith("bridge_follows_open "))


async def test_a_tokens_follows_past_its_share_are_a_429_before_any_stream(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    tokens = Tokens(ops=OPERATE, other=OPERATE, boss=frozenset(Scope))
    client = await app_with(make_fake_client, tokens, max_follows=4, token_share=0.5)
    ops_job, _ = await detached_hang(client, tokens.of("ops"))
    other_job, _ = await detached_hang(client, tokens.of("other"))
    held = [await follow(client, ops_job, tokens.of("ops")) for _ in range(2)]
    response = await client.get(f"{JOBS}/{ops_job}/output", headers=tokens.of("ops"))
    body = await response.json()
    assert response.status == 429 and response.headers["Retry-After"] == "1", body
    assert body["status"] == "ERROR" and body["http_response_code"] == 429, body
    assert "the token 'ops' already has 2 follows or waits open" in body["output"], body
    assert "token_share 0.5 of max_follows 4" in body["output"], body
    # A wait for a run is a follow too: refused before the trigger runs.
    waiting = {"api": "trigger_dag", "dag_id": "fake_dag", "wait": "true"}
    response = await client.get(API, params=waiting, headers=tokens.of("ops"))
    body = await response.json()
    assert response.status == 429 and "the token 'ops'" in body["output"], body
    # Nothing ran: no trigger in the fake's record (the hang commands may still be arriving).
    ran = [json.loads(line) for line in record.read_text().splitlines()]
    assert not [argv for argv in ran if argv[:2] == ["dags", "trigger"]], ran
    held.append(await follow(client, other_job, tokens.of("other")))
    response = await client.get(f"{JOBS}/{other_job}/output", headers=tokens.of("other"))
    body = await response.json()
    assert response.status == 429 and "kept for the seed token and admin" in body["output"], body
    held.append(await follow(client, ops_job, tokens.of("boss")))  # the place kept for admin
    assert await follows_open(client) == "bridge_follows_open 4.0"
    response = await client.get(f"{JOBS}/{ops_job}/output", headers=tokens.of("boss"))
    body = await response.json()
    assert response.status == 429 and "(max_follows 4)" in body["output"], body
    for job_id in (ops_job, other_job):
        cancelled = await client.delete(f"{JOBS}/{job_id}", headers=tokens.of("boss"))
        assert cancelled.status == 200, await cancelled.text()
    for response in held:
        assert (await result_of(response))["state"] == "cancelled"
    assert await follows_open(client) == "bridge_follows_open 0.0"


async def test_revoking_a_token_ends_its_follows_and_marks_its_running_jobs(
    make_fake_client: ClientFactory,
) -> None:
    """``token revoke ops`` and a reload (serve's own): ops's follow of its job and its own
    stream end with a 403 warning, admin's follow of the same job goes on; both jobs of ops's
    say so in their record, and their commands run on until admin cancels them (a stream's
    job no longer waits for its client: reattach_wait = 0 would have stopped it at once)."""
    tokens = Tokens(ops=OPERATE, boss=frozenset(Scope))
    client = await app_with(make_fake_client, tokens, reattach_wait=0)
    detached, detached_marker = await detached_hang(client, tokens.of("ops"))
    ops_follow = await follow(client, detached, tokens.of("ops"))
    boss_follow = await follow(client, detached, tokens.of("boss"))
    streamed_marker = new_marker()
    params = fault(streamed_marker, "hang", stream="true")
    stream = await client.get(API, params=params, headers=tokens.of("ops"))
    assert stream.status == 200, await stream.text()
    streamed = stream.headers["X-Job-Id"]
    await read_until(stream, b"started")

    await reload_without(client, tokens, "ops")

    for response in (ops_follow, stream):
        ended = await result_of(response)
        assert ended["status"] == "ERROR" and ended["http_response_code"] == 403, ended
        assert "the token 'ops' was revoked: following the job stopped" in ended["warning"]
        assert ended["state"] == "running", ended
    assert await follows_open(client) == "bridge_follows_open 1.0"  # admin's goes on
    assert (await client.get(f"{JOBS}/{detached}", headers=tokens.of("ops"))).status == 403
    await reload_without(client, tokens, "ops")  # marked once
    for job_id, marker in ((detached, detached_marker), (streamed, streamed_marker)):
        status = await (await client.get(f"{JOBS}/{job_id}", headers=tokens.of("boss"))).json()
        assert status["state"] == "running" and processes_with(marker), status
        warning = status["warning"]
        assert warning.count("its token 'ops' was revoked at ") == 1, warning
        assert "the command runs on to its end" in warning, warning
        assert isinstance(status["token_revoked_at"], float), status
        cancelled = await client.delete(f"{JOBS}/{job_id}", headers=tokens.of("boss"))
        record = await cancelled.json()
        assert cancelled.status == 200 and record["state"] == "cancelled", record
        assert "its token 'ops' was revoked at " in record["warning"], record  # kept
        assert "client left" not in record["warning"], record
    assert (await result_of(boss_follow))["state"] == "cancelled"


async def test_a_run_wait_longer_than_command_timeout_is_refused_before_the_trigger(
    make_fake_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    client = await make_fake_client(command_timeout=30)
    params = {"api": "trigger_dag", "dag_id": "fake_dag", "wait": "true", "wait_timeout": "31"}
    response = await client.get(API, params=params)
    body = await response.json()
    assert response.status == 400, body
    assert body["output"] == "wait_timeout may be at most command_timeout (30 s)"
    assert not record.exists()  # nothing ran
