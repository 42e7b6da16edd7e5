"""The OpenAPI document: valid OpenAPI 3.1, every API of the catalogue in it, served without
the token and linked from the page, and true to the live daemon. Schemathesis fuzzes the real
app over HTTP from it: no 5xx, no response the document does not describe, no hang."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import markupsafe
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bridge import openapi
from bridge.calls.formats import TEXT_RESULT_PREFIX
from bridge.catalogue.installed import AirflowInfo
from bridge.catalogue.model import Api, Arg, ArgUse, Kind, Use
from bridge.catalogue.reference import api_markdown
from bridge.catalogue.table import APIS
from bridge.config.settings import Settings
from tests.helpers import (
    API,
    FAKE_AIRFLOW,
    ClientFactory,
    fuzzing_env,
    requests_served,
    schemathesis,
)

DOCUMENT = "/admin/rest_api/openapi.json"
HEADER, TOKEN = "rest_api_plugin_http_token", "fuzz-token"
EVERY_COMMAND = frozenset({"dags", "tasks", "scheduler", "celery", "kerberos"})
# Per operation (3 of them): the fuzzing phase's budget. The examples and coverage phases
# are bounded by the document itself (each value and boundary of each argument, once).
MAX_EXAMPLES = 60
SEED = os.environ.get("BRIDGE_SCHEMATHESIS_SEED", "20240102")  # another seed explores more


def info_for(major: int) -> AirflowInfo:
    return AirflowInfo(str(FAKE_AIRFLOW), f"{major}.1.0", major, EVERY_COMMAND)


def validator(doc: dict[str, Any], pointer: str) -> Draft202012Validator:
    """A JSON Schema validator for the schema at ``pointer`` in the document."""
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openapi", resource)
    return Draft202012Validator({"$ref": f"urn:openapi#{pointer}"}, registry=registry)


def escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def conforms(doc: dict[str, Any], method: str, status: int, body: Any) -> None:
    """``body`` is what the document promises for ``method`` and ``status`` (JSON)."""
    response = doc["paths"][API][method]["responses"][str(status)]
    pointer = response.get("$ref", f"#/paths/{escape(API)}/{method}/responses/{status}")
    validator(doc, f"{pointer.removeprefix('#')}/content/application~1json/schema").validate(body)


@pytest.mark.parametrize("major", [2, 3])
@pytest.mark.parametrize("token", [None, TOKEN])
def test_the_document_is_valid_openapi(major: int, token: str | None) -> None:
    doc = openapi.document(
        info_for(major), Settings(rest_api_plugin_expected_http_token=token), API, "/health"
    )
    validate(doc)
    assert doc["openapi"].startswith("3.")
    get = doc["paths"][API]["get"]
    # 403: a cross-site call always may be; the seed's token body only with a token.
    forbidden = get["responses"]["403"]["content"]["application/json"]["schema"]
    assert ("Forbidden" in json.dumps(forbidden)) == (token is not None)
    assert "421" in get["responses"]
    assert ("security" in get) == (token is not None)


def test_every_api_with_its_arguments_and_types() -> None:
    doc = openapi.document(info_for(3), Settings(), API, "/health")
    schemas = doc["components"]["schemas"]
    types = {Kind.BOOL: "boolean", Kind.INT: "integer"}
    for api in APIS:
        schema = schemas[api.name]
        assert schema["properties"]["api"] == {"const": api.name}
        assert set(schema["properties"]) == {"api", *(a.name for a in api.args)}
        assert schema["required"] == ["api", *(a.name for a in api.args if a.required)]
        for arg in api.args:
            documented = schema["properties"][arg.name]
            assert arg.description in documented["description"]
            if arg.kind in types:
                assert documented["type"] == types[arg.kind]
            else:
                variants = documented.get("anyOf", [documented])
                assert {v["type"] for v in variants} == {"string"}, arg
    get = doc["paths"][API]["get"]["parameters"][0]["schema"]["discriminator"]["mapping"]
    post = doc["paths"][API]["post"]["requestBody"]["content"]
    multipart = post["multipart/form-data"]["schema"]["discriminator"]["mapping"]
    assert set(get) == {api.name for api in APIS if "GET" in api.methods}
    assert set(multipart) == {api.name for api in APIS}
    assert "deploy_dag" not in get  # POST multipart only
    assert "Answers 400 here" in schemas["run"]["description"]  # tasks run left Airflow 3
    assert (
        "No equivalent on Airflow 3.x" in schemas["list_tasks"]["properties"]["tree"]["description"]
    )


def bridges_own(api: Api, arg: Arg) -> bool:
    """From the catalogue's facts: the bridge reads the argument itself (no CLI sees it)."""
    return api.internal or arg.for_bridge


