"""The answers in the OpenAPI document: the seed's envelope (buffered) and its variants, the
stream formats and their records, the 403 body, the error envelopes, and the status codes of
a call.

Buffered answers are the envelope (bridge/calls/envelope.py) whose ``status`` follows the HTTP
code. Streams are every format of bridge.calls.formats.FORMATS: their words, ``Accept`` types,
media types and records in words come from there (OpenAPI 3.1 has no schema for the lines of
a stream).
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.calls.envelope import FORBIDDEN_OUTPUT
from bridge.calls.formats import FORMATS, Format
from bridge.config.settings import Settings
from bridge.openapi.schema import Schema, json_content, ref

_NDJSON = FORMATS["ndjson"].media_type  # StreamEvent's records


def stream_content(formats: Sequence[Format]) -> Schema:
    """A stream's content map: one entry per format's media type."""
    return {fmt.media_type: {"schema": {"type": "string"}} for fmt in formats}


def records(fmt: Format, *, of_a_job: bool = False) -> str:
    """What ``fmt``'s records are, in a call's answer or in a job's output."""
    described = fmt.job_records if of_a_job else fmt.records
    return described or f"a {fmt.media_type} stream"


def _streams(formats: Sequence[Format]) -> str:
    """How each format is chosen and what it writes, for a call's 200."""
    described = []
    for fmt in formats:
        chosen = [f"stream={' or '.join(fmt.words)}"] if fmt.words else []
        chosen += [f"Accept: {fmt.accept}"] if fmt.accept else []
        described.append(f"{' or '.join(chosen)}: {records(fmt)}")
    return "; ".join(described)


