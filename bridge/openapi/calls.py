"""The calls in the OpenAPI document: a schema per API (its arguments, their types, which are
required, what this Airflow does with them), the tagged union of the calls a method can
make, and the operation (GET and POST on the one URL) with its control parameters."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.calls.formats import Format, stream_words
from bridge.catalogue.installed import AirflowInfo, availability
from bridge.catalogue.model import KIND_HELP, MAX_INT_DIGITS, MAX_VALUE_LENGTH, Api, Arg, Kind
from bridge.catalogue.values import ID_PATTERN, RUN_ID_PATTERN
from bridge.config.settings import Settings
from bridge.openapi import jobs
from bridge.openapi.answers import responses
from bridge.openapi.schema import Schema, ref

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


def api_schema(api: Api, info: AirflowInfo, settings: Settings) -> Schema:
    """components/schemas/NAME: one API's call, as this Airflow and these settings take it."""
    why_not = availability(api, info, settings.disabled_apis)
    description = api.description + f". Scope: {api.scope.value}"
    description += f". Answers 400 here: {why_not}" if why_not else ""
    properties: Schema = {"api": {"const": api.name}}
    for arg in api.args:
        properties[arg.name] = _arg_schema(arg, api.use_of(arg, info.major).note(info.major))
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


def _stream_choices(formats: Sequence[Format]) -> str:
    """``true (or text) or ndjson``: each format by its first word, its others in brackets."""
    named = [
        fmt.words[0] + (f" (or {', '.join(fmt.words[1:])})" if fmt.words[1:] else "")
        for fmt in formats
        if fmt.words
    ]
    *others, last = named
    return f"{', '.join(others)} or {last}" if others else last


def operation(
    method: str, settings: Settings, apis: list[Api], formats: Sequence[Format]
) -> Schema:
    """GET or POST on the API's URL: a call of any of ``apis``, answered as an envelope or a
    stream in one of ``formats``."""
    parameters: list[Schema] = [
        jobs.detach_parameter(),
        {
            "name": "stream",
            "in": "query",
            "description": f"Stream the output: {_stream_choices(formats)}; false buffers",
            "schema": {"enum": ["false", *stream_words(formats)]},
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
        "responses": {**responses(settings, formats), "202": jobs.detached_response()},
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