@pytest.mark.parametrize("major", [2, 3])
def test_the_bridges_own_arguments_are_documented_as_its_own(major: int) -> None:
    """trigger_dag's wait and wait_timeout (and task_log's follow...) are the bridge's on
    every major, in the OpenAPI document and the reference alike, never a 400."""
    doc = openapi.document(info_for(major), Settings(), API, "/health")
    schemas = doc["components"]["schemas"]
    own = ArgUse(Use.BRIDGE).note(major)
    assert own is not None
    for api in APIS:
        for arg in api.args:
            described = schemas[api.name]["properties"][arg.name]["description"]
            assert (own in described) == bridges_own(api, arg), (api.name, arg.name, described)
            if bridges_own(api, arg):
                assert "400" not in described, (api.name, arg.name, described)
    for name in ("wait", "wait_timeout"):
        described = schemas["trigger_dag"]["properties"][name]["description"]
        assert own in described and "removed from the CLI" not in described
    reference = api_markdown(lambda api: "")
    trigger = reference[reference.index("### trigger_dag") : reference.index("### test")]
    for name in ("wait", "wait_timeout"):
        row = next(line for line in trigger.splitlines() if line.startswith(f"| `{name}` |"))
        assert row.endswith("| the bridge's own | the bridge's own |"), row


