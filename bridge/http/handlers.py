"""Who answers each API, by the catalogue's :class:`~bridge.catalogue.model.Handler`: the CLI
through the command path (buffered or streamed), or the bridge itself."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

import bridge
from bridge.catalogue.actions import logical_date_of
from bridge.catalogue.model import EXCHANGE_FILE, RUN_DATE, Handler, Plan
from bridge.catalogue.planning import plan_cli
from bridge.deploy.dags import Deployer
from bridge.errors import RequestError
from bridge.http import buffered, envelope, jobs, runs
from bridge.http.calls import Asked, Call
from bridge.http.keys import COMMANDS, UPLOAD_LOCKS, airflow_of
from bridge.http.task_log import task_log
from bridge.offload import in_thread
from bridge.process import services
from bridge.process.path import CommandPath, CommandSpec
from bridge.process.services import ServiceFiles, under_systemd
from bridge.text.noise import parse_json_output


async def airflow_version(asked: Asked) -> web.StreamResponse:
    """Answered from the version detected at startup."""
    version = airflow_of(asked.request.app).version
    return envelope.respond(
        envelope.finish(asked.base, http_code=200, output=version, warnings=asked.notes)
    )


async def bridge_version(asked: Asked) -> web.StreamResponse:
    return envelope.respond(
        envelope.finish(asked.base, http_code=200, output=bridge.__version__, warnings=asked.notes)
    )


async def cli(asked: Asked) -> web.StreamResponse:
    """The API's argv on this Airflow, run through the command path."""
    app = asked.request.app
    commands = app[COMMANDS]
    plan = plan_cli(asked.api, asked.values, asked.context, asked.want_json)
    service = asked.api.service if asked.values.get("daemon") else None
    if service is not None and under_systemd(os.environ):
        raise RequestError(
            f"daemon=true is refused under systemd: the bridge's unit would stop the {service} "
            "with the bridge, in the bridge's sandbox; run it with a unit of its own "
            "(docs/systemd.md), or without daemon=true to follow it in the call"
        )
    if service is not None and asked.detach:
        raise RequestError("give daemon=true or detach=true, not both")
    # What the command holds until it ends: a job's task takes them over (detach).
    async with contextlib.AsyncExitStack() as held:
        await held.enter_async_context(commands.slot())
        exchange = await held.enter_async_context(exchange_file(plan))
        run_date = await _run_date(asked, commands, plan) if plan.run_of else ""
        parts = [run_date if p == RUN_DATE else _exchange_path(p, exchange) for p in plan.argv]
        argv = [airflow_of(app).executable, *parts]
        spec = CommandSpec(
            argv,
            asked.api.name,
            "daemon" if service else f"stream={asked.mode}" if asked.mode else "buffered",
            asked.peer,
            # Services run for hours: the import time does not matter, and daemonizing
            # (python-daemon closes every file descriptor) is only known to be safe from a
            # process that did nothing else first.
            warm=not asked.api.long_running,
        )
        call = Call(
            asked,
            spec,
            plan,
            export_path=exchange if plan.export_file else None,
            warnings=[*asked.notes, *plan.warnings],
        )
        if service is not None:
            return await _start_service(call, commands, service)
        if asked.detach:
            return await jobs.detach(call, held.pop_all())
        if asked.mode is None and asked.values.get("wait"):
            return await _trigger_and_wait(call, commands)
        if asked.mode is None:
            return await buffered.answer(call, commands)
        return await jobs.stream(call, held.pop_all(), asked.mode)


async def _trigger_and_wait(call: Call, commands: CommandPath) -> web.Response:
    """trigger_dag&wait=true, buffered: one envelope once the run ended."""
    ran = await buffered.run(call, commands)
    if ran.outcome.exit_code == 0:
        said: list[str] = []

        async def say(line: str) -> None:
            said.append(line)

        ran.http_code = await runs.wait_for_run(call, commands, ran.extra, ran.warnings, say)
    return buffered.respond(call, commands, ran)