def schemas() -> dict[str, Schema]:
    """components/schemas of the answers: the envelope and its variants, the stream records."""
    arguments = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "Envelope": {
            "description": "The seed plugin's JSON envelope",
            "type": "object",
            "required": [
                *("arguments", "post_arguments", "call_time", "response_time"),
                *("duration_seconds", "status", "http_response_code"),
            ],
            "properties": {
                "airflow_cmd": {"type": "string", "description": "The command as run"},
                "arguments": {**arguments, "description": "The query string (secrets masked)"},
                "post_arguments": {**arguments, "description": "The form body (masked)"},
                "call_time": {"type": "string", "description": "HTTP date"},
                "response_time": {"type": "string", "description": "HTTP date"},
                "duration_seconds": {"type": "number", "minimum": 0},
                "output": {
                    "anyOf": [
                        {"type": "string"},
                        ref("schemas", "CliOutput"),
                        {
                            "type": "object",
                            "description": "deploy_dag, delete_dag: file, dag_ids, backup",
                        },
                    ]
                },
                "status": {"enum": ["OK", "ERROR"]},
                "warning": {"type": "string"},
                "http_response_code": {"type": "integer"},
                "exit_code": {"type": "integer", "description": "CLI-backed APIs"},
                "data": {"description": "output=json, export: the CLI's parsed JSON output"},
                "dag_run": {"type": "object", "description": "trigger_dag: the run created"},
                "deploy": {
                    "type": "object",
                    "description": "deploy_dag, delete_dag: where the file went: target (folder "
                    "or git), path, and for git the commit and branch",
                },
                "run_states": {
                    "type": "array",
                    "description": "trigger_dag&wait=true: each state seen, with its Unix time",
                },
                "failed_tasks": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "trigger_dag&wait=true, a run that did not succeed",
                },
                "is_paused": {
                    "type": "boolean",
                    "description": "pause, unpause: the state the call left the DAG in",
                },
                "service": {
                    "type": "object",
                    "description": "a service started with daemon=true: its pid and files",
                },
                "dags": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "refresh_all: the DAGs in the dags folder after it",
                },
                "import_errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "filepath": {"type": "string"},
                            "error": {"type": "string"},
                        },
                    },
                    "description": "refresh_all: each file that does not import, and why",
                },
                "ended_test_runs": {
                    "type": "array",
                    "description": "a test the bridge had to kill: the DAG runs it left, "
                    "marked failed (dag_id, run_id, was, failed_tasks)",
                },
            },
        },
        "CliOutput": {
            "type": "object",
            "required": ["stdout", "stderr"],
            "properties": {"stdout": {"type": "string"}, "stderr": {"type": "string"}},
        },
        "Success": {"allOf": [ref("schemas", "Envelope")], "properties": _status("OK")},
        "Failure": {"allOf": [ref("schemas", "Envelope")], "properties": _status("ERROR")},
        "Rejected": {
            "description": "A request refused before anything ran: output says why",
            "allOf": [ref("schemas", "Failure")],
            "required": ["output"],
            "properties": {"output": {"type": "string"}},
        },
        "StreamOutput": {
            "type": "object",
            "required": ["event", "stream", "text"],
            "properties": {
                "event": {"const": "output"},
                "stream": {"enum": ["stdout", "stderr"]},
                "text": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "StreamResult": {
            "description": "A stream's last record: the envelope without output",
            "allOf": [ref("schemas", "Envelope")],
            "required": ["airflow_cmd", "exit_code"],
            "not": {"required": ["output"]},
        },
        "StreamJob": {
            "description": "The first line of a stream: its job, which a client whose "
            "connection dropped reattaches to (GET location + /output?offset=N)",
            "type": "object",
            "required": ["event", "job_id", "location"],
            "properties": {
                "event": {"const": "job"},
                "job_id": {"type": "string"},
                "location": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "StreamEvent": {
            "description": f"One line of an {_NDJSON} stream",
            "oneOf": [
                ref("schemas", "StreamJob"),
                ref("schemas", "StreamOutput"),
                {
                    "allOf": [ref("schemas", "StreamResult")],
                    "required": ["event"],
                    "properties": {"event": {"const": "result"}},
                },
            ],
        },
        "Forbidden": {
            "description": "Exactly the seed plugin's 403 body",
            "type": "object",
            "required": ["call_time", "http_response_code", "output", "response_time", "status"],
            "properties": {
                "call_time": {"type": "string"},
                "http_response_code": {"const": 403},
                "output": {"const": FORBIDDEN_OUTPUT},
                "response_time": {"type": "string"},
                "status": {"const": "ERROR"},
            },
            "additionalProperties": False,
        },
    }


def _status(status: str) -> Schema:
    return {"status": {"const": status}}


def responses(settings: Settings, formats: Sequence[Format]) -> dict[str, Schema]:
    """Every status a call can answer with, for these settings and stream formats."""
    rejected = ref("responses", "Rejected")
    answers: dict[str, Schema] = {
        "200": {
            "description": f"Done: the envelope, or a stream ({_streams(formats)}). Once a "
            "stream has started, a failure is in its result, not in the status.",
            "headers": {
                "Server-Timing": {
                    "description": 'CLI-backed calls: cli;dur=<ms>;desc="warm"|"cold"',
                    "schema": {"type": "string"},
                }
            },
            "content": {
                **json_content(ref("schemas", "Success")),
                **stream_content(formats),
            },
        },
        "400": {
            "description": "Invalid call, or an API this Airflow cannot run: output says why "
            "(text/plain only when the HTTP parser itself refuses the request)",
            "content": {
                **json_content(ref("schemas", "Rejected")),
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        "404": {**rejected, "description": "refresh_dag: the DAG does not exist"},
        "405": {**rejected, "description": "Method not allowed for this API"},
        "408": {**rejected, "description": "The request body stopped arriving"},
        "413": {**rejected, "description": f"Body over {settings.max_upload_size} bytes"},
        "414": {**rejected, "description": "Query string too long"},
        "415": {**rejected, "description": "Body neither urlencoded nor multipart"},
        "421": {
            **rejected,
            "description": "The Host names neither an IP address, localhost nor a name in "
            "allowed_hosts",
        },
        "429": {
            "description": f"{settings.max_concurrent_commands} commands run and "
            f"{settings.max_waiting_calls} calls wait already, {settings.max_follows} follows "
            f"are open (wait=true, follow=true), or the token holds its share of them "
            f"(token_share {settings.token_share:g}): retry",
            "headers": {"Retry-After": {"schema": {"type": "string"}}},
            "content": json_content(ref("schemas", "Rejected")),
        },
        "503": {
            "description": f"No slot within {settings.slot_wait_timeout:g} s (or the daemon is "
            "stopping): nothing ran, retry",
            "headers": {"Retry-After": {"schema": {"type": "string"}}},
            "content": json_content(ref("schemas", "Rejected")),
        },
        "500": {
            "description": "The command exited non-zero (exit_code, output), or the bridge failed",
            "content": json_content(ref("schemas", "Failure")),
        },
        "504": {
            "description": f"The command ran past {settings.command_timeout:g} s and was stopped",
            "content": json_content(ref("schemas", "Failure")),
        },
    }
    forbidden: list[Schema] = [ref("schemas", "Rejected")]
    if settings.auth_enabled:
        forbidden.insert(0, ref("schemas", "Forbidden"))
    answers["403"] = {
        "description": "A cross-site call without a valid token (output says so)"
        + (
            ", a missing or wrong token (the seed's body), or a named token without the API's "
            "scope (x-scope; output names it)"
            if settings.auth_enabled
            else ""
        ),
        "content": json_content(forbidden[0] if len(forbidden) == 1 else {"oneOf": forbidden}),
    }
    return answers


def shared_responses() -> dict[str, Schema]:
    """components/responses."""
    return {
        "Rejected": {
            "description": "Refused before anything ran",
            "content": json_content(ref("schemas", "Rejected")),
        }
    }
