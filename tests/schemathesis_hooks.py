"""Schemathesis checks of the bridge's own, loaded with SCHEMATHESIS_HOOKS=tests.schemathesis_hooks
by the fuzzing run against the real Airflow (tests/test_integration_openapi.py)."""

from __future__ import annotations

from typing import Any

import schemathesis

INTERNAL_ERROR = "internal error; see the daemon log"


@schemathesis.check
def five_hundreds_are_the_clis(ctx: Any, response: Any, case: Any) -> bool | None:
    """Against the real CLI a fuzzed call may fail there (500 with the command's exit code, or
    a service that did not stay up) or run too long (504); any other 5xx is the bridge's."""
    if response.status_code < 500:
        return None
    body = response.json()
    if body.get("output") == INTERNAL_ERROR:
        raise AssertionError(f"the bridge failed: {case.as_curl_command()}")
    if response.status_code == 500 and not body.get("exit_code") and "service" not in body:
        raise AssertionError(f"a 500 without a failed command: {body}")
    if response.status_code not in (500, 504):
        raise AssertionError(f"unexpected {response.status_code}: {body}")
    return True
