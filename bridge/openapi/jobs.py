"""The jobs in the OpenAPI document: ``detach=true``'s 202, and the jobs endpoints (list,
status, output from an offset in any stream format, cancel)."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.calls.formats import JOB_OUTPUT_FORMAT, Format, stream_words
from bridge.jobs.job import ENDED_STATES, RUNNING_STATES
from bridge.openapi.answers import records, stream_content
from bridge.openapi.schema import Schema, json_content, ref

_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "The id from the 202 (job_id, Location) or the list",
    "schema": {"type": "string"},
}


def detach_parameter() -> Schema:
    return {
        "name": "detach",
        "in": "query",
        "description": "true: answer 202 at once and run the command on as a job (CLI-backed "
        "APIs; not with stream)",
        "schema": {"enum": ["false", "true"]},
    }


def detached_response() -> Schema:
    return {
        "description": "detach=true: the job runs on; Location (and location) names it",
        "headers": {"Location": {"schema": {"type": "string"}}},
        "content": json_content(ref("schemas", "Detached")),
    }


def schemas() -> dict[str, Schema]:
    state = {"enum": [*RUNNING_STATES, *ENDED_STATES]}
    return {
        "Detached": {
            "allOf": [ref("schemas", "Success")],
            "required": ["job_id", "state", "location"],
            "properties": {
                "job_id": {"type": "string"},
                "state": state,
                "location": {"type": "string"},
            },
        },
        "Job": {
            "description": "A job's record: its call's envelope so far (the result envelope, "
            "without output, once it ended), its state and output size",
            "type": "object",
            "required": ["job_id", "state", "api", "output_size", "created_at"],
            "properties": {
                "job_id": {"type": "string"},
                "state": state,
                "api": {"type": "string"},
                "airflow_cmd": {"type": "string"},
                "pid": {"type": ["integer", "null"], "description": "Its session id"},
                "output_size": {"type": "integer", "minimum": 0},
                "output_cut": {"type": "boolean", "description": "Cut at job_output_limit"},
                "created_at": {"type": "number", "description": "Unix time"},
                "started_at": {"type": "number"},
                "ended_at": {"type": "number"},
                "exit_code": {"type": ["integer", "null"]},
                "status": {"enum": ["OK", "ERROR"]},
                "warning": {"type": "string"},
                "bridge": {
                    "type": "string",
                    "description": "jobs_database: the bridge that runs it (bridge_instance)",
                },
                "lost_by": {
                    "type": "string",
                    "description": "jobs_database: the bridge whose silence made it lost",
                },
            },
        },
    }


def _output_formats(formats: Sequence[Format]) -> str:
    """Each format's words and what it writes, for the output's ``stream`` parameter."""
    return "; ".join(
        " or ".join(fmt.words)
        + (" (the default)" if fmt.name == JOB_OUTPUT_FORMAT else "")
        + f": {records(fmt, of_a_job=True)}"
        for fmt in formats
    )


def paths(
    forbidden_response: Schema, auth_enabled: bool, formats: Sequence[Format]
) -> dict[str, Schema]:
    """The jobs endpoints under ``/admin/rest_api/jobs``; their 403 is the API's; their
    output streams in ``formats``."""
    rejected = ref("responses", "Rejected")
    forbidden = {"403": forbidden_response}
    job = json_content(ref("schemas", "Job"))
    security: Schema = {"security": [{"token": []}]} if auth_enabled else {}
    output_parameters = [
        _JOB_ID,
        {
            "name": "stream",
            "in": "query",
            "description": _output_formats(formats),
            "schema": {"enum": stream_words(formats)},
        },
        {
            "name": "offset",
            "in": "query",
            "description": "Start at this byte of the output (what a follower already read)",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
    ]
    return {
        "/admin/rest_api/jobs": {
            "get": {
                "operationId": "jobs",
                "summary": "Every job kept, newest first",
                **security,
                "responses": {
                    "200": {
                        "description": "The jobs",
                        "content": json_content(
                            {
                                "type": "object",
                                "required": ["jobs"],
                                "properties": {
                                    "jobs": {"type": "array", "items": ref("schemas", "Job")}
                                },
                            }
                        ),
                    },
                    **forbidden,
                },
            }
        },
        "/admin/rest_api/jobs/{job_id}": {
            "get": {
                "operationId": "job",
                "summary": "A job's state and record",
                "parameters": [_JOB_ID],
                **security,
                "responses": {
                    "200": {"description": "The job", "content": job},
                    "404": {**rejected, "description": "No such job"},
                    **forbidden,
                },
            },
            "delete": {
                "operationId": "cancel_job",
                "summary": "Stop a running job (TERM, the grace period, KILL): cancelled",
                "parameters": [_JOB_ID],
                **security,
                "responses": {
                    "200": {"description": "The job, cancelled", "content": job},
                    "404": {**rejected, "description": "No such job"},
                    "409": {**rejected, "description": "The job already ended"},
                    **forbidden,
                },
            },
        },
        "/admin/rest_api/jobs/{job_id}/output": {
            "get": {
                "operationId": "job_output",
                "summary": "The output from a byte offset, live until the job ends, then the job",
                "parameters": output_parameters,
                **security,
                "responses": {
                    "200": {
                        "description": "A stream, as a streamed call answers",
                        "headers": {"X-Job-Id": {"schema": {"type": "string"}}},
                        "content": stream_content(formats),
                    },
                    "400": {**rejected, "description": "stream or offset is not one it takes"},
                    "404": {**rejected, "description": "No such job"},
                    "429": {
                        "description": "max_follows follows are open, or the token holds its "
                        "share of them (token_share): retry",
                        "headers": {"Retry-After": {"schema": {"type": "string"}}},
                        "content": json_content(ref("schemas", "Rejected")),
                    },
                    **forbidden,
                },
            }
        },
    }
