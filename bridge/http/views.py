"""The API view and the small ones beside it. A call of the API reads as one straight line:

auth (middleware) -> read the arguments -> the catalogue finds and validates the API
-> the call captured -> its use case (bridge.calls) -> the answer in the chosen format
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

import bridge
from bridge import openapi
from bridge.calls import confined, envelope
from bridge.calls.apis import USE_CASES
from bridge.calls.call import NOBODY, Call, Caller
from bridge.calls.formats import FORMATS, Format, chosen_format
from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import availability
from bridge.catalogue.model import Api, Context, Handler
from bridge.catalogue.planning import collect
from bridge.catalogue.table import BY_NAME, NAMES
from bridge.config.parsers import parse_bool
from bridge.config.tokens import allows
from bridge.errors import RequestError
from bridge.http import answers, forms
from bridge.http.guards.auth import caller_of
from bridge.http.guards.proxies import client_of
from bridge.http.keys import (
    BODY_BUDGET,
    COMMANDS,
    INSTALLATION,
    STARTED_ENVELOPE,
    WARM_HELPER,
    airflow_of,
    daemon_of,
    settings_of,
)
from bridge.http.metrics import CALLED_API
from bridge.text.redact import mask_arguments

log = logging.getLogger(__name__)
METHODS = ("GET", "POST")


async def api(request: web.Request) -> web.StreamResponse:
    """``/admin/rest_api/api?api=NAME&ARG=VALUE...``: every API of the catalogue."""
    settings = settings_of(request.app)
    if request.method not in METHODS:
        raise RequestError(
            f"method {request.method} is not allowed; use GET or POST",
            405,
            headers={"Allow": ", ".join(METHODS)},
        )
    query = forms.read_query(request)
    caller = caller_of(request)
    installation = request.app[INSTALLATION]  # as it is now: the call keeps it
    installed = installation.commands
    # The scope (and method) of the API the query names, before any byte of the body.
    _may_call(request.method, query.get("api", ""), caller, installed)
    owner = caller.identity if caller is not NOBODY else None
    received = await forms.read(request, settings, query, request.app[BODY_BUDGET], owner)
    try:
        raw = received.raw()
        name = (raw.get("api") or [""])[0].strip().lower()
        # A seed API, or a command of the installed CLI by its dotted name; its arguments
        # are masked by its traits even when the operator does not allow it here.
        known = BY_NAME.get(name) or installed.apis.get(name)
        not_here = None
        if known is not None and name not in BY_NAME:
            not_here = installed.why_not(name, settings.cli_commands)
        chosen = known if not_here is None else None
        request[CALLED_API] = known.name if known is not None else "unknown"
        secrets = known.secrets if known is not None else {}
        token = settings.secret_values
        base = envelope.start(
            mask_arguments(dict(received.query), secrets, token),
            mask_arguments(dict(received.form), secrets, token),
            envelope.now(),
        )
        request[STARTED_ENVELOPE] = base
        if chosen is None:
            if name in installed.commands:
                raise RequestError(f"API '{name}' does not answer here: {not_here}")
            said = f"API '{name}' was not found" if name else "API should be provided"
            raise RequestError(
                f"{said}; valid names: {', '.join(NAMES)}, and the installed CLI's commands "
                "by their words joined by dots (dags.list-import-errors) where the operator "
                "allows them (cli_commands)"
            )
        _may_call(request.method, name, caller, installed)
        airflow = installation.airflow
        why_not = availability(chosen, airflow, settings.disabled_apis)
        if why_not:
            raise RequestError(why_not)
        context = Context(
            airflow.major,
            settings.dags_folder,
            settings.allowed_paths,
            airflow.cli,
            settings.cli_commands,
        )
        values = collect(chosen, raw, context)
        want_json = _wants_json(raw)
        if want_json:
            values["output"] = "json"
        fmt = chosen_format((raw.get("stream") or [""])[0], request.headers.get("Accept", ""), None)
        detach = _detach(chosen, raw, fmt)
        confined.check(chosen, values, caller, fmt is not None, detach, airflow.major)
        call = Call(
            chosen,
            values,
            context,
            settings,
            airflow,
            installed,
            daemon_of(request.app),
            caller,
            client_of(request).remote or "?",
            base,
            fmt.name if fmt is not None else None,
            want_json,
            received.upload,
            notes=_unknown_arguments(chosen, raw),
            detach=detach,
        )
        answer = await USE_CASES[chosen.handler](call)
        return await answers.respond(request, answer, fmt)
    finally:
        await received.discard()


def _may_call(method: str, name: str, caller: Caller, installed: CliCommands) -> None:
    """A 405 or 403 when the API ``name`` (if it is one) is not for this method or caller
    (its scope, or a DAG-confined token and an API no DAG confines)."""
    name = name.strip().lower()
    api = BY_NAME.get(name) or installed.apis.get(name)
    if api is None:
        return  # none: said once the body's arguments are read too
    if method not in api.methods:
        raise RequestError(
            f"{name} must be called with {' or '.join(api.methods)}",
            405,
            headers={"Allow": ", ".join(api.methods)},
        )
    confined.refuse_unconfinable(api, caller)
    if not allows(caller.scopes, api.scope):
        raise RequestError(
            f"{name} needs the '{api.scope.value}' scope; the token '{caller.name}' has "
            f"{', '.join(sorted(scope.value for scope in caller.scopes)) or 'none'}",
            403,
        )


def _unknown_arguments(api: Api, raw: dict[str, list[str]]) -> list[str]:
    """A seed API keeps accepting names it does not know (old scripts send extra keys), but
    says so: a caller sending trigger_dag&wait=true to a bridge without that feature must not
    believe the run finished."""
    known = {arg.name for arg in api.args} | set(forms.CONTROL_NAMES)
    unknown = sorted(name for name in raw if name not in known)
    if not unknown:
        return []
    if api.strict_arguments:
        raise RequestError(f"unknown argument(s) {unknown}: {api.name} takes {sorted(known)}")
    return [f"unknown argument(s) {unknown} were ignored; {api.name} takes {sorted(known)}"]


def _detach(api: Api, raw: dict[str, list[str]], fmt: Format | None) -> bool:
    """detach=true: a CLI-backed API answers 202 and runs on as a job."""
    requested = (raw.get("detach") or [""])[0]
    if not requested.strip():
        return False
    try:
        detach = parse_bool(requested)
    except ValueError as exc:
        raise RequestError(f"detach: {exc}") from None
    if detach and api.handler is not Handler.CLI:
        raise RequestError(f"detach=true is for APIs that run a CLI command; {api.name} does not")
    if detach and fmt is not None:
        raise RequestError(
            "give detach=true or stream, not both: a detached job's output streams from "
            "its Location + /output"
        )
    return detach


def _wants_json(raw: dict[str, list[str]]) -> bool:
    requested = (raw.get("output") or [""])[0].strip().lower()
    if requested in ("", "table", "text"):
        return False
    if requested != "json":
        raise RequestError("output may only be 'json' (or left out for the CLI's table)")
    return True


async def health(request: web.Request) -> web.Response:
    """Liveness, without auth: the daemon answers and knows its Airflow."""
    helper = request.app.get(WARM_HELPER)
    warm: dict[str, Any] = (
        helper.status().describe() if helper else {"state": "off", "reason": "warm_helper = false"}
    )
    return web.json_response(
        {
            "status": "OK",
            "bridge_version": bridge.__version__,
            "airflow_version": airflow_of(request.app).version,
            "commands_running": request.app[COMMANDS].busy,
            "warm_helper": warm,
        }
    )


async def index_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.app.router["index"].url_for())


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI document, without the token (like the test page it describes the calls)."""
    router = request.app.router
    text = openapi.rendered(
        airflow_of(request.app),
        settings_of(request.app),
        str(router["api"].url_for()),
        str(router["health"].url_for()),
        tuple(FORMATS.values()),
    )
    return web.Response(text=text, content_type="application/json")
