"""Schemathesis against the real Airflow: every answer the OpenAPI document describes, and
every 5xx a failure of the CLI itself (its exit code), never of the bridge."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import ClientFactory, fuzzing_env, requests_served, schemathesis, warm_mode

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(not warm_mode(), reason="BRIDGE_TEST_WARM=0: the cold CLI run"),
]

DOCUMENT = "/admin/rest_api/openapi.json"
# Fuzzed calls reach real Airflow (a few hundred milliseconds each through the warm helper);
# this many per operation keep the run within two minutes.
MAX_EXAMPLES = 25
SEED = os.environ.get("BRIDGE_SCHEMATHESIS_SEED", "20261129")
# Services would hold a call until command_timeout; they are the service tests' business.
# refresh_all imports every DAG file twice a call (seconds): its own tests have it.
SERVICES = "kerberos, worker, flower, scheduler, refresh_all"


async def test_schemathesis_against_the_real_airflow(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(
        disabled_apis=frozenset(name.strip() for name in SERVICES.split(",")),
        command_timeout=60.0,
    )
    checks = [
        "five_hundreds_are_the_clis",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
    env = fuzzing_env()
    report = await schemathesis(
        str(client.make_url(DOCUMENT)),
        *("--phases", "fuzzing", "--checks", ",".join(checks)),
        *("--max-examples", str(MAX_EXAMPLES), "--seed", SEED, "--workers", "1"),
        *("--request-timeout", "120"),
        cwd=tmp_path,
        progress=lambda: requests_served(client.app),
        env=env,
    )
    assert "Fuzzing" in report