async def _start_service(call: Call, commands: CommandPath, service: str) -> web.Response:
    """daemon=true: the CLI forks the service and returns; a plain envelope says whether the
    service stayed up (its pid file), however the call asked to be answered."""
    settings = call.asked.settings
    files = ServiceFiles.of(service, settings.airflow_home, call.asked.values)
    before = await in_thread(files.pid_stamp)
    ran = await buffered.run(call, commands)
    if ran.outcome.exit_code == 0:
        started = await services.confirm(files, before, settings.service_start_timeout)
        ran.extra["service"] = started.describe(files)
        if started.problem is not None:
            ran.http_code = 500
            tail = await in_thread(services.stderr_tail, files)
            ran.warnings.append(
                f"the {service} did not stay up: {started.problem}; its stderr file "
                f"{files.stderr} ends: {tail[-1000:]!r}"
            )
    return buffered.respond(call, commands, ran)


async def _run_date(asked: Asked, commands: CommandPath, plan: Plan) -> str:
    """The logical date of the plan's run, from `dags list-runs` (through the command path);
    a run the DAG does not have is a 400."""
    assert plan.run_of is not None  # called for such plans only
    dag_id, run_id = plan.run_of
    argv = [airflow_of(asked.request.app).executable, "dags", "list-runs", f"--dag-id={dag_id}"]
    spec = CommandSpec([*argv, "--output=json"], asked.api.name, "find the run", asked.peer)
    found = await commands.capture(spec)
    date = (
        logical_date_of(parse_json_output(found.stdout), run_id) if found.exit_code == 0 else None
    )
    if date is None:
        raise RequestError(f"DAG '{dag_id}' has no run with run_id '{run_id}'")
    return date


def _exchange_path(part: str, exchange: Path | None) -> str:
    """The argv element, with the plan's placeholder replaced by the daemon's temp file."""
    if part != EXCHANGE_FILE:
        return part
    assert exchange is not None  # a plan with the placeholder needs_file
    return str(exchange)


@contextlib.asynccontextmanager
async def exchange_file(plan: Plan) -> AsyncIterator[Path | None]:
    """The temp file an import reads or an export writes, in a private folder removed
    afterwards; None when the plan needs no file."""
    if not plan.needs_file:
        yield None
        return
    folder = Path(await in_thread(tempfile.mkdtemp, prefix="airflow-rest-bridge-"))
    try:
        path = folder / ("export.json" if plan.export_file else "import.json")
        if plan.import_content is not None:
            await in_thread(path.write_text, plan.import_content, encoding="utf-8")
        yield path
    finally:
        await in_thread(shutil.rmtree, folder, ignore_errors=True)


def _deployer(asked: Asked) -> Deployer:
    app = asked.request.app
    return Deployer(app[COMMANDS], asked.settings, airflow_of(app), asked.peer)


async def deploy_dag(asked: Asked) -> web.StreamResponse:
    """Check, install and serialize the uploaded DAG file."""
    staged = asked.upload
    if staged is None:
        raise RequestError("dag_file should be provided (POST multipart/form-data)")
    values = asked.values
    if values.get("pause") and values.get("unpause"):
        raise RequestError("give pause or unpause, not both")
    pause = True if values.get("pause") else False if values.get("unpause") else None
    async with asked.request.app[COMMANDS].slot():
        deployed = await _deployer(asked).deploy(
            staged, asked.request.app[UPLOAD_LOCKS], bool(values.get("force")), pause
        )
    return envelope.respond(
        envelope.finish(
            asked.base,
            http_code=200,
            output=deployed.output(),
            warnings=[*asked.notes, *deployed.warnings],
        )
    )


async def refresh_dag(asked: Asked) -> web.StreamResponse:
    """Re-serialize so that a known DAG's changes show up in Airflow."""
    dag_id = asked.values["dag_id"]
    async with asked.request.app[COMMANDS].slot():
        result = await _deployer(asked).refresh(dag_id)
    code = 200 if result.exit_code == 0 else 500
    output = f"DAG [{dag_id}] is now fresh as a daisy" if code == 200 else result.stderr[-2000:]
    return envelope.respond(
        envelope.finish(
            asked.base,
            http_code=code,
            output=output,
            exit_code=result.exit_code,
            warnings=asked.notes,
        )
    )


HANDLERS: dict[Handler, Callable[[Asked], Awaitable[web.StreamResponse]]] = {
    Handler.CLI: cli,
    Handler.AIRFLOW_VERSION: airflow_version,
    Handler.BRIDGE_VERSION: bridge_version,
    Handler.DEPLOY_DAG: deploy_dag,
    Handler.REFRESH_DAG: refresh_dag,
    Handler.TASK_LOG: task_log,
}
