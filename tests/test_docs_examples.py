"""The guides' curl examples, sent to the daemon, so that a guide cannot drift from what the
daemon answers (issue 26, item 13). Every ``curl`` in the shell blocks of README.md and
docs/*.md (docs/reference/ is generated from the catalogue) is read with its method, URL,
headers and form fields, and sent, its token replaced by the test's:

- in the unit suite, to the real app driving the fake airflow (tests/fake_airflow.py), which
  runs no Airflow: an example must be accepted, that is answered 2xx, or 5xx (the fake's
  command failed), or 409 (a job that already ended), or refused only after a command ran
  (Airflow's data, such as an unknown run, is the fake's, not the guide's), never refused for
  its API, an argument or its shape; a seed API must not warn of arguments it ignored. Where
  the guide shows the status right after the example and it is not 200 (a 202, a 4xx), it
  must be that status. Where it shows a stream's result record, the daemon's has the same
  fields (but for those an outcome adds, such as ``warning``), and an ndjson answer the same
  kinds of events.
- an example that names a command of the installed CLI by its dotted name is for the real
  parser: the integration test at the end sends it to the real app against the Airflow
  named by BRIDGE_TEST_AIRFLOW (the guides are written for Airflow 3).
"""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from yarl import URL

from bridge.calls.formats import TEXT_RESULT_PREFIX
from bridge.catalogue.installed import AirflowInfo
from bridge.catalogue.installed_cli import InstalledCli, TaskLogSettings
from tests.helpers import DAG_SOURCE, ClientFactory, warm_mode

ROOT = Path(__file__).parents[1]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = ("sh", "bash", "shell")
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.M | re.S)
HEADING = re.compile(r"^#{1,6} ", re.M)
TOKEN = "the-docs-examples-token"
TOKEN_HEADER = "rest_api_plugin_http_token"  # the default header name the guides use
# The files the examples upload, by the name they give.
FILES = {
    "hello_dag.py": DAG_SOURCE.format(dag_id="hello_dag", task_id="hello"),
    "variables.json": json.dumps({"my_key": "hello world"}),
}
# Result fields that depend on how the command ended, which the fake does not imitate.
OUTCOME_FIELDS = {"warning", "data", "dag_run", "is_paused", "failed_tasks", "run_states"}


@dataclass(frozen=True)
class Example:
    """One curl command of a guide, and the answer the guide shows right after it (the next
    fenced block that is no shell block, before the next heading), if any."""

    where: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, str], ...]  # -F NAME=VALUE (or NAME=@FILE)
    data: tuple[str, ...]  # -d
    shown: str | None

    @property
    def api(self) -> str:
        return parse_qs(urlsplit(self.url).query).get("api", [""])[0]

    @property
    def dotted(self) -> bool:
        """It names a command of the installed CLI by its dotted name."""
        return "." in self.api


def curl(where: str, command: str, shown: str | None) -> Example:
    """A curl command line as an Example; an option this reader does not know fails."""
    words = shlex.split(command, comments=True)
    assert words[0] == "curl", command
    method, url = "", ""
    headers: list[tuple[str, str]] = []
    fields: list[tuple[str, str]] = []
    data: list[str] = []
    taking = iter(words[1:])
    for word in taking:
        if word in ("-N", "-i", "-s", "-S", "-sS"):
            continue
        if word == "-X":
            method = next(taking)
        elif word == "-H":
            name, _, value = next(taking).partition(":")
            headers.append((name.strip(), value.strip()))
        elif word == "-F":
            name, _, value = next(taking).partition("=")
            fields.append((name, value))
        elif word == "-d":
            data.append(next(taking))
        elif not word.startswith("-") and not url:
            url = word
        else:
            raise AssertionError(f"{where}: teach this test curl's {word!r}: {command}")
    method = method or ("POST" if fields or data else "GET")
    return Example(where, method, url, tuple(headers), tuple(fields), tuple(data), shown)


