"""The jobs endpoints: ``GET /admin/rest_api/jobs`` lists them; each has its status, its
output (replayed from any byte offset, then live until it ends, then the result record, as a
stream answers) and a cancel. What a job is and how it is followed is bridge.calls.jobs."""

from __future__ import annotations

from aiohttp import web

from bridge.calls import jobs
from bridge.calls.events import Streamed
from bridge.calls.formats import JOB_OUTPUT_FORMAT, chosen_format, dumps
from bridge.errors import RequestError
from bridge.http import answers
from bridge.http.guards.auth import caller_of
from bridge.http.keys import JOBS, daemon_of
from bridge.jobs.job import Job

JOBS_PATH = jobs.JOBS_PATH


async def _job(request: web.Request) -> Job:
    return await jobs.find(request.app[JOBS], request.match_info["job_id"], caller_of(request))


async def job_list(request: web.Request) -> web.Response:
    """``GET /admin/rest_api/jobs``: every job kept that the caller may see, newest first."""
    caller = caller_of(request)
    listed = [
        job.describe() for job in await request.app[JOBS].listing() if jobs.visible(job, caller)
    ]
    return web.json_response({"jobs": listed}, dumps=dumps)


async def job_status(request: web.Request) -> web.Response:
    """``GET /admin/rest_api/jobs/<id>``: its record (the result envelope once it ended)."""
    return web.json_response((await _job(request)).describe(), dumps=dumps)


async def job_cancel(request: web.Request) -> web.Response:
    """``DELETE /admin/rest_api/jobs/<id>``: stop its command (TERM, grace, KILL)."""
    job = await _job(request)
    await jobs.cancel(request.app[JOBS], job, caller_of(request).name)
    return web.json_response(job.describe(), dumps=dumps)


async def job_output(request: web.Request) -> web.StreamResponse:
    """``GET /admin/rest_api/jobs/<id>/output?stream=text|ndjson&offset=N``: the output from
    byte N, live until the job ends, then the result record."""
    job = await _job(request)
    fmt = chosen_format(
        request.query.get("stream", ""),
        request.headers.get("Accept", ""),
        JOB_OUTPUT_FORMAT,
    )
    offset = _offset(request)
    followed = await jobs.follow(daemon_of(request.app), job, offset, caller_of(request).owner)
    return await answers.respond(request, Streamed(followed, job_id=job.job_id), fmt)


def _offset(request: web.Request) -> int:
    text = request.query.get("offset", "0").strip()
    if not (text.isascii() and text.isdigit()):  # '²' is a digit to str.isdigit()
        raise RequestError(f"offset must be a byte count (0 or more), not {text!r}")
    return int(text)
