"""A call run as a job, and following one.

``detach=true`` starts a job and answers at once; a streamed call is a job followed from its
first byte. The job's command goes through the command path like any call's: it holds its
slot (taken before the answer, so a full daemon still answers 429) until it ends, and the
daemon's stop stops it (the job then reads ``lost``). Followers read the spooled output from
any offset, then the live pieces past the spool, then the job's record.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from bridge.calls import envelope
from bridge.calls.call import Call, Caller, Daemon
from bridge.calls.command import FollowUp, Watch, run
from bridge.calls.events import Event, JobNamed, Note, Output, Result
from bridge.calls.follows import REVOKED_HTTP_CODE, Follow, holding
from bridge.calls.result import Prepared, display
from bridge.config.tokens import OPEN_NAME
from bridge.errors import RequestError
from bridge.jobs.board import Jobs
from bridge.jobs.job import Job
from bridge.jobs.spool import READ_BLOCK
from bridge.process.command import Command, Outcome
from bridge.process.slots import Owner
from bridge.waiting import until_any

log = logging.getLogger(__name__)

JOBS_PATH = "/admin/rest_api/jobs"  # where the jobs are listed (the HTTP routes' prefix)


async def start(
    prepared: Prepared,
    held: contextlib.AsyncExitStack,
    follow_up: FollowUp | None,
    following: contextlib.AsyncExitStack | None = None,
) -> Job:
    """Make the job and start its command in a task that owns ``held`` (its slot, given back
    when the command ends) and ``following`` (a wait's place, kept until the job ends)."""
    following = following or contextlib.AsyncExitStack()
    call = prepared.call
    record = {
        "api": call.api.name,
        "arguments": call.base["arguments"],
        "post_arguments": call.base["post_arguments"],
        "call_time": call.base["call_time"],
        "airflow_cmd": display(call.commands, prepared.spec),
        "token": call.caller.name,  # shown; who owns it is its identity
        "owner": call.caller.identity,  # whose it is: only it (and admin) sees it
    }
    dag_id = call.values.get("dag_id")
    if isinstance(dag_id, str):  # a confined token sees it while the DAG is one of its own
        record["dag_id"] = dag_id
    jobs = call.daemon.jobs
    try:
        job = await jobs.create(record, call.settings.job_output_limit)
    except BaseException:
        await held.aclose()
        await following.aclose()
        raise
    call.stop = job.stop_requested  # cancelling the job ends the call's waits too
    jobs.start(_run(job, prepared, held, follow_up, following), f"job {job.job_id}")
    return job


def detached_envelope(call: Call, job: Job) -> dict[str, Any]:
    """What ``detach=true`` answers at once: the envelope so far, and the job."""
    return envelope.finish(
        envelope.unstarted(call.base),
        http_code=202,
        airflow_cmd=str(job.record["airflow_cmd"]),
        warnings=call.notes,
        extra={"job_id": job.job_id, "state": job.state, "location": location(job.job_id)},
    )


def location(job_id: str) -> str:
    return f"{JOBS_PATH}/{job_id}"


class _JobWatch(Watch):
    """The job learns its command (to stop it, and its pid) and says how it was stopped."""

    def __init__(self, job: Job, reattach_wait: float) -> None:
        self.job = job
        self.reattach_wait = reattach_wait

    async def started(self, command: Command) -> None:
        self.job.command = command
        self.job.record["pid"] = command.pid  # its session id too: ps -s PID
        await self.job.set_state("running")
        if self.job.cancelled:  # while it was starting
            await self.job.stop("cancelled: stopped")

    def stopped_by(self) -> str | None:
        if self.job.abandoned:
            return (
                f"its client left and none came back within {self.reattach_wait:g} s "
                "(reattach_wait)"
            )
        return self.job.cancelled_by


async def _run(
    job: Job,
    prepared: Prepared,
    held: contextlib.AsyncExitStack,
    follow_up: FollowUp | None,
    following: contextlib.AsyncExitStack,
) -> None:
    """The job's command to its end, its output spooled, then its result recorded; finished
    jobs past what is kept are removed."""
    call = prepared.call
    settings = call.settings
    async with following, held:
        try:
            if job.cancelled:  # cancelled before it started
                said = "cancelled before its command started"
                result = envelope.finish(call.base, http_code=500, output=said)
                await job.finish("cancelled", result)
                return
            watch = _JobWatch(job, settings.reattach_wait)
            events = run(
                prepared, with_output=False, follow_up=follow_up, watch=watch, release=held.aclose
            )
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, Output):
                        await job.write(event.stream, event.text)
                    elif isinstance(event, Result):
                        assert event.outcome is not None
                        # Stopped by the daemon's stop: its command, or its wait (a 503).
                        stopping = call.commands.stopping or (
                            call.commands.closing.is_set()
                            and event.envelope["http_response_code"] == 503
                        )
                        state = _ended_state(job, event.outcome, stopping, event)
                        await job.finish(state, event.envelope)
                    elif isinstance(event, Note):  # the bridge's own line, in the output
                        await job.write("stdout", event.text)
        except Exception as exc:  # the command could not start: the job says why
            log.exception("job %s failed", job.job_id)
            result = envelope.finish(call.base, http_code=500, output=str(exc))
            await job.finish("failed", result)
    await call.daemon.jobs.prune(settings.jobs_to_keep, settings.job_max_age)


