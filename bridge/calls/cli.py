"""A CLI-backed API: its plan on this Airflow, prepared (a slot, the files it exchanges, the
date of the run it names) and run through the command path, answered as the caller asked:
one envelope, a stream (a job followed from its start), a detached job, or a service
started with ``daemon=true``."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from bridge.calls import confined, jobs
from bridge.calls.call import Call
from bridge.calls.command import FollowUp, result_of, run
from bridge.calls.dag_report import dag_report
from bridge.calls.events import Answer, Detached, Finished, Streamed
from bridge.calls.result import Prepared, Ran
from bridge.calls.runs import follow_run
from bridge.calls.stopping import wait_seconds
from bridge.catalogue.actions import logical_date_of
from bridge.catalogue.model import EXCHANGE_FILE, RUN_DATE, After, Plan
from bridge.catalogue.planning import plan_cli
from bridge.errors import RequestError
from bridge.offload import in_thread
from bridge.process import services
from bridge.process.path import CommandSpec
from bridge.process.services import ServiceFiles, Stamp, under_systemd
from bridge.text.noise import parse_json_output

# What follows a command the catalogue names an ``after`` for, once it succeeded.
AFTER: dict[After, FollowUp] = {After.DAG_REPORT: dag_report}


async def cli(call: Call) -> Answer:
    """The API's argv on this Airflow, run through the command path."""
    await confined.pin_to_dag_file(call)
    plan = plan_cli(call.api, call.values, call.context, call.want_json)
    service = call.api.service if call.values.get("daemon") else None
    if service is not None and under_systemd(os.environ):
        raise RequestError(
            f"daemon=true is refused under systemd: the bridge's unit would stop the {service} "
            "with the bridge, in the bridge's sandbox; run it with a unit of its own "
            "(docs/systemd.md), or without daemon=true to follow it in the call"
        )
    if service is not None and call.detach:
        raise RequestError("give daemon=true or detach=true, not both")
    wait_seconds(call)  # a wait_timeout over command_timeout: 400 before anything runs
    # What the command holds until it ends (held), and a wait for the run it makes until
    # the wait ends (following): a job's task takes them over.
    async with contextlib.AsyncExitStack() as held, contextlib.AsyncExitStack() as following:
        if call.values.get("wait"):  # a follow: a 429 before anything runs when none is free
            place = call.daemon.follows.place(call.owner)
            call.follow = await following.enter_async_context(place)
        await held.enter_async_context(call.commands.slot(call.owner))
        exchange = await held.enter_async_context(exchange_file(plan))
        run_date = await _run_date(call, plan) if plan.run_of else ""
        parts = [run_date if p == RUN_DATE else _exchange_path(p, exchange) for p in plan.argv]
        spec = CommandSpec(
            [call.airflow.executable, *parts],
            call.api.name,
            "daemon" if service else f"stream={call.stream}" if call.stream else "buffered",
            call.peer,
            # Services run for hours: the import time does not matter, and daemonizing
            # (python-daemon closes every file descriptor) is only known to be safe from a
            # process that did nothing else first.
            warm=not call.api.long_running,
        )
        prepared = Prepared(
            call,
            spec,
            plan,
            export_path=exchange if plan.export_file else None,
            warnings=[*call.notes, *plan.warnings],
        )
        follow_up: FollowUp | None = follow_run if call.values.get("wait") else None
        if call.api.after is not None:
            follow_up = AFTER[call.api.after]
        if service is not None:
            files = ServiceFiles.of(service, call.settings.airflow_home, call.values)
            before = await in_thread(files.pid_stamp)
            follow_up = functools.partial(_confirm_service, service, files, before)
            call.stream = None  # a plain envelope, however the call asked to be answered
        if call.detach:
            job = await jobs.start(prepared, held.pop_all(), follow_up, following.pop_all())
            return Detached(job.job_id, jobs.detached_envelope(call, job))
        if call.stream is None:
            events = run(prepared, with_output=True, follow_up=follow_up, release=held.aclose)
            result = await result_of(events)
            return Finished(result.envelope, result.outcome)
        job = await jobs.start(prepared, held.pop_all(), follow_up, following.pop_all())
    # A streamed call: its job followed from its first byte. If the connection drops, the
    # job waits reattach_wait seconds for a follower before kill_on_disconnect stops it.
    job.streamed = True
    settings = call.settings
    job.reattach_wait = settings.reattach_wait if settings.kill_on_disconnect else None
    # Its slot bounds it: an uncounted follow, which a revocation of its token still ends.
    followed = await jobs.follow(call.daemon, job, 0, call.owner, counted=False)
    return Streamed(followed, job_id=job.job_id)


async def _confirm_service(
    service: str, files: ServiceFiles, before: Stamp, prepared: Prepared, ran: Ran
) -> AsyncIterator[str]:
    """daemon=true: the CLI forked the service and returned; did the service stay up (its
    pid file)?"""
    started = await services.confirm(files, before, prepared.call.settings.service_start_timeout)
    ran.extra["service"] = started.describe(files)
    if started.problem is not None:
        ran.http_code = 500
        tail = await in_thread(services.stderr_tail, files)
        ran.warnings.append(
            f"the {service} did not stay up: {started.problem}; its stderr file "
            f"{files.stderr} ends: {tail[-1000:]!r}"
        )
    return
    yield  # an async generator that says nothing


async def _run_date(call: Call, plan: Plan) -> str:
    """The logical date of the plan's run, from `dags list-runs` (through the command path);
    a run the DAG does not have is a 400."""
    assert plan.run_of is not None  # called for such plans only
    dag_id, run_id = plan.run_of
    argv = [call.airflow.executable, "dags", "list-runs", f"--dag-id={dag_id}"]
    spec = CommandSpec([*argv, "--output=json"], call.api.name, "find the run", call.peer)
    found = await call.commands.capture(spec)
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
