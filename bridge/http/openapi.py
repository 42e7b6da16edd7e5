"""The OpenAPI 3.1 document at ``/admin/rest_api/openapi.json``, generated from the catalogue.

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
operator allows by cli_commands are listed beside the seed's APIs) and the settings.
"""

from __future__ import annotations

import json
from functools import lru_cache

from aiohttp import web

import bridge
from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.installed import AirflowInfo, availability
from bridge.catalogue.model import KIND_HELP, MAX_INT_DIGITS, MAX_VALUE_LENGTH, Api, Arg, Cli, Kind
from bridge.catalogue.table import APIS
from bridge.catalogue.values import ID_PATTERN, RUN_ID_PATTERN
from bridge.config.settings import Settings
from bridge.http import openapi_jobs
from bridge.http.keys import airflow_of, settings_of
from bridge.http.openapi_responses import (
    Schema,
    health,
    ref,
    responses,
    schemas,
    shared_responses,
)

OPENAPI_VERSION = "3.1.0"
MAX_INT = 10**MAX_INT_DIGITS - 1

_DATE: list[Schema] = [
    {"type": "string", "format": "date", "examples": ["2017-01-02"]},
    {"type": "string", "format": "date-time", "examples": ["2017-01-02T03:04:05"]},
]
# Airflow's key characters, and its default allowed_run_id_pattern; never a leading '-'.
_ID: Schema = {"type": "string", "pattern": ID_PATTERN}
_RUN_ID: Schema = {"type": "string", "pattern": RUN_ID_PATTERN}
_TEXT: Schema = {"type": "string", "maxLength": MAX_VALUE_LENGTH}
_KINDS: dict[Kind, Schema] = {
    Kind.TEXT: _TEXT,
    Kind.BOOL: {"type": "boolean"},
    Kind.ID: _ID,
    Kind.RUN_ID: _RUN_ID,
    Kind.DATE: {"anyOf": _DATE},
    Kind.DATE_OR_RUN: {"anyOf": [*_DATE, _RUN_ID]},
    Kind.JSON: {
        **_TEXT,
        "contentMediaType": "application/json",
        "contentSchema": {"type": "object"},
        "examples": ['{"key": 1}'],
    },
    Kind.INT: {"type": "integer", "minimum": 0, "maximum": MAX_INT},
    Kind.DAGS_PATH: {**_TEXT, "minLength": 1},
    Kind.SERVER_PATH: {**_TEXT, "minLength": 1},
    Kind.FILE: {
        "type": "string",
        "format": "binary",
        "contentMediaType": "application/octet-stream",
    },
    Kind.DOCUMENT: {"type": "string"},
}


def _arg_schema(arg: Arg, note: str | None) -> Schema:
    notes = [arg.description.rstrip("."), KIND_HELP[arg.kind].rstrip("."), note]
    schema: Schema = {**_KINDS[arg.kind], "description": ". ".join(n for n in notes if n)}
    if arg.choices is not None:
        schema = {"enum": list(arg.choices), "description": schema["description"]}
    return schema


def _arg_note(arg: Arg, mapping: object, major: int) -> str | None:
    """What Airflow ``major`` does with the argument, when that is not simply 'passed on'."""
    if not isinstance(mapping, Cli) or arg.name in (*mapping.options, *mapping.positionals):
        return None
    if arg.name in mapping.ignored:
        return f"Ignored on Airflow {major}.x (a warning says so): {mapping.ignored[arg.name]}"
    why = mapping.reasons.get(arg.name, "the option was removed from the CLI")
    return f"No equivalent on Airflow {major}.x, answers 400: {why}"


def _api_schema(api: Api, info: AirflowInfo, settings: Settings) -> Schema:
    mapping = api.by_major.get(info.major)
    why_not = availability(api, info, settings.disabled_apis)
    description = api.description + f". Scope: {api.scope.value}"
    description += f". Answers 400 here: {why_not}" if why_not else ""
    properties: Schema = {"api": {"const": api.name}}
    for arg in api.args:
        properties[arg.name] = _arg_schema(arg, _arg_note(arg, mapping, info.major))
    return {
        "title": api.name,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": ["api", *(a.name for a in api.args if a.required)],
        "additionalProperties": False,
        "x-scope": api.scope.value,  # what a named token needs to call it (tokens_file)
    }


def _calls(method: str, files: bool, apis: list[Api]) -> Schema:
    """The tagged union of the calls that ``method`` can make (with file uploads or not)."""
    names = [
        api.name
        for api in apis
        if method in api.methods and (files or all(a.kind is not Kind.FILE for a in api.args))
    ]
    return {
        "oneOf": [ref("schemas", name) for name in names],
        "discriminator": {
            "propertyName": "api",
            "mapping": {name: f"#/components/schemas/{name}" for name in names},
        },
    }


def _operation(method: str, settings: Settings, apis: list[Api]) -> Schema:
    parameters: list[Schema] = [
        openapi_jobs.detach_parameter(),
        {
            "name": "stream",
            "in": "query",
            "description": "Stream the output: true (or text) or ndjson; false buffers",
            "schema": {"enum": ["false", "true", "text", "ndjson"]},
        },
        {
            "name": "output",
            "in": "query",
            "description": "json: ask the CLI for JSON and return it parsed in 'data'",
            "schema": {"enum": ["json", "table"]},
        },
    ]
    operation: Schema = {
        "operationId": f"call_{method}",
        "summary": f"Call an API ({method.upper()})",
        "parameters": parameters,
        "responses": {**responses(settings), "202": openapi_jobs.detached_response()},
    }
    if method == "get":
        call = {
            "name": "call",
            "in": "query",
            "required": True,
            "description": "api=NAME and its arguments: one schema per API",
            "style": "form",
            "explode": True,
            "schema": _calls("GET", files=False, apis=apis),
        }
        operation["parameters"] = [call, *parameters]
    else:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": _calls("POST", files=False, apis=apis)
                },
                "multipart/form-data": {"schema": _calls("POST", files=True, apis=apis)},
            },
        }
    if settings.auth_enabled:
        operation["security"] = [{"token": []}]
    return operation


def document(info: AirflowInfo, settings: Settings, api_path: str, health_path: str) -> Schema:
    """The OpenAPI document for this Airflow and these settings, the API served at
    ``api_path`` and the liveness check at ``health_path``."""
    installed = CliCommands.of(info.cli, info.major).answering(settings.cli_commands)
    apis = [*APIS, *installed]
    calls = {api.name: _api_schema(api, info, settings) for api in apis}
    components: Schema = {
        "schemas": {**calls, **schemas(), **openapi_jobs.schemas()},
        "responses": shared_responses(),
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
                "get": _operation("get", settings, apis),
                "post": _operation("post", settings, apis),
            },
            health_path: {"get": health()},
            **openapi_jobs.paths(responses(settings)["403"], settings.auth_enabled),
        },
        "components": components,
    }


@lru_cache(maxsize=8)
def _rendered(info: AirflowInfo, settings: Settings, api_path: str, health_path: str) -> str:
    return json.dumps(document(info, settings, api_path, health_path), indent=1)


async def openapi_json(request: web.Request) -> web.Response:
    """The document, without the token (like the test page it describes the calls)."""
    router = request.app.router
    text = _rendered(
        airflow_of(request.app),
        settings_of(request.app),
        str(router["api"].url_for()),
        str(router["health"].url_for()),
    )
    return web.Response(text=text, content_type="application/json")
