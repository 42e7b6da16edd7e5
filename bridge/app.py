"""create_app(settings) -> web.Application. The factory does no I/O; startup work (detecting
Airflow) runs in ``cleanup_ctx``, before the port opens."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

import bridge
from bridge import auth, openapi, views
from bridge.airflow_info import AirflowInfo, detect, python_of
from bridge.config import Settings
from bridge.forms import MAX_QUERY_STRING
from bridge.leftovers import Ledger, folder_in
from bridge.runner import CommandSlots
from bridge.state import RUNTIME, Runtime, settings_of
from bridge.warm import HelperUnavailable, WarmHelper

log = logging.getLogger(__name__)


def resource_dir(name: str) -> Path:
    """templates/ and static/: inside the installed package, or beside it in a checkout."""
    package = Path(bridge.__file__).parent
    installed = package / name
    return installed if installed.is_dir() else package.parent / name


def create_app(
    settings: Settings, airflow: AirflowInfo | None = None, warm: WarmHelper | None = None
) -> web.Application:
    """Build the application. ``airflow`` skips detection and ``warm`` brings a running warm
    helper that the app then does not own (tests share both across a session)."""
    app = web.Application(
        middlewares=[views.error_middleware, auth.token_middleware],
        client_max_size=settings.max_upload_size + 1024 * 1024,
        # Long query strings get our own 414 envelope instead of the parser's bare 400.
        handler_args={
            "max_line_size": 2 * MAX_QUERY_STRING,
            "max_field_size": 16 * 1024,
            # A connection must have sent a whole request this long after it opened (or after
            # its previous answer); without it aiohttp keeps a client that never finishes its
            # headers for 3630 s. 75 s is web.run_app's default.
            "keepalive_timeout": 75.0,
        },
    )
    app[RUNTIME] = Runtime(
        settings=settings,
        slots=CommandSlots(settings.max_concurrent_commands),
        airflow=airflow,
        warm=warm,
        ledger=Ledger(folder_in(settings.airflow_home)),
    )
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    app.add_routes(
        [
            web.get("/health", views.health, name="health"),
            web.get("/admin/rest_api/", views.index, name="index"),
            web.get("/admin/rest_api", views.index_redirect, name="index_redirect"),
            web.route("*", "/admin/rest_api/api", views.api, name="api"),
            web.get("/admin/rest_api/openapi.json", openapi.openapi_json, name="openapi"),
            web.static("/admin/rest_api/static", resource_dir("static"), name="static"),
        ]
    )
    app.cleanup_ctx.append(_airflow_ctx)
    return app


async def _airflow_ctx(app: web.Application) -> AsyncIterator[None]:
    """Before the port opens: detect Airflow and, at the same time, warm up the helper (if it
    cannot start, commands run cold). After the last request: stop the helper we started."""
    runtime = app[RUNTIME]
    settings = settings_of(app)
    helper = _new_warm_helper(settings) if runtime.warm is None else None
    starting = asyncio.create_task(_start(helper)) if helper is not None else None
    try:
        if runtime.airflow is None:
            runtime.airflow = await detect(
                settings.airflow_executable,
                settings.child_environment(os.environ),
                python=settings.airflow_python,
            )
        info = runtime.airflow
        log.info("Airflow %s at %s", info.version, info.executable)
        if settings.log_loading:
            log.info("settings: %s", settings)  # the token is excluded from the repr
        if starting is not None:
            await starting
            runtime.warm = helper
        yield
        tasks = list(runtime.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if helper is not None:
            if starting is not None:
                await asyncio.gather(starting, return_exceptions=True)
            runtime.warm = None
            await asyncio.to_thread(helper.close)


def _new_warm_helper(settings: Settings) -> WarmHelper | None:
    if not settings.warm_helper:
        return None
    python = settings.airflow_python or python_of(settings.airflow_executable)
    if python is None:
        log.warning(
            "warm helper off: no Python interpreter found for %s (set airflow_python); "
            "commands run with the cold CLI",
            settings.airflow_executable,
        )
        return None
    return WarmHelper(python, settings.airflow_executable, settings.child_environment(os.environ))


async def _start(helper: WarmHelper) -> None:
    try:
        await asyncio.to_thread(helper.start)
    except HelperUnavailable as exc:
        log.error("%s; commands run with the cold CLI", exc)
