"""create_app(settings) -> web.Application: state, middlewares, the routes table and the
lifecycle. The factory does no I/O; startup work (tidying up after a killed daemon, the warm
helper, detecting Airflow) runs in the cleanup context before the port opens."""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

import bridge
from bridge.calls.follows import Follows
from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import CurrentSettings, Settings
from bridge.http import access_log, job_views, lifecycle, metrics, page, views
from bridge.http.bodies import BodyBudget
from bridge.http.forms import MAX_QUERY_STRING
from bridge.http.guards import auth, browsers
from bridge.http.guards.errors import error_middleware
from bridge.http.job_views import JOBS_PATH
from bridge.http.keys import (
    BODY_BUDGET,
    COMMANDS,
    FOLLOWS,
    JOBS,
    SETTINGS,
    UPLOAD_LOCKS,
    WEBHOOKS,
)
from bridge.http.webhook_sender import AiohttpSender
from bridge.jobs.board import Jobs
from bridge.jobs.shared.board import SharedJobs
from bridge.jobs.webhooks import Webhooks
from bridge.process.ledger import Ledger, folder_in
from bridge.process.path import CommandPath
from bridge.process.warm import WarmHelper

PREFIX = "/admin/rest_api"  # the seed plugin's URL space
API_PATH = f"{PREFIX}/api"


def resource_dir(name: str) -> Path:
    """templates/ or static/: the package's data (setup.py), on disk in a checkout (linked to
    the top-level folder) and in an install alike."""
    return Path(str(importlib.resources.files(bridge) / name))


def create_app(
    settings: Settings, airflow: AirflowInfo | None = None, warm: WarmHelper | None = None
) -> web.Application:
    """Build the application. ``airflow`` skips detection and ``warm`` brings a running warm
    helper that the app then does not own (tests share both across a session)."""
    app = web.Application(
        middlewares=[
            access_log.client_left_middleware,
            metrics.metrics_middleware,
            error_middleware,
            browsers.browser_middleware,
            auth.token_middleware,
        ],
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
    current = CurrentSettings(settings)
    app[SETTINGS] = current
    app[COMMANDS] = CommandPath(current, Ledger(folder_in(settings.airflow_home)))
    app[UPLOAD_LOCKS] = {}
    app[BODY_BUDGET] = BodyBudget()
    app[WEBHOOKS] = Webhooks(current, AiohttpSender())
    app[JOBS] = jobs_board(settings, app[WEBHOOKS].ended)
    app[FOLLOWS] = Follows(current)
    app[metrics.METRICS] = metrics.Metrics(app)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        autoescape=jinja2.select_autoescape(["html"]),
        # The templates ship with the package: loaded once (at startup, off the loop), never
        # looked at again for changes.
        auto_reload=False,
    )
    app.add_routes(
        [
            web.get("/health", views.health, name="health"),
            web.get("/metrics", metrics.metrics, name="metrics"),
            web.get(f"{PREFIX}/", page.index, name="index"),
            web.get(PREFIX, views.index_redirect, name="index_redirect"),
            web.route("*", API_PATH, views.api, name="api"),
            web.get(f"{PREFIX}/openapi.json", views.openapi_json, name="openapi"),
            web.get(JOBS_PATH, job_views.job_list, name="jobs"),
            web.get(f"{JOBS_PATH}/{{job_id}}", job_views.job_status, name="job"),
            web.delete(f"{JOBS_PATH}/{{job_id}}", job_views.job_cancel, name="job_cancel"),
            web.get(f"{JOBS_PATH}/{{job_id}}/output", job_views.job_output, name="job_output"),
            web.static(f"{PREFIX}/static", resource_dir("static"), name="static"),
        ]
    )
    app.cleanup_ctx.append(lifecycle.startup(airflow, warm))
    app.on_shutdown.append(lifecycle.stop_commands)
    return app


def jobs_board(settings: Settings, on_end: Callable[[dict[str, Any]], None]) -> Jobs:
    """Where jobs are kept: the jobs folder, or the database several bridges share."""
    if settings.jobs_database is None:
        return Jobs(settings.jobs_path, on_end=on_end)
    return SharedJobs(
        settings.jobs_database,
        settings.instance_name,
        settings.jobs_heartbeat,
        stop_wait=settings.kill_grace_period,
        on_end=on_end,
    )
