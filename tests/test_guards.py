"""Guards found by a hand mutation audit (issue 24): behaviour that no other unit test pinned,
each through the real app and the fake airflow. A 503 after slot_wait_timeout says when to
retry; a reload that raises max_concurrent_commands starts the calls waiting for a slot; a
seed API that runs a command still names the unknown arguments it ignored."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import replace

from bridge.http.keys import SETTINGS
from bridge.http.lifecycle import reloaded
from bridge.service.notify import Notifier
from bridge.service.serve import _reload
from tests.helpers import (
    API,
    ClientFactory,
    app_of,
    call,
    commands_of,
    fault,
    hold_the_slot,
    new_marker,
    processes_with,
    until_waiting,
)


async def test_a_wait_past_slot_wait_timeout_is_503_with_retry_after(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(
        max_concurrent_commands=1, slot_wait_timeout=0.2, reattach_wait=0
    )
    held, marker = await hold_the_slot(client)
    response = await client.get(API, params=fault(new_marker(), "ok"))
    body = await response.json()
    assert response.status == 503 and "slot_wait_timeout" in body["output"], body
    assert response.headers["Retry-After"] == "5"
    held.close()
    await asyncio.wait_for(commands_of(client).idle.wait(), timeout=30)
    assert processes_with(marker) == []


async def test_a_reload_that_raises_the_limit_starts_a_waiting_call(
    make_fake_client: ClientFactory,
) -> None:
    """SIGHUP's reload (bridge.service.serve) with a higher max_concurrent_commands: the call
    waiting for a slot runs at once, while the first still holds its own."""
    client = await make_fake_client(max_concurrent_commands=1, reattach_wait=0)
    commands = commands_of(client)
    held, marker = await hold_the_slot(client)
    waiting = asyncio.create_task(client.get(API, params=fault(new_marker(), "ok")))
    await until_waiting(commands, 1)
    current = app_of(client)[SETTINGS]
    raised = replace(current.settings, max_concurrent_commands=2)
    ready = asyncio.Event()
    ready.set()  # the daemon serves
    in_force = functools.partial(reloaded, app_of(client))
    await _reload(current, lambda: raised, Notifier({}), ready, in_force)
    assert current.settings.max_concurrent_commands == 2
    assert commands.slots.waiting == 0 and commands.busy == 2
    second = await waiting
    assert second.status == 200 and (await second.json())["exit_code"] == 0
    assert processes_with(marker)  # the first still runs: the new limit let the second in
    held.close()
    await asyncio.wait_for(commands.idle.wait(), timeout=30)
    assert processes_with(marker) == []


async def test_a_seed_api_that_runs_a_command_names_the_unknown_arguments(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    status, body = await call(client, api="list_dags", zeta="1")
    assert status == 200 and body["exit_code"] == 0, body  # its command ran
    assert "['zeta']" in body["warning"] and "ignored" in body["warning"], body
