"""Jobs over HTTP: ``detach=true`` answers 202 at once and the command runs on as a job;
``/admin/rest_api/jobs`` lists them, and each has its status, its output (replayed from any
byte offset, then live until it ends, then the result record, as a stream answers) and a
cancel.

The job's command goes through the command path like any call's: it holds its slot (taken
before the 202, so a full daemon still answers 429) until it ends, and the daemon's stop
stops it (the job then reads ``lost``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import logging

from aiohttp import web

from bridge.errors import RequestError
from bridge.http import envelope, runs
from bridge.http.auth import Caller, caller_of
from bridge.http.calls import (
    Call,
    StreamMode,
    http_code_for,
    outcome_warnings,
    output_texts,
    parsed_extras,
)
from bridge.http.keys import COMMANDS, JOBS
from bridge.http.streams import STREAMS, OutputStream
from bridge.jobs.board import Job, Jobs
from bridge.jobs.spool import READ_BLOCK
from bridge.offload import in_thread
from bridge.process.command import Outcome

log = logging.getLogger(__name__)

JOBS_PATH = "/admin/rest_api/jobs"


async def detach(call: Call, held: contextlib.AsyncExitStack) -> web.Response:
    """``detach=true``: start the job and answer 202 at once; it runs on with no reader."""
    job = await _start(call, held)
    location = f"{JOBS_PATH}/{job.job_id}"
    answer = envelope.finish(
        {k: v for k, v in call.asked.base.items() if k != "_started"},
        http_code=202,
        airflow_cmd=job.record["airflow_cmd"],
        warnings=call.warnings,
        extra={"job_id": job.job_id, "state": job.state, "location": location},
    )
    return envelope.respond(answer, headers={"Location": location})


async def stream(
    call: Call, held: contextlib.AsyncExitStack, mode: StreamMode
) -> web.StreamResponse:
    """A streamed call: a job followed from its first byte. If the connection drops, the
    job waits ``reattach_wait`` seconds for a follower before kill_on_disconnect stops it."""
    settings = call.asked.settings
    job = await _start(call, held)
    job.streamed = True
    job.reattach_wait = settings.reattach_wait if settings.kill_on_disconnect else None
    response = STREAMS[mode]()
    response.headers["X-Job-Id"] = job.job_id
    await response.prepare(call.asked.request)
    await _answer(call.asked.request.app[JOBS], job, response, 0)
    return response


async def _start(call: Call, held: contextlib.AsyncExitStack) -> Job:
    """Make the job and start its command in a task that owns ``held`` (its slot)."""
    asked = call.asked
    app = asked.request.app
    record = {
        "api": asked.api.name,
        "arguments": asked.base["arguments"],
        "post_arguments": asked.base["post_arguments"],
        "call_time": asked.base["call_time"],
        "airflow_cmd": app[COMMANDS].display(call.spec.argv),
        "token": caller_of(asked.request).name,  # whose it is: only it (and admin) sees it
    }
    try:
        job = await app[JOBS].create(record, asked.settings.job_output_limit)
    except BaseException:
        await held.aclose()
        raise
    app[JOBS].start(_run(job, call, held), f"job {job.job_id}")
    return job


async def _run(job: Job, call: Call, held: contextlib.AsyncExitStack) -> None:
    """The job's command to its end, its output spooled, then its result recorded; finished
    jobs past what is kept are removed."""
    settings = call.asked.settings
    app = call.asked.request.app
    commands = app[COMMANDS]
    async with held:
        try:
            if job.cancelled:  # cancelled before it started
                said = "cancelled before its command started"
                result = envelope.finish(call.asked.base, http_code=500, output=said)
                await job.finish("cancelled", result)
                return
            texts = output_texts(call.api, settings)
            stdout: list[str] = []  # for -o json, up to the cap
            kept = 0
            async with commands.run(call.spec) as command:
                job.command = command
                job.record["pid"] = command.pid  # its session id too: ps -s PID
                await job.set_state("running")
                if job.cancelled:  # while it was starting
                    await job.stop("cancelled: stopped")
                async for chunk in command:
                    piece = texts[chunk.stream].feed(chunk.data)
                    if chunk.stream == "stdout" and call.plan.json_output:
                        if kept < settings.max_output_size:
                            stdout.append(piece)
                            kept += len(piece)
                    await job.write(chunk.stream, piece)
                for name, text in texts.items():
                    await job.write(name, text.finish())
            outcome = command.outcome
            assert outcome is not None  # the output ended: the command has an outcome
            warnings = call.warnings + outcome_warnings(outcome, settings, commands.stopping)
            if job.abandoned:
                warnings.append(
                    f"its client left and none came back within {settings.reattach_wait:g} s "
                    "(reattach_wait): the command was stopped"
                )
            ok = outcome.exit_code == 0
            extra = await parsed_extras(call, "".join(stdout), warnings) if ok else {}
            http_code = http_code_for(outcome)
            if ok and call.asked.values.get("wait"):  # trigger_dag: follow the run it made
                say = functools.partial(job.write, "stdout")
                http_code = await runs.wait_for_run(call, commands, extra, warnings, say)
            result = envelope.finish(
                call.asked.base,
                http_code=http_code,
                airflow_cmd=commands.display(call.spec.argv),
                warnings=warnings,
                exit_code=outcome.exit_code,
                extra=extra,
            )
            await job.finish(_ended_state(job, outcome, commands.stopping, http_code), result)
        except Exception as exc:  # the command could not start: the job says why
            log.exception("job %s failed", job.job_id)
            result = envelope.finish(call.asked.base, http_code=500, output=str(exc))
            await job.finish("failed", result)
    await app[JOBS].prune(settings.jobs_to_keep, settings.job_max_age)


def _ended_state(job: Job, outcome: Outcome, stopping: bool, http_code: int) -> str:
    if job.cancelled:
        return "cancelled"
    if stopping:
        return "lost"
    if outcome.timed_out or http_code == 504:
        return "timed_out"
    return "succeeded" if http_code < 400 else "failed"


def _job(request: web.Request) -> Job:
    job_id = request.match_info["job_id"]
    job = request.app[JOBS].get(job_id)
    if job is None or not _visible(job, caller_of(request)):
        raise RequestError(f"no job '{job_id}' here (GET {JOBS_PATH} lists them)", 404)
    return job


def _visible(job: Job, caller: Caller) -> bool:
    """A token sees (and cancels) the jobs it started; admin sees every job. Another token's
    job is a 404, as one that does not exist: its id says nothing."""
    return caller.sees_every_job or job.record.get("token") == caller.name


async def job_list(request: web.Request) -> web.Response:
    """``GET /admin/rest_api/jobs``: every job kept that the caller may see, newest first."""
    caller = caller_of(request)
    jobs = [job.describe() for job in request.app[JOBS].newest_first() if _visible(job, caller)]
    return web.json_response({"jobs": jobs}, dumps=envelope.dumps)


async def job_status(request: web.Request) -> web.Response:
    """``GET /admin/rest_api/jobs/<id>``: its record (the result envelope once it ended)."""
    return web.json_response(_job(request).describe(), dumps=envelope.dumps)


async def job_cancel(request: web.Request) -> web.Response:
    """``DELETE /admin/rest_api/jobs/<id>``: stop its command (TERM, grace, KILL)."""
    job = _job(request)
    if job.ended:
        raise RequestError(f"job {job.job_id} already ended ({job.state})", 409)
    job.cancelled = True
    await job.stop("cancelled: stopped")
    while not job.ended:
        await job.changed()
    return web.json_response(job.describe(), dumps=envelope.dumps)


async def job_output(request: web.Request) -> web.StreamResponse:
    """``GET /admin/rest_api/jobs/<id>/output?stream=text|ndjson&offset=N``: the output from
    byte N, live until the job ends, then the result record."""
    job = _job(request)
    mode = _mode(request)
    offset = _offset(request)
    response = STREAMS[mode]()
    response.headers["X-Job-Id"] = job.job_id
    await response.prepare(request)
    await _answer(request.app[JOBS], job, response, offset)
    return response


async def _answer(jobs: Jobs, job: Job, response: OutputStream, offset: int) -> None:
    """Follow ``job`` from ``offset`` to its end into ``response``, then its record."""
    try:
        await response.send_job(job.job_id, f"{JOBS_PATH}/{job.job_id}")
        await _follow(jobs, job, response, offset)
        await response.send_result(job.describe())
        await response.write_eof()
    except ConnectionResetError:
        log.info("a follower of job %s left", job.job_id)


async def _follow(jobs: Jobs, job: Job, response: OutputStream, offset: int) -> None:
    """Send the spooled output from ``offset``; wait for more until the job ends."""
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
            if beyond:
                if ended:
                    return
                await more.wait()
                continue
            if position >= size or live_taken:  # live, the spool is behind it for good
                if job.live is not None and job.live_number > live_taken:
                    live_taken = job.live_number
                    await response.send_output(*job.live)
                    job.took_live()
                    continue
                if ended:
                    return
                await more.wait()
                continue
            block = min(READ_BLOCK, size - position)
            for piece in await in_thread(job.files.read, position, block):
                decoder = decoders.setdefault(piece.stream, _utf8_decoder())
                await response.send_output(piece.stream, decoder.decode(piece.data))
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
    while not job.followers and not job.ended:
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


def _mode(request: web.Request) -> StreamMode:
    requested = request.query.get("stream", "").strip().lower()
    if not requested:
        accept = request.headers.get("Accept", "")
        return "ndjson" if "application/x-ndjson" in accept else "text"
    if requested in ("true", "text"):
        return "text"
    if requested == "ndjson":
        return "ndjson"
    raise RequestError("stream must be true, text or ndjson")


def _offset(request: web.Request) -> int:
    text = request.query.get("offset", "0").strip()
    if not text.isdigit():
        raise RequestError(f"offset must be a byte count (0 or more), not {text!r}")
    return int(text)
