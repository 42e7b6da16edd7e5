"""``trigger_dag&wait=true``: once the trigger succeeded, the new run is followed until it
ends, through the command path like every Airflow process: ``dags list-runs`` every
``POLL_SECONDS`` (each state change is said as it is seen), then, for a run that did not
succeed, ``tasks states-for-dag-run`` for the tasks that failed. ``wait_timeout`` (at most
``command_timeout``) ends the wait, never the run; so do a cancel of the call's job, the
daemon stopping and the call's token revoked (bridge.calls.stopping). The wait holds no slot:
each look takes one for as long as its command runs; it holds a place among the follows
(bridge.calls.follows), taken before the trigger. Needs a scheduler to run the DAG (the
bridge starts none).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from bridge.calls.call import Call
from bridge.calls.result import Prepared, Ran
from bridge.calls.stopping import Stopped, pause, unless_stopped, wait_seconds
from bridge.errors import RequestError
from bridge.process.path import Captured, CommandSpec
from bridge.text.noise import parse_json_output

POLL_SECONDS = 2.0  # the run's own pace: a state is seen at most this late
ENDED_STATES = ("success", "failed")


async def follow_run(prepared: Prepared, ran: Ran) -> AsyncIterator[str]:
    """Follow the run the trigger made (``ran.extra["dag_run"]``), saying each state as it
    is seen; ``ran`` gets the run's states and the HTTP code: 200 success, 500 not, 504
    still running when the wait ended."""
    call = prepared.call
    run = dict(ran.extra.get("dag_run") or {})
    dag_id, run_id = run.get("dag_id") or call.values["dag_id"], run.get("run_id")
    if not run_id:
        ran.warnings.append("the trigger did not say which run it made: it was not followed")
        ran.http_code = 500
        return
    timeout = wait_seconds(call)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    seen: list[dict[str, Any]] = []
    state = run.get("state")
    try:
        while True:
            found = await unless_stopped(call, _state_of(call, dag_id, run_id))
            if (found is not None and found != state) or not seen:
                state = found or state
                seen.append({"state": state, "seen_at": time.time()})
                yield f"[airflow-rest-bridge] run {run_id} of {dag_id}: {state}\n"
                if len(seen) == 1 and state == "queued":
                    if note := await paused_note(call, dag_id, f"run {run_id} stays queued"):
                        ran.warnings.append(note)
                        yield f"[airflow-rest-bridge] {note}\n"
            if state in ENDED_STATES:
                break
            left = give_up - loop.time()
            if left <= 0:
                ran.warnings.append(
                    f"the run was still {state} after wait_timeout ({timeout:g} s); it goes on"
                )
                ran.extra.update(dag_run={**run, "state": state}, run_states=seen)
                ran.http_code = 504
                return
            await pause(call, min(POLL_SECONDS, left))  # a poll interval
    except Stopped as stop:
        ran.warnings.append(
            f"{stop.why}: the wait for run {run_id} ended while it was {state}; the run goes on"
        )
        ran.extra.update(dag_run={**run, "state": state}, run_states=seen)
        ran.http_code = stop.http_code
        return
    ran.extra.update(dag_run={**run, "state": state}, run_states=seen)
    if state == "success":
        ran.http_code = 200
        return
    failed = await _failed_tasks(call, dag_id, run_id)
    ran.extra["failed_tasks"] = failed
    ran.warnings.append(f"the run ended {state}; failed tasks: {', '.join(failed) or 'none'}")
    ran.http_code = 500


async def _state_of(call: Call, dag_id: str, run_id: str) -> str | None:
    """The run's state now; None when it could not be said (every slot busy: asked again
    at the next poll)."""
    try:
        runs = await list_runs(call, dag_id, "follow the run")
    except RequestError:  # 429 or 503 from the slots
        return None
    for found in runs:
        if isinstance(found, dict) and found.get("run_id") == run_id:
            return str(found.get("state"))
    return None


async def list_runs(call: Call, dag_id: str, purpose: str) -> list[Any]:
    """The DAG's runs as ``dags list-runs -o json`` lists them; [] when it could not say."""
    airflow = call.airflow
    command = airflow.cli.command(("dags", "list-runs")) if airflow.cli else None
    dag_arg = command.argument("dag_id") if command else None
    # Airflow 2 names the DAG with --dag-id, 3 as a positional.
    by_option = not dag_arg.positional if dag_arg is not None else airflow.major == 2
    words = ["dags", "list-runs", "--output=json"]
    argv = [*words, f"--dag-id={dag_id}"] if by_option else [*words, "--", dag_id]
    runs = await cli_json(call, argv, purpose)
    return runs if isinstance(runs, list) else []


async def paused_note(call: Call, dag_id: str, what_waits: str) -> str | None:
    """A sentence when the DAG is paused (so that what is waited for cannot start), else
    None; asked once, when a wait begins on something not yet running."""
    details = await unless_stopped(
        call, cli_json(call, ["dags", "details", "--output=json", "--", dag_id], "is it paused")
    )
    found = details[0] if isinstance(details, list) and details else details
    if isinstance(found, dict) and found.get("is_paused") in (True, "True", "true"):
        return f"DAG {dag_id} is paused: {what_waits} until it is unpaused"
    return None


async def _failed_tasks(call: Call, dag_id: str, run_id: str) -> list[str]:
    argv = ["tasks", "states-for-dag-run", "--output=json", "--", dag_id, run_id]
    states = await cli_json(call, argv, "the run's failed tasks")
    return sorted(
        str(task.get("task_id"))
        for task in (states if isinstance(states, list) else [])
        if isinstance(task, dict) and task.get("state") == "failed"
    )


async def cli_json(call: Call, argv: list[str], purpose: str) -> Any:
    """What a bookkeeping command printed as JSON (None when it failed), run through the
    command path under the caller's API name."""
    found = await cli_capture(call, argv, purpose)
    return parse_json_output(found.stdout) if found.exit_code == 0 else None


async def cli_capture(call: Call, argv: list[str], purpose: str) -> Captured:
    """A bookkeeping command, with a slot of its own for as long as it runs."""
    spec = CommandSpec([call.airflow.executable, *argv], call.api.name, purpose, call.peer)
    async with call.commands.slot(call.owner):
        return await call.commands.capture(spec)
