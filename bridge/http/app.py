"""create_app(settings) -> web.Application: state, middlewares, the routes table and the
lifecycle. The factory does no I/O; startup work (tidying up after a killed daemon, the warm
helper, detecting Airflow) runs in the cleanup context before the port opens."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

import bridge
from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import CurrentSettings, Settings
from bridge.http import auth, browsers, jobs, lifecycle, metrics, openapi, page, proxies, views
from bridge.http.forms import MAX_QUERY_STRING
from bridge.http.keys import COMMANDS, JOBS, SETTINGS, UPLOAD_LOCKS
from bridge.http.middleware import error_middleware
from bridge.jobs.board import Jobs
from bridge.process.ledger import Ledger, folder_in
from bridge.process.path import CommandPath
from bridge.process.warm import WarmHelper

PREFIX = "/admin/rest_api"  # the seed plugin's URL space
API_PATH = f"{PREFIX}/api"


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
        middlewares=[
            metrics.metrics_middleware,
            error_middleware,
            proxies.proxy_middleware,
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
    app[JOBS] = Jobs(settings.jobs_path)
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
            web.get(f"{PREFIX}/openapi.json", openapi.openapi_json, name="openapi"),
            web.get(jobs.JOBS_PATH, jobs.job_list, name="jobs"),
            web.get(f"{jobs.JOBS_PATH}/{{job_id}}", jobs.job_status, name="job"),
            web.delete(f"{jobs.JOBS_PATH}/{{job_id}}", jobs.job_cancel, name="job_cancel"),
            web.get(f"{jobs.JOBS_PATH}/{{job_id}}/output", jobs.job_output, name="job_output"),
            web.static(f"{PREFIX}/static", resource_dir("static"), name="static"),
        ]
    )
    app.cleanup_ctx.append(lifecycle.startup(airflow, warm))
    app.on_shutdown.append(lifecycle.stop_commands)
    return app