def _ended_state(job: Job, outcome: Outcome, stopping: bool, result: Result) -> str:
    http_code = int(result.envelope["http_response_code"])
    if job.cancelled:
        return "cancelled"
    if stopping:
        return "lost"
    if outcome.timed_out or http_code == 504:
        return "timed_out"
    return "succeeded" if http_code < 400 else "failed"


def visible(job: Job, caller: Caller) -> bool:
    """A token sees (and cancels) the jobs it started, by its identity (not its name: one
    revoked and added again is another token); admin sees every job. Another token's job is
    a 404, as one that does not exist: its id says nothing. A job without an owner (kept
    from before owners were recorded) is admin's to see alone. A DAG-confined token sees
    its jobs on its DAGs only: the operator may have narrowed its DAGs since."""
    owner = job.record.get("owner")
    if caller.sees_every_job:
        return True
    if owner is None or owner != caller.identity:
        return False
    dag_id = job.record.get("dag_id")
    return not caller.confined or (isinstance(dag_id, str) and caller.may_see(dag_id))


async def find(jobs: Jobs, job_id: str, caller: Caller) -> Job:
    """The caller's job by its id, whichever bridge runs it; a 404 for one it may not see."""
    job = await jobs.find(job_id)
    if job is None or not visible(job, caller):
        raise RequestError(f"no job '{job_id}' here (GET {JOBS_PATH} lists them)", 404)
    return job


async def cancel(jobs: Jobs, job: Job, by: str) -> None:
    """Stop its command (TERM, grace, KILL) and wait until it recorded its end; ``by``: the
    name of the token that asked (its result's warning and audit line say it). A job another
    bridge runs is stopped by that bridge, told through the jobs database."""
    if job.ended:
        raise RequestError(f"job {job.job_id} already ended ({job.state})", 409)
    why = "cancelled (DELETE) " + (
        "with no token (the daemon asks for none)" if by == OPEN_NAME else f"by token '{by}'"
    )
    if jobs.instance is not None:
        why += f" on bridge '{jobs.instance}'"
    if job.elsewhere:
        await jobs.cancel_elsewhere(job, why)
    else:
        await job.cancel(why)


async def follow(
    daemon: Daemon, job: Job, offset: int, owner: Owner | None, counted: bool = True
) -> AsyncGenerator[Event, None]:
    """The job named, its output from byte ``offset``, live until it ends, then its record;
    a follow of ``owner``'s, which takes one of its places among the follows first (a 429
    when it has none; ``counted=False``: a stream's own client, whose job's slot bounds it).
    Consume it inside ``contextlib.aclosing``: a follower that leaves is counted out."""
    return await holding(
        lambda place: _follow(daemon, job, offset, place), daemon.follows, owner, counted
    )