def examples_of(page: Path) -> Iterator[Example]:
    text = page.read_text(encoding="utf-8")
    found = list(FENCE.finditer(text))
    for index, block in enumerate(found):
        if block[2] not in SHELL:
            continue
        commands = []
        pending = ""
        for line in textwrap.dedent(block[3]).splitlines():
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = pending + line, ""
            if line.lstrip().startswith("curl "):
                commands.append(line.strip())
        shown = None
        if index + 1 < len(found):
            after = found[index + 1]
            between = text[block.end() : after.start()]
            if after[2] not in SHELL and not HEADING.search(between):
                shown = textwrap.dedent(after[3])
        line_number = text.count("\n", 0, block.start()) + 1
        for number, command in enumerate(commands, 1):
            last = number == len(commands)
            yield curl(f"{page.name}:{line_number}", command, shown if last else None)


EXAMPLES = [example for page in GUIDES for example in examples_of(page)]


def blocks_of(examples: list[Example]) -> dict[str, list[Example]]:
    """The examples by the block they are in: an example may name the job one before it made."""
    by_block: dict[str, list[Example]] = {}
    for example in examples:
        by_block.setdefault(example.where, []).append(example)
    return by_block


UNIT_BLOCKS = blocks_of([e for e in EXAMPLES if not e.dotted])


def loads(text: str) -> Any:
    """JSON as a guide shows it, with `{...}` and `...` for what it leaves out."""
    text = text.replace("{...}", "{}").replace("[...]", "[]")
    text = re.sub(r"(?<=[:\[,] )\.\.\.(?=[,}\]])", "null", text)
    text = re.sub(r", \.\.\.(?=[,}\]])", "", text)
    return json.loads(text)


def shown_status(shown: str) -> int | None:
    """The HTTP status the guide shows: a status line, else the envelope's code."""
    line = re.search(r"^HTTP/1\.1 (\d{3})", shown, re.M)
    if line:
        return int(line[1])
    if shown.lstrip().startswith(("{", "[")) and TEXT_RESULT_PREFIX not in shown:
        code = re.search(r'"http_response_code": (\d{3})', shown)
        return int(code[1]) if code else None
    return None


def result_of(body: str) -> dict[str, Any] | None:
    """A stream's result record (text or ndjson), or a buffered envelope; None otherwise."""
    lines = body.splitlines()
    if lines and lines[-1].startswith(TEXT_RESULT_PREFIX):
        record: dict[str, Any] = json.loads(lines[-1].removeprefix(TEXT_RESULT_PREFIX))
        return record
    try:
        last = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return last if isinstance(last, dict) else None


def events_of(body: str) -> list[dict[str, Any]]:
    """An ndjson answer's events (none for any other answer)."""
    try:
        events = [json.loads(line) for line in body.splitlines() if line]
    except ValueError:
        return []
    return [e for e in events if isinstance(e, dict) and "event" in e]


def compare_shown(example: Example, body: str) -> None:
    """The stream result the guide shows has the daemon's fields, its ndjson the same kinds."""
    assert example.shown is not None
    shown_lines = [line for line in example.shown.splitlines() if line.strip() != "..."]
    actual = result_of(body)
    shown_result = next((ln for ln in shown_lines if ln.startswith(TEXT_RESULT_PREFIX)), None)
    if shown_result is not None and body.rstrip().splitlines()[-1].startswith(TEXT_RESULT_PREFIX):
        assert actual is not None
        shown = loads(shown_result.removeprefix(TEXT_RESULT_PREFIX))
        differ = set(shown) ^ set(actual)
        assert differ <= OUTCOME_FIELDS, f"{example.where}: the result line differs in {differ}"
    shown_events = [loads(ln) for ln in shown_lines if ln.startswith('{"event": ')]
    actual_events = events_of(body)
    if shown_events and actual_events:
        kinds = {e["event"] for e in shown_events}
        assert kinds == {e["event"] for e in actual_events}, example.where
        shown, actual = shown_events[-1], actual_events[-1]
        differ = set(shown) ^ set(actual)
        assert differ <= OUTCOME_FIELDS, f"{example.where}: the result event differs in {differ}"


