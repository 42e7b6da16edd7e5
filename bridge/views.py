"""Request handlers. A call reads as a straight line:
auth (middleware) -> read arguments -> catalogue validates -> argv -> runner -> envelope/stream.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web

import bridge
from bridge import dags, envelope, execute, forms, page, warm
from bridge.apis import APIS, BY_NAME, NAMES
from bridge.catalogue import EXCHANGE_FILE, Api, Context, RequestError, collect, plan_cli
from bridge.config import Settings
from bridge.redact import mask_arguments
from bridge.state import RUNTIME, Runtime, settings_of

log = logging.getLogger(__name__)
# The envelope a request started with, so that an error answered later keeps its arguments.
STARTED_ENVELOPE: Final = web.RequestKey("started_envelope", dict)
STREAM_MODES: dict[str, execute.StreamMode] = {"true": "text", "text": "text", "ndjson": "ndjson"}


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure becomes the seed's envelope; a bug is logged and answered 500 plainly."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except RequestError as exc:
        return envelope.error(_bare_envelope(request), exc.status, str(exc), exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return envelope.error(_bare_envelope(request), exc.status, exc.reason, allow)
    except Exception:
        log.exception("unexpected error for %s %s", request.method, request.path)
        return envelope.error(_bare_envelope(request), 500, "internal error; see the daemon log")


def _bare_envelope(request: web.Request) -> dict[str, Any]:
    """The envelope started for this request (with its arguments and call time), or a new
    one when the request failed before its arguments were read."""
    started = request.get(STARTED_ENVELOPE)
    if started is not None:
        return started
    settings = settings_of(request.app)
    token = settings.rest_api_plugin_expected_http_token
    too_long = len(request.query_string) > forms.MAX_QUERY_STRING
    arguments = {} if too_long else mask_arguments(dict(request.query), token)
    return envelope.start(arguments, {}, envelope.now())


async def health(request: web.Request) -> web.Response:
    """Liveness, without auth: the daemon answers and knows its Airflow."""
    runtime = request.app[RUNTIME]
    info = runtime.airflow
    return web.json_response(
        {
            "status": "OK",
            "bridge_version": bridge.__version__,
            "airflow_version": info.version if info else None,
            "commands_running": runtime.slots.running,
            "warm_helper": warm.describe(runtime.warm.status() if runtime.warm else None),
        }
    )


async def index_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.app.router["index"].url_for())


@aiohttp_jinja2.template("index.html")
async def index(request: web.Request) -> dict[str, Any]:
    """The browser test page."""
    settings = settings_of(request.app)
    runtime = request.app[RUNTIME]
    info = runtime.airflow
    assert info is not None
    api_path = str(request.app.router["api"].url_for())
    return {
        "apis": APIS,
        "airflow": info,
        "edition": page.edition(info),
        "settings": settings,
        "listen": page.base_url(settings),
        "bridge_version": bridge.__version__,
        "availability": {api.name: availability(api, settings, runtime) for api in APIS},
        "examples": {api.name: page.example(api, settings, api_path) for api in APIS},
        "api_url": api_path,
    }


def availability(api: Api, settings: Settings, runtime: Runtime) -> str | None:
    """None when the API can be called here, else why not."""
    if api.name in settings.disabled_apis:
        return f"the API '{api.name}' is disabled by the operator (disabled_apis)"
    info = runtime.airflow
    assert info is not None
    return api.availability(info.major, info.commands)


def _stream_mode(request: web.Request, raw: dict[str, list[str]]) -> execute.StreamMode | None:
    requested = (raw.get("stream") or [""])[0].strip().lower()
    if requested in ("", "false", "0", "no", "off"):
        if "application/x-ndjson" in request.headers.get("Accept", ""):
            return "ndjson"
        return None
    if requested not in STREAM_MODES:
        raise RequestError("stream must be true, text or ndjson (or false)")
    return STREAM_MODES[requested]


async def api(request: web.Request) -> web.StreamResponse:
    """``/admin/rest_api/api?api=NAME&ARG=VALUE...``: every seed API."""
    settings = settings_of(request.app)
    runtime = request.app[RUNTIME]
    if request.method not in ("GET", "POST"):
        raise RequestError(
            f"method {request.method} is not allowed; use GET or POST",
            405,
            headers={"Allow": "GET, POST"},
        )
    token = settings.rest_api_plugin_expected_http_token
    received = await forms.read(request, settings)
    try:
        raw = received.raw()
        base = envelope.start(
            mask_arguments(dict(received.query), token),
            mask_arguments(dict(received.form), token),
            envelope.now(),
        )
        request[STARTED_ENVELOPE] = base
        name = (raw.get("api") or [""])[0].strip().lower()
        if name not in BY_NAME:
            said = f"API '{name}' was not found" if name else "API should be provided"
            raise RequestError(f"{said}; valid names: {', '.join(NAMES)}")
        chosen = BY_NAME[name]
        if request.method not in chosen.methods:
            raise RequestError(
                f"{name} must be called with {' or '.join(chosen.methods)}",
                405,
                headers={"Allow": ", ".join(chosen.methods)},
            )
        why_not = availability(chosen, settings, runtime)
        if why_not:
            raise RequestError(why_not)
        return await _dispatch(request, chosen, raw, received, base)
    finally:
        received.discard()


async def _dispatch(
    request: web.Request,
    chosen: Api,
    raw: dict[str, list[str]],
    received: forms.RequestInput,
    base: dict[str, Any],
) -> web.StreamResponse:
    settings = settings_of(request.app)
    runtime = request.app[RUNTIME]
    info = runtime.airflow
    assert info is not None
    ctx = Context(info.major, settings.dags_folder, settings.allowed_paths)
    values = collect(chosen, raw, ctx)
    mode = _stream_mode(request, raw)
    want_json = _wants_json(raw)
    if chosen.name == "version":
        return envelope.respond(envelope.finish(base, http_code=200, output=info.version))
    if chosen.name == "rest_api_plugin_version":
        return envelope.respond(envelope.finish(base, http_code=200, output=bridge.__version__))
    if want_json:
        values["output"] = "json"
    env = settings.child_environment(os.environ)
    if not runtime.slots.try_acquire():
        raise_busy(settings)
    try:
        if chosen.name == "deploy_dag":
            staged, received.upload = received.upload, None
            try:
                return await dags.deploy(
                    settings, info, runtime.upload_locks, values, staged, env, base, runtime.warm
                )
            finally:
                if staged is not None:
                    staged.discard()  # a no-op once installed
        if chosen.name == "refresh_dag":
            return await dags.refresh(settings, info, values, env, base, runtime.warm)
        plan = plan_cli(chosen, values, ctx, want_json)
        if chosen.long_running and values.get("daemon"):
            mode = None  # the CLI forks and returns at once: a plain envelope says how it went
        with execute.exchange_file(plan) as exchange:
            argv = [exchange_path_for(part, exchange) for part in plan.argv]
            call = execute.Call(
                api=chosen,
                argv=[info.executable, *argv],
                env=env,
                peer=request.remote or "?",
                warnings=list(plan.warnings),
                json_output=plan.json_output,
                data_wanted=want_json,
                export_path=exchange if plan.export_file else None,
            )
            if mode is None:
                return await execute.buffered(call, settings, runtime, base)
            return await execute.streamed(request, call, settings, runtime, base, mode)
    finally:
        runtime.slots.release()


def exchange_path_for(part: str, exchange: Path | None) -> str:
    """The argv element, with the plan's placeholder replaced by the daemon's temp file."""
    if part != EXCHANGE_FILE:
        return part
    assert exchange is not None
    return str(exchange)


def raise_busy(settings: Settings) -> None:
    raise RequestError(
        f"{settings.max_concurrent_commands} commands are already running "
        "(max_concurrent_commands); retry shortly",
        status=429,
        headers={"Retry-After": "1"},
    )


def _wants_json(raw: dict[str, list[str]]) -> bool:
    requested = (raw.get("output") or [""])[0].strip().lower()
    if requested in ("", "table", "text"):
        return False
    if requested != "json":
        raise RequestError("output may only be 'json' (or left out for the CLI's table)")
    return True
