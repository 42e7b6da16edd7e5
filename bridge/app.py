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
from bridge import auth, views
from bridge.airflow_info import AirflowInfo, detect
from bridge.config import Settings
from bridge.forms import MAX_QUERY_STRING
from bridge.runner import CommandSlots
from bridge.state import RUNTIME, Runtime, settings_of

log = logging.getLogger(__name__)


def resource_dir(name: str) -> Path:
    """templates/ and static/: inside the installed package, or beside it in a checkout."""
    package = Path(bridge.__file__).parent
    installed = package / name
    return installed if installed.is_dir() else package.parent / name


def create_app(settings: Settings, airflow: AirflowInfo | None = None) -> web.Application:
    """Build the application. ``airflow`` skips detection (tests detect once per session)."""
    app = web.Application(
        middlewares=[views.error_middleware, auth.token_middleware],
        client_max_size=settings.max_upload_size + 1024 * 1024,
        # Long query strings get our own 414 envelope instead of the parser's bare 400.
        handler_args={"max_line_size": 2 * MAX_QUERY_STRING, "max_field_size": 16 * 1024},
    )
    app[RUNTIME] = Runtime(
        settings=settings, slots=CommandSlots(settings.max_concurrent_commands), airflow=airflow
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
            web.static("/admin/rest_api/static", resource_dir("static"), name="static"),
        ]
    )
    app.cleanup_ctx.append(_airflow_ctx)
    return app


async def _airflow_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    settings = settings_of(app)
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
    yield
    tasks = list(runtime.background)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
