"""Schemathesis checks of the bridge's own, loaded with SCHEMATHESIS_HOOKS=tests.schemathesis_hooks
by the fuzzing run against the real Airflow (tests/test_integration_openapi.py)."""

from __future__ import annotations

import os
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
    # A 500 after a command that succeeded: a service that did not stay up, or a run that
    # trigger_dag&wait=true followed to a failed end.
    followed = "service" in body or "dag_run" in body
    if response.status_code == 500 and not body.get("exit_code") and not followed:
        raise AssertionError(f"a 500 without a failed command: {body}")
    if response.status_code not in (500, 504):
        raise AssertionError(f"unexpected {response.status_code}: {body}")
    return True


def _bounded_wait(values: Any) -> Any:
    """trigger_dag&wait=true follows a run that nothing runs here (no scheduler): a fuzzed
    wait lasts one second, not command_timeout. Against the always-succeeding stand-in
    (BRIDGE_FUZZ_WITHOUT_WAIT), whose trigger reports no run to follow, there is none."""
    if isinstance(values, dict) and "wait" in values:
        values = {**values, "wait_timeout": "1"}
        if os.environ.get("BRIDGE_FUZZ_WITHOUT_WAIT"):
            values = {k: v for k, v in values.items() if k not in ("wait", "wait_timeout")}
    return values


@schemathesis.hook
def map_case(ctx: Any, case: Any) -> Any:
    case.query = _bounded_wait(case.query)
    case.body = _bounded_wait(case.body)
    return case
