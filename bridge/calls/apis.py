"""Who answers each API, by the catalogue's :class:`~bridge.catalogue.model.Handler`: the CLI
through the command path, a task's log, or the bridge itself (versions, DAG files)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import bridge
from bridge.calls import envelope
from bridge.calls.call import Call
from bridge.calls.cli import cli
from bridge.calls.deploy_wait import wait_parsed
from bridge.calls.events import Answer, Finished
from bridge.calls.result import command_envelope
from bridge.calls.stopping import wait_seconds
from bridge.calls.task_log import task_log
from bridge.catalogue.model import Handler
from bridge.deploy.dags import Deployed, Deployer
from bridge.errors import RequestError


async def airflow_version(call: Call) -> Answer:
    """Answered from the version detected at startup."""
    return _said(call, call.airflow.version)


async def bridge_version(call: Call) -> Answer:
    return _said(call, bridge.__version__)


def _said(call: Call, output: str) -> Finished:
    return Finished(envelope.finish(call.base, http_code=200, output=output, warnings=call.notes))


def _deployer(call: Call) -> Deployer:
    return Deployer(call.commands, call.settings, call.airflow, call.peer, call.caller.name)


async def deploy_dag(call: Call) -> Answer:
    """Check, install and serialize the uploaded DAG file."""
    staged = call.upload
    if staged is None:
        raise RequestError("dag_file should be provided (POST multipart/form-data)")
    values = call.values
    if values.get("pause") and values.get("unpause"):
        raise RequestError("give pause or unpause, not both")
    pause = True if values.get("pause") else False if values.get("unpause") else None
    wait_seconds(call)  # a wait_timeout over command_timeout: 400 before anything runs
    async with contextlib.AsyncExitStack() as following:
        if values.get("wait"):  # a follow: a 429 before anything is deployed when none is free
            call.follow = await following.enter_async_context(call.daemon.follows.place(call.owner))
        async with call.commands.slot(call.owner):
            deployed = await _deployer(call).deploy(
                staged, call.daemon.upload_locks, bool(values.get("force")), pause
            )
        http_code = 200
        if values.get("wait"):
            http_code = await wait_parsed(call, deployed, staged.name)
    return _done(call, deployed, http_code)


async def delete_dag(call: Call) -> Answer:
    """Remove a DAG's file through the deploy target, and its records when asked."""
    async with call.commands.slot(call.owner):
        deleted = await _deployer(call).delete(
            call.values["dag_id"], call.daemon.upload_locks, bool(call.values.get("metadata"))
        )
    return _done(call, deleted)


def _done(call: Call, deployed: Deployed, http_code: int = 200) -> Finished:
    """What a deploy or a deletion answers: the file, its DAGs, and where it went."""
    return Finished(
        envelope.finish(
            call.base,
            http_code=http_code,
            output=deployed.output(),
            warnings=[*call.notes, *deployed.warnings],
            extra={"deploy": deployed.target},
        )
    )


async def refresh_dag(call: Call) -> Answer:
    """Re-serialize so that a known DAG's changes show up in Airflow."""
    dag_id = call.values["dag_id"]
    async with call.commands.slot(call.owner):
        result = await _deployer(call).refresh(dag_id)
    fresh = result.exit_code == 0
    output = f"DAG [{dag_id}] is now fresh as a daisy" if fresh else result.stderr[-2000:]
    return Finished(
        command_envelope(call.base, result.exit_code, output=output, warnings=call.notes)
    )


USE_CASES: dict[Handler, Callable[[Call], Awaitable[Answer]]] = {
    Handler.CLI: cli,
    Handler.AIRFLOW_VERSION: airflow_version,
    Handler.BRIDGE_VERSION: bridge_version,
    Handler.DEPLOY_DAG: deploy_dag,
    Handler.REFRESH_DAG: refresh_dag,
    Handler.DELETE_DAG: delete_dag,
    Handler.TASK_LOG: task_log,
}
