"""The OpenAPI 3.1 document served at ``/admin/rest_api/openapi.json``, generated from the
catalogue (the HTTP view that serves it is :func:`bridge.http.views.openapi_json`).

How the one endpoint is modelled. Every call goes to one URL, ``/admin/rest_api/api``, and
the API is chosen by a value (``api=NAME``), not by the path. OpenAPI keys an operation by
path and method alone, and a path key may carry neither a query string nor a fragment, so
"one operation per API at that URL" cannot be written down; a path per API
(``/admin/rest_api/api/{name}``) would describe URLs the daemon does not serve. The document
therefore has exactly the operations the server has, GET and POST on that URL, and models
the choice of API the way JSON Schema models a tagged union: a call is one object, ``oneOf``
a schema per API (``components/schemas/<name>``) that fixes ``api`` with ``const`` and lists
that API's arguments, their types and which are required, with ``api`` as the discriminator.
For GET that object is a query parameter with ``style: form, explode: true``, OpenAPI's own
serialization of an object as ``api=NAME&ARG=VALUE&...``, which is the seed's query string;
for POST the same schemas describe the urlencoded and multipart bodies. Code generators get
one model per API, and a fuzzer generates well-formed calls of every API.

The document is a pure function of the catalogue, the detected Airflow (major version and
command groups, which decide what answers 400 here; its CLI's parser, whose commands the
operator allows by cli_commands are listed beside the seed's APIs), the settings and the
stream formats registered (bridge.calls.formats.FORMATS).

The parts, by what they describe: ``calls`` (a schema per API, the operation), ``answers``
(the envelope, the stream formats and their records, the status codes), ``jobs`` (detach and
the jobs endpoints), ``schema`` (what they are built from).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache

import bridge
from bridge.calls.formats import FORMATS, Format
from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import AirflowInfo
from bridge.catalogue.table import APIS
from bridge.config.settings import Settings
from bridge.openapi import answers, calls, jobs
from bridge.openapi.schema import Schema, json_content

OPENAPI_VERSION = "3.1.0"


def document(
    info: AirflowInfo,
    settings: Settings,
    api_path: str,
    health_path: str,
    formats: Sequence[Format] | None = None,
) -> Schema:
    """The OpenAPI document for this Airflow and these settings, the API served at
    ``api_path`` and the liveness check at ``health_path``, its streams in ``formats``
    (by default the formats registered now)."""
    formats = tuple(FORMATS.values()) if formats is None else formats
    installed = CliCommands.of(info.cli, info.major).answering(settings.cli_commands)
    apis = [*APIS, *installed]
    schemas = {api.name: calls.api_schema(api, info, settings) for api in apis}
    forbidden = answers.responses(settings, formats)["403"]
    components: Schema = {
        "schemas": {**schemas, **answers.schemas(), **jobs.schemas()},
        "responses": answers.shared_responses(),
    }
    if settings.auth_enabled:
        header = settings.rest_api_plugin_http_token_header_name
        components["securitySchemes"] = {
            "token": {"type": "apiKey", "in": "header", "name": header},
        }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "airflow-rest-bridge",
            "version": bridge.__version__,
            "description": f"The Airflow CLI over HTTP, here mapped onto Airflow {info.version} "
            "(the airflow-rest-api-plugin API). Every call goes to " + api_path + " with "
            "api=NAME; each API's arguments are in components/schemas/NAME.",
        },
        "paths": {
            api_path: {
                "get": calls.operation("get", settings, apis, formats),
                "post": calls.operation("post", settings, apis, formats),
            },
            health_path: {"get": _health()},
            **jobs.paths(forbidden, settings.auth_enabled, formats),
        },
        "components": components,
    }


def _health() -> Schema:
    """GET /health (its other fields describe the warm helper and may grow)."""
    body = {
        "type": "object",
        "required": ["status", "bridge_version", "airflow_version", "commands_running"],
        "properties": {
            "status": {"const": "OK"},
            "bridge_version": {"type": "string"},
            "airflow_version": {"type": ["string", "null"]},
            "commands_running": {"type": "integer", "minimum": 0},
        },
    }
    return {
        "operationId": "health",
        "summary": "Liveness, without the token",
        "responses": {"200": {"description": "Serving", "content": json_content(body)}},
    }


@lru_cache(maxsize=8)
def rendered(
    info: AirflowInfo,
    settings: Settings,
    api_path: str,
    health_path: str,
    formats: tuple[Format, ...],
) -> str:
    """The document as served; ``formats`` is in the key, so that a format registered at
    run time is listed."""
    return json.dumps(document(info, settings, api_path, health_path, formats), indent=1)