@pytest.mark.parametrize("major", [2, 3])
async def test_trigger_dag_waits_on_every_major_and_the_page_says_whose_wait_is(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    major: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    airflow = replace(fake_airflow_info, version=f"{major}.1.0", major=major)
    client = await make_fake_client(airflow)
    params = {"api": "trigger_dag", "dag_id": "fake_dag", "wait": "true", "wait_timeout": "30"}
    response = await client.get(API, params=params)
    body = await response.json()
    # The fake makes no run to follow (real runs followed to their end are
    # test_integration_runs.py's): what counts here is that nothing refused the arguments.
    assert response.status != 400, body
    ran = [json.loads(line) for line in record.read_text().splitlines()]
    assert ran and ran[0][:2] == ["dags", "trigger"], ran
    assert not [part for part in ran[0] if "wait" in part]  # the CLI never sees them
    page = await (await client.get("/admin/rest_api/")).text()
    section = page[page.index('id="api-trigger_dag"') : page.index('id="api-test"')]
    own = str(markupsafe.escape(ArgUse(Use.BRIDGE).note(major)))
    for name in ("wait", "wait_timeout"):
        label = section[section.index(f'for="trigger_dag-{name}"') :]
        assert own in label[: label.index("</label>")]


async def test_served_without_the_token_and_linked_from_the_page(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(rest_api_plugin_expected_http_token=TOKEN)
    response = await client.get(DOCUMENT)
    assert response.status == 200
    assert response.content_type == "application/json"
    doc = await response.json()
    await asyncio.to_thread(validate, doc)  # a second of CPU: not on the loop
    assert doc["components"]["securitySchemes"]["token"] == {
        "type": "apiKey",
        "in": "header",
        "name": HEADER,
    }
    assert TOKEN not in json.dumps(doc)
    page = await (await client.get("/admin/rest_api/")).text()
    assert f'href="{DOCUMENT}"' in page


async def test_the_daemon_answers_as_documented(make_fake_client: ClientFactory) -> None:
    """The shapes a fuzzer does not reach: 403, a failed command, a timeout, both streams."""
    # Only the hang may meet the timeout: a command that answers gets a limit no loaded
    # machine reaches, so a slow start of the fake is never taken for a hang.
    client = await make_fake_client(rest_api_plugin_expected_http_token=TOKEN)
    hanging = await make_fake_client(
        rest_api_plugin_expected_http_token=TOKEN, command_timeout=1.0, kill_grace_period=0.5
    )
    doc = await (await client.get(DOCUMENT)).json()
    call = {"api": "test", "dag_id": "openapi-doc", "execution_date": "2024-01-02"}

    async def answer(status: int, method: str = "GET", **params: str) -> Any:
        daemon = hanging if params.get("task_id") == "hang" else client
        response = await daemon.request(method, API, params=params, headers={HEADER: TOKEN})
        assert response.status == status, await response.text()
        if response.content_type == "application/json":
            return await response.json()
        return await response.text()

    forbidden = await client.get(API, params={"api": "version"})
    assert forbidden.status == 403
    conforms(doc, "get", 403, await forbidden.json())
    conforms(doc, "get", 200, await answer(200, api="version"))
    conforms(doc, "post", 200, await answer(200, "POST", api="rest_api_plugin_version"))
    conforms(doc, "get", 400, await answer(400, api="no_such_api"))
    conforms(doc, "get", 405, await answer(405, api="deploy_dag"))
    conforms(doc, "get", 500, await answer(500, **call, task_id="crash"))
    conforms(doc, "get", 504, await answer(504, **call, task_id="hang"))

    event = validator(doc, "/components/schemas/StreamEvent")
    lines = (await answer(200, **call, task_id="ok", stream="ndjson")).splitlines()
    assert len(lines) >= 2
    for line in lines:
        event.validate(json.loads(line))
    last = (await answer(200, **call, task_id="ok", stream="true")).splitlines()[-1]
    assert last.startswith(TEXT_RESULT_PREFIX)
    result = json.loads(last.removeprefix(TEXT_RESULT_PREFIX))
    validator(doc, "/components/schemas/StreamResult").validate(result)
    assert result["exit_code"] == 0


@pytest.fixture
def always_ok(tmp_path: Path) -> Path:
    """An ``airflow`` whose every command succeeds at once: under fuzzing a 5xx or a slow
    answer is then the bridge's own doing, and no argument can pick a fault that hangs (as
    tests/fake_airflow.py's modes do). A shell script, as a Python one costs a start each."""
    script = tmp_path / "always-ok-airflow"
    script.write_text('#!/bin/sh\nprintf "ran %s\\n" "$*"\n')
    script.chmod(0o755)
    return script


async def test_schemathesis_finds_nothing(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    always_ok: Path,
    tmp_path: Path,
) -> None:
    """Schemathesis against the live app (real HTTP): every phase it can run without state."""
    # Every command group is there. deploy_dag imports an upload with Airflow's Python first: the
    # tests' own has no Airflow, so a fuzzed upload is refused (400) and nothing lands.
    airflow = replace(
        fake_airflow_info,
        executable=str(always_ok),
        python=sys.executable,
        commands=EVERY_COMMAND,
    )
    client = await make_fake_client(
        airflow,
        rest_api_plugin_expected_http_token=TOKEN,
        command_timeout=10.0,
        kill_grace_period=0.5,
        # daemon=true starts no service with the stand-in: a documented 500 ("did not stay
        # up"), which the no-5xx check cannot tell apart. tests/test_services.py has them.
        disabled_apis=frozenset({"scheduler", "worker", "flower", "kerberos"}),
    )
    checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "ignored_auth",
        "unsupported_method",
        "allow_header_conformance",
    ]
    report = await schemathesis(
        str(client.make_url(DOCUMENT)),
        *("--phases", "examples,coverage,fuzzing", "--checks", ",".join(checks)),
        *("--max-examples", str(MAX_EXAMPLES), "--seed", SEED, "--workers", "1"),
        *("--header", f"{HEADER}: {TOKEN}", "--request-timeout", "120"),
        cwd=tmp_path,
        progress=lambda: requests_served(client.app),
        env=fuzzing_env(BRIDGE_FUZZ_WITHOUT_WAIT="1"),
    )
    assert "Coverage" in report and "Fuzzing" in report
