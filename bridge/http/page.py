"""The browser test page: facts about this host and, for every API from the catalogue and
every command of the installed CLI the operator allows (grouped by the CLI's groups), its
form fields, help from the parser, a ready-to-copy example URL and curl command."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

import bridge
from bridge.catalogue.installed import AirflowInfo, availability
from bridge.catalogue.model import Api, Arg, Kind
from bridge.catalogue.table import APIS
from bridge.config.settings import Settings
from bridge.http.guards.proxies import client_of
from bridge.http.keys import airflow_of, cli_commands_of, settings_of

# Placeholder values for examples; required arguments only, so each example is complete.
_EXAMPLE_VALUES = {
    "dag_id": "bridge_demo",
    "task_id": "slow_lines",
    "execution_date": "2024-01-02T03:04:05",
    "principal": "airflow@EXAMPLE.COM",
}


@dataclass(frozen=True)
class Example:
    url: str
    curl: str


def base_url(settings: Settings) -> str:
    scheme = "https" if settings.tls_enabled else "http"
    host = settings.listen_host
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{settings.listen_port}"


def edition(info: AirflowInfo) -> str:
    celery = "with" if "celery" in info.commands else "without"
    return f"Airflow {info.major} CLI, {celery} the celery commands"


def _example_value(arg: Arg) -> str:
    if arg.kind is Kind.BOOL:
        return "true"
    return _EXAMPLE_VALUES.get(arg.name, f"<{arg.name}>")


def example(api: Api, settings: Settings, api_url: str) -> Example:
    """The example call of ``api``: its required arguments, streamed when it runs a CLI."""
    params = {"api": api.name}
    params.update({a.name: _example_value(a) for a in api.args if a.required and not a.is_upload})
    streams = api.handler.streams
    if streams:
        params["stream"] = "true"
    url = f"{api_url}?{urlencode(params)}"
    words = ["curl"]
    if streams:
        words.append("-N")  # print each line as it arrives
    if settings.auth_enabled:
        words += ["-H", f"{settings.rest_api_plugin_http_token_header_name}: $BRIDGE_TOKEN"]
    uploads = [arg.name for arg in api.args if arg.is_upload]
    if uploads:
        words += ["-X", "POST", *(w for name in uploads for w in ("-F", f"{name}=@my_dag.py"))]
    words.append(url)
    return Example(url=url, curl=" ".join(_quote(word) for word in words))


def _quote(word: str) -> str:
    # $BRIDGE_TOKEN stays expandable by the shell the operator pastes into.
    if "$BRIDGE_TOKEN" in word:
        return '"' + word + '"'
    return shlex.quote(word)


def arg_notes(api: Api, major: int) -> dict[str, str]:
    """Argument name -> what Airflow ``major`` does with it, for those not simply passed on
    (the bridge's own, ignored, refused)."""
    notes = {arg.name: api.use_of(arg, major).note(major) for arg in api.args}
    return {name: note for name, note in notes.items() if note}


PAGE_TEMPLATE = "index.html"


async def index(request: web.Request) -> web.Response:
    """The page: every API of the catalogue with its form, availability and example. No
    other site may frame it (a framed page's buttons are the operator's clicks)."""
    settings = settings_of(request.app)
    airflow = airflow_of(request.app)
    api_path = str(request.app.router["api"].url_for())
    # Where the operator reached the page (through a proxy, its public address), which is
    # where the examples must point.
    client = client_of(request)
    here = f"{client.scheme}://{client.host}" if client.host else None
    origin = here or base_url(settings)
    answering = cli_commands_of(request.app).answering(settings.cli_commands)
    shown = [*APIS, *answering]
    groups: dict[str, list[Api]] = {}
    for api in answering:  # grouped by the CLI's first word, as `airflow --help` does
        groups.setdefault(api.name.split(".", 1)[0], []).append(api)
    context = {
        "apis": APIS,
        "cli_groups": sorted(groups.items()),
        "airflow": airflow,
        "edition": edition(airflow),
        "settings": settings,
        "listen": base_url(settings),
        "origin": origin,
        "bridge_version": bridge.__version__,
        "availability": {
            api.name: availability(api, airflow, settings.disabled_apis) for api in shown
        },
        "examples": {api.name: example(api, settings, origin + api_path) for api in shown},
        # What this Airflow does with each argument, where it is not simply passed on: the
        # same words as the OpenAPI document's.
        "arg_notes": {api.name: arg_notes(api, airflow.major) for api in shown},
        "api_url": api_path,
        "jobs_url": str(request.app.router["jobs"].url_for()),
    }
    response = aiohttp_jinja2.render_template(PAGE_TEMPLATE, request, context)
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    response.headers["X-Frame-Options"] = "DENY"
    return response