async def _follow(
    daemon: Daemon, job: Job, offset: int, place: Follow
) -> AsyncGenerator[Event, None]:
    yield JobNamed(job.job_id)
    # A job this bridge runs ends when the bridge stops (its command is stopped); one that
    # another bridge runs goes on, so its follow here ends with the bridge.
    stops = [place.stop, *([daemon.commands.closing] if job.elsewhere else [])]
    async for event in _output(daemon.jobs, job, offset, stops):
        yield event
    if job.ended:
        yield Result(job.describe())
        return
    if place.stop.is_set():  # its token was revoked: the job goes on
        said, code = f"{place.why}: following the job stopped; the job goes on", REVOKED_HTTP_CODE
    else:
        runner = job.record.get("bridge", "another bridge")
        said, code = (
            f"this bridge is stopping: following ended; bridge '{runner}' runs the job on",
            503,
        )
    record = job.describe()
    warning = "; ".join(filter(None, [record.get("warning"), said]))
    yield Result({**record, "status": "ERROR", "http_response_code": code, "warning": warning})


async def _output(
    jobs: Jobs, job: Job, offset: int, stops: list[asyncio.Event]
) -> AsyncGenerator[Output, None]:
    """The spooled output from ``offset``; more as it comes until the job ends or one of
    ``stops`` is set."""
    decoders: dict[str, codecs.IncrementalDecoder] = {}
    position = offset
    live_taken = 0  # past the spool: the number of the live piece this follower sent last
    beyond = False  # asked for bytes past what is kept: it waits, live pieces are not for it
    job.followers += 1
    job.notify()  # one waiting for a follower to come back
    try:
        while True:
            ended = job.ended  # read before the files: what it wrote by then is all there is
            more = job.pulse
            size = job.size
            if (position > size) != beyond:
                beyond = position > size
                job.followers_beyond += 1 if beyond else -1
                job.notify()
            if any(stop.is_set() for stop in stops):
                return
            if beyond:
                if ended:
                    return
                await until_any(more, *stops)
                continue
            if position >= size or live_taken:  # live, the spool is behind it for good
                if job.live is not None and job.live_number > live_taken:
                    live_taken = job.live_number
                    yield Output(*job.live)
                    job.took_live()
                    continue
                if ended:
                    return
                await until_any(more, *stops)
                continue
            block = min(READ_BLOCK, size - position)
            try:
                pieces = await job.store.read(position, block)
            except OSError:
                if not job.store.resumable:
                    raise
                continue  # the read waited a while for the database: look again
            if not pieces:  # removed meanwhile (retention): what was there is all there is
                return
            for piece in pieces:
                decoder = decoders.setdefault(piece.stream, _utf8_decoder())
                yield Output(piece.stream, decoder.decode(piece.data))
                position = piece.offset + len(piece.data)
    finally:
        job.followers -= 1
        if beyond:
            job.followers_beyond -= 1
        job.notify()
        if not job.followers and not job.ended:
            _abandoned(jobs, job)


def _abandoned(jobs: Jobs, job: Job) -> None:
    """The last follower of a stream's job left: it runs on, or waits for one to come back."""
    if not job.streamed:
        return  # a detached job runs on anyway
    if job.reattach_wait is None:
        if job.command is not None:
            job.command.ending = "ran on after its client left"
        return
    jobs.start(_stop_unless_reattached(job, job.reattach_wait), f"job {job.job_id} waits")


async def _stop_unless_reattached(job: Job, wait: float) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait
    # A job whose token was revoked no longer waits for its client: it runs on.
    while job.reattach_wait is not None and not job.followers and not job.ended:
        left = give_up - loop.time()
        if left <= 0:
            log.info("job %s: its client left and none came back; stopping it", job.job_id)
            job.cancelled = job.abandoned = True
            await job.stop("client left: stopped")
            return
        pulse = job.pulse
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pulse.wait(), timeout=left)


def _utf8_decoder() -> codecs.IncrementalDecoder:
    """A character split between two reads (or an offset inside one) is not lost text."""
    return codecs.getincrementaldecoder("utf-8")("replace")
