"""The seed's JSON envelope, and the two streamed encodings (text and ndjson).

Buffered responses are the seed's object: ``airflow_cmd``, ``arguments``, ``post_arguments``,
``call_time``, ``output``, ``response_time``, ``status``, ``warning``, ``http_response_code``,
plus ``exit_code`` for CLI-backed APIs. Times are HTTP dates, as Flask's jsonify wrote them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

TEXT_RESULT_PREFIX = "airflow-rest-bridge-result: "
FORBIDDEN_OUTPUT = "Token Authentication Failed"


def now() -> datetime:
    return datetime.now(UTC)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def start(
    arguments: dict[str, str], post_arguments: dict[str, str], call_time: datetime
) -> dict[str, Any]:
    """The envelope as it stands when a request arrives."""
    return {
        "arguments": arguments,
        "post_arguments": post_arguments,
        "call_time": http_date(call_time),
        "_started": call_time,
    }


def finish(
    envelope: dict[str, Any],
    *,
    http_code: int,
    output: Any = None,
    airflow_cmd: str | None = None,
    warnings: list[str] | tuple[str, ...] = (),
    exit_code: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Complete the envelope: status follows the HTTP code, as in the seed."""
    started: datetime = envelope.pop("_started", now())
    finished = now()
    envelope.update(
        {
            "status": "OK" if http_code < 400 else "ERROR",
            "http_response_code": http_code,
            "response_time": http_date(finished),
            "duration_seconds": round((finished - started).total_seconds(), 3),
        }
    )
    if output is not None:
        envelope["output"] = output
    if airflow_cmd is not None:
        envelope["airflow_cmd"] = airflow_cmd
    if exit_code is not None:
        envelope["exit_code"] = exit_code
    if warnings:
        envelope["warning"] = "; ".join(warnings)
    if extra:
        envelope.update(extra)
    return envelope


def error(
    envelope: dict[str, Any], http_code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A 4xx/5xx envelope response with ``output`` saying what was wrong."""
    return respond(finish(envelope, http_code=http_code, output=message), headers=headers)


def respond(envelope: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        envelope, status=envelope["http_response_code"], headers=headers, dumps=dumps
    )


def forbidden() -> web.Response:
    """Exactly the seed's 403 body."""
    moment = now()
    body = {
        "call_time": http_date(moment),
        "http_response_code": 403,
        "output": FORBIDDEN_OUTPUT,
        "response_time": http_date(now()),
        "status": "ERROR",
    }
    return web.json_response(body, status=403, dumps=dumps)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def text_result_line(result: dict[str, Any]) -> bytes:
    """The last line of a text stream: a fixed prefix, then the envelope without output."""
    return (TEXT_RESULT_PREFIX + dumps(result) + "\n").encode()


def ndjson_line(event: dict[str, Any]) -> bytes:
    return (dumps(event) + "\n").encode()
