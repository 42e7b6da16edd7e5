"""The seed's JSON envelope as a dict: started when a request arrives, finished once.

``airflow_cmd``, ``arguments``, ``post_arguments``, ``call_time``, ``output``,
``response_time``, ``status``, ``warning``, ``http_response_code``, plus ``exit_code`` for
CLI-backed APIs. Times are HTTP dates, as Flask's jsonify wrote them. How it is sent is the
HTTP layer's (bridge.http.answers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

FORBIDDEN_OUTPUT = "Token Authentication Failed"  # the seed's 403 output, word for word


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


def unstarted(envelope: dict[str, Any]) -> dict[str, Any]:
    """A copy without the private start time (for an answer given while the call goes on)."""
    return {key: value for key, value in envelope.items() if key != "_started"}


def forbidden() -> dict[str, Any]:
    """Exactly the seed's 403 body."""
    return {
        "call_time": http_date(now()),
        "http_response_code": 403,
        "output": FORBIDDEN_OUTPUT,
        "response_time": http_date(now()),
        "status": "ERROR",
    }