async def send(client: TestClient[Any, Any], example: Example, job_id: str) -> tuple[int, str, str]:
    """Send an example as curl would (the token replaced); (status, body, its job's id)."""
    url = example.url.replace("<job_id>", job_id)
    assert "<" not in url, f"{example.where}: a placeholder this test cannot fill: {url}"
    target = urlsplit(url)
    path = URL(target.path + (f"?{target.query}" if target.query else ""), encoded=True)
    headers = {name: TOKEN if name == TOKEN_HEADER else value for name, value in example.headers}
    if not any("token" in name.lower() for name in headers):  # the guides leave it out
        headers[TOKEN_HEADER] = TOKEN
    body: Any = None
    if example.fields:
        body = FormData()
        for name, value in example.fields:
            if value.startswith("@"):
                body.add_field(name, FILES[value[1:]].encode(), filename=value[1:])
            else:
                body.add_field(name, value)
    elif example.data:
        body = "&".join(example.data)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = await client.request(example.method, path, headers=headers, data=body)
    text = await response.text()
    made = response.headers.get("X-Job-Id", "")
    if not made and text.startswith("{"):
        made = str(json.loads(text).get("job_id", ""))
    return response.status, text, made or job_id


def refused(example: Example, status: int, body: str, ran: bool) -> str | None:
    """Why the daemon did not take the example as the guide means it, or None."""
    result = result_of(body) or {}
    if "unknown argument" in str(result.get("warning", "")):
        return f"arguments were ignored: {result['warning']}"
    if result.get("output") == "internal error; see the daemon log":
        return "an internal error"
    expected = shown_status(example.shown) if example.shown else None
    if expected is not None and expected != 200:
        return None if status == expected else f"answered {status}, the guide shows {expected}"
    if status < 400 or status >= 500 or status == 409 or ran:
        return None
    return f"refused with {status}: {result.get('output', body[:300])}"


def test_the_guides_have_examples_of_every_kind() -> None:
    """The reader finds them (a guide that changes its layout would otherwise check nothing)."""
    pages = {e.where.split(":")[0] for e in EXAMPLES}
    assert {"README.md", "api.md", "install.md", "airflow3.md"} <= pages
    assert {e.method for e in EXAMPLES} == {"GET", "POST", "DELETE"}
    assert any(e.shown and TEXT_RESULT_PREFIX in e.shown for e in EXAMPLES)
    assert any(e.shown and '{"event": "result"' in e.shown for e in EXAMPLES)
    assert any(e.dotted for e in EXAMPLES)


@pytest.mark.parametrize("where", sorted(UNIT_BLOCKS))
async def test_an_example_is_accepted_by_the_daemon(
    where: str,
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = tmp_path / "ran.jsonl"
    record.touch()
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    # task_log needs to know where logs are; the fake's runs have none.
    template = "{dag_id}/{run_id}/{task_id}/{try_number}.log"
    logs = TaskLogSettings(str(tmp_path / "logs"), template, False, "")
    airflow = replace(fake_airflow_info, cli=InstalledCli("3.3.2", {}, task_logs=logs))
    client = await make_fake_client(
        airflow, rest_api_plugin_expected_http_token=TOKEN, command_timeout=60.0
    )
    job_id = ""
    for example in UNIT_BLOCKS[where]:
        before = len(record.read_text().splitlines())
        status, body, job_id = await send(client, example, job_id)
        ran = len(record.read_text().splitlines()) > before
        why = refused(example, status, body, ran)
        assert why is None, f"{example.where}: {example.method} {example.url}: {why}"
        if example.shown:
            compare_shown(example, body)


DOTTED = [e for e in EXAMPLES if e.dotted]


@pytest.mark.airflow
@pytest.mark.skipif(not warm_mode(), reason="no command start is tested: the warm pass runs it")
@pytest.mark.parametrize("example", DOTTED, ids=[f"{e.where}:{e.api}" for e in DOTTED])
async def test_a_dotted_example_names_a_command_of_the_installed_cli(
    example: Example, make_client: ClientFactory, airflow_info: AirflowInfo
) -> None:
    """The guides name commands and arguments as Airflow 3's parser does (api.md says so:
    `logical_date_or_run_id` is `execution_date_or_run_id` on 2.x); the operator allows them
    with the guide's own pattern list."""
    if airflow_info.major != 3:
        pytest.skip("the guides' dotted examples are written for Airflow 3")
    assert airflow_info.cli is not None
    assert airflow_info.cli.command(tuple(example.api.split("."))) is not None, example.api
    client = await make_client(
        cli_commands=("dags.*", "tasks.*", "config.get-value"),
        rest_api_plugin_expected_http_token=TOKEN,
    )
    status, body, _ = await send(client, example, "")
    why = refused(example, status, body, ran=False)
    assert why is None, f"{example.where}: {example.url}: {why}"
