"""Hostile input: path traversal, argument injection, bytes that are not text, CR/LF and NUL,
oversized and malformed requests, a wrong Content-Type, repeated arguments.

Every case is refused with a 4xx envelope (below HTTP, where aiohttp's parser answers: a 4xx
or a closed connection), runs nothing (the fake airflow records every argv it is started
with), leaves nothing behind, logs no bridge error, and the daemon goes on serving. A value
starting with '-' that an argument may legitimately hold (free text, a path) may run, but the
recorded argv shows it only inside a ``--flag=`` of the bridge's choosing or after ``--``.

The arguments under test are enumerated from the catalogue (bridge/catalogue/table.py), so an
API or an argument added later is covered without touching this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from bridge.catalogue.installed import AirflowInfo
from bridge.catalogue.model import Api, Arg, Cli, Kind
from bridge.catalogue.table import APIS
from bridge.config import settings as config
from bridge.http.app import create_app
from tests.helpers import API, FAKE_AIRFLOW, Daemon, free_port, start_daemon

HostileClient = Callable[..., Awaitable[TestClient[Any, Any]]]

ALL_COMMANDS = frozenset(api.requires_command for api in APIS if api.requires_command)
VERSIONS = {2: "2.11.2", 3: "3.3.2"}
PATH_KINDS = (Kind.SERVER_PATH, Kind.DAGS_PATH)
VALID = {
    Kind.TEXT: "text",
    Kind.BOOL: "true",
    Kind.ID: "valid_id",
    Kind.RUN_ID: "manual__1",
    Kind.DATE: "2024-01-02",
    Kind.DATE_OR_RUN: "2024-01-02T03:04:05",
    Kind.JSON: "{}",
    Kind.INT: "1",
    Kind.DOCUMENT: "{}",
}
# One action per call for the multi-action APIs, so that every other argument is really used.
ACTION_CONTEXT = {
    "variables": {"cmd": "set", "key": "k", "value": "v"},
    "connections": {"add": "true", "conn_id": "c1", "conn_type": "postgres"},
    "pool": {"cmd": "set", "pool_name": "p", "slot_count": "1", "pool_description": "d"},
}
# Flags the multi-action builders (bridge/actions.py) write; the Cli mappings' flags are read
# from the catalogue below.
BUILDER_FLAGS = {"--json", "--default", "--conn-uri", "--conn-type", "--conn-extra", "--subdir"}
INJECTIONS = ("--help", "-x\r\n--yes")  # an option; a dash, CR/LF and a second option


def _known_flags() -> frozenset[str]:
    flags = {"--output", *BUILDER_FLAGS}
    for api in APIS:
        for mapping in api.by_major.values():
            if isinstance(mapping, Cli):
                flags.update(mapping.options.values())
                flags.update(f for f in mapping.fixed if f.startswith("-"))
    return frozenset(flags)


KNOWN_FLAGS = _known_flags()


def available(major: int) -> list[Api]:
    return [api for api in APIS if api.availability(major, ALL_COMMANDS) is None]


def text_args(api: Api) -> list[Arg]:
    return [arg for arg in api.args if arg.kind is not Kind.FILE]


def baseline(api: Api, major: int) -> dict[str, str]:
    """Valid values for what ``api`` requires on ``major``, so that only the argument under
    test can be the reason for a refusal."""
    values = {a.name: VALID[a.kind] for a in api.args if a.required and a.kind is not Kind.FILE}
    mapping = api.by_major.get(major)
    if isinstance(mapping, Cli):
        for name in mapping.also_required:
            arg = api.arg(name)
            assert arg is not None
            values[name] = VALID[arg.kind]
    return {**values, **ACTION_CONTEXT.get(api.name, {})}


PARAMS_BY_API = [
    pytest.param(major, api, id=f"{api.name}-{major}")
    for major in (2, 3)
    for api in available(major)
]
PATH_PARAMS = [
    pytest.param(major, api, arg, id=f"{api.name}-{arg.name}-{major}")
    for major in (2, 3)
    for api in available(major)
    for arg in api.args
    if arg.kind in PATH_KINDS
]


class Recorder:
    """What the fake airflow was started with (FAKE_AIRFLOW_RECORD): one argv a command."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def take(self) -> list[list[str]]:
        if not self.path.exists():
            return []
        runs = [json.loads(line) for line in self.path.read_text().splitlines()]
        self.path.unlink()
        return runs


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    path = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(path))  # the children inherit os.environ
    return Recorder(path)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An Airflow home with a dags folder, and a symlink out of each of them."""
    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    (home / "escape").symlink_to("/etc")
    (home / "dags" / "escape").symlink_to("/etc")
    (tmp_path / "home-sibling").mkdir()
    return home


@pytest.fixture
def make_client(aiohttp_client: Any, home: Path) -> HostileClient:
    """The real app on a fake Airflow of either major version with every command group, so
    that no API is refused as unavailable before its arguments are looked at."""

    async def factory(major: int = 3, **overrides: Any) -> TestClient[Any, Any]:
        base = config.Settings(
            airflow_home=home,
            dags_folder=home / "dags",
            airflow_executable=str(FAKE_AIRFLOW),
            allowed_paths=(home,),
            backups_folder=home / "backups",
            warm_helper=False,
        )
        settings = replace(base, **overrides)
        info = AirflowInfo(str(FAKE_AIRFLOW), VERSIONS[major], major, ALL_COMMANDS)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(settings, info))
        return client

    return factory


async def call(client: TestClient[Any, Any], api: Api, values: dict[str, str]) -> Any:
    if "GET" in api.methods:
        return await client.get(API, params={"api": api.name, **values})
    return await client.post(API, data={"api": api.name, **values})


async def refused(response: Any, status: int | None = None) -> dict[str, Any]:
    """A 4xx envelope whose http_response_code is the status it came with."""
    body: dict[str, Any] = json.loads(await response.text())
    assert 400 <= response.status < 500, (response.status, body)
    if status is not None:
        assert response.status == status, body
    assert body["http_response_code"] == response.status
    assert body["status"] == "ERROR"
    return body


async def still_serving(client: TestClient[Any, Any]) -> None:
    response = await client.get("/health")
    assert response.status == 200
    assert (await response.json())["commands_running"] == 0


@pytest.fixture
def no_internal_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A hostile request is the client's error: it must never surface as a bridge bug."""
    with caplog.at_level(logging.ERROR):
        yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# --- path traversal ---------------------------------------------------------------------------


def traversals(root: Path) -> list[str]:
    return [
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "..",
        "a/../../outside",
        f"{root}/../outside",
        f"{root}-sibling/file",  # shares the root's name as a prefix
        "escape/passwd",  # a symlink inside the root that points out of it
        "ok\x00/../../etc/passwd",
    ]


@pytest.mark.parametrize(("major", "api", "arg"), PATH_PARAMS)
async def test_path_traversal_is_refused_and_nothing_runs(
    make_client: HostileClient,
    recorder: Recorder,
    home: Path,
    no_internal_errors: None,
    major: int,
    api: Api,
    arg: Arg,
) -> None:
    client = await make_client(major)
    root = home / "dags" if arg.kind is Kind.DAGS_PATH else home
    for value in traversals(root):
        response = await call(client, api, {**baseline(api, major), arg.name: value})
        body = await refused(response, 400)
        assert arg.name in body["output"], body
    # The same, percent-encoded as a client that encodes everything sends it.
    encoded = quote("../../../../etc/passwd", safe="")
    required = "".join(f"&{quote(k)}={quote(v)}" for k, v in baseline(api, major).items())
    method = client.get if "GET" in api.methods else client.post
    response = await method(f"{API}?api={api.name}{required}&{quote(arg.name)}={encoded}")
    assert arg.name in (await refused(response, 400))["output"]
    assert recorder.take() == []
    await still_serving(client)


async def test_with_no_allowed_paths_every_server_path_is_refused(
    make_client: HostileClient, recorder: Recorder, home: Path
) -> None:
    client = await make_client(2, allowed_paths=())
    server_paths = [
        (api, arg) for api in available(2) for arg in api.args if arg.kind is Kind.SERVER_PATH
    ]
    assert server_paths, "the catalogue has no server paths any more: drop this test"
    for api, arg in server_paths:
        response = await call(client, api, {**baseline(api, 2), arg.name: str(home / "x.pid")})
        assert "allowed_paths is empty" in (await refused(response, 400))["output"]
    assert recorder.take() == []


@pytest.mark.parametrize("api_name", ["variables", "connections", "pool"])
async def test_export_and_import_never_touch_a_path_the_caller_names(
    make_client: HostileClient, recorder: Recorder, tmp_path: Path, api_name: str
) -> None:
    client = await make_client()
    target = tmp_path / "target.json"
    target.write_text("{}")
    response = await client.get(API, params={"api": api_name, "export": str(target)})
    assert response.status in (200, 500)  # the fake airflow does not write the export
    (argv,) = recorder.take()
    assert str(target) not in argv
    assert "was not used" in (await response.json())["warning"]
    response = await client.get(API, params={"api": api_name, "import": str(target)})
    assert "not a path on the server" in (await refused(response, 400))["output"]
    assert recorder.take() == []
    assert target.read_text() == "{}"


# --- argument injection, CR/LF, NUL, bytes that are not UTF-8 ---------------------------------


def assert_no_option_from(value: str, argv: list[str]) -> None:
    """``value`` may only reach the CLI inside a ``--flag=`` the bridge chose or after ``--``."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    for element in options:
        assert not element.startswith(value), (value, argv)
        if element.startswith("-"):
            assert element.split("=", 1)[0] in KNOWN_FLAGS, (value, argv)


@pytest.mark.parametrize(("major", "api"), PARAMS_BY_API)
async def test_no_value_becomes_an_option(
    make_client: HostileClient,
    recorder: Recorder,
    no_internal_errors: None,
    major: int,
    api: Api,
) -> None:
    client = await make_client(major)
    ran = 0
    for arg in text_args(api):
        for value in INJECTIONS:
            response = await call(client, api, {**baseline(api, major), arg.name: value})
            runs = recorder.take()
            if 400 <= response.status < 500:
                await refused(response)
                assert runs == [], (arg.name, value)
                continue
            assert runs, (arg.name, value, response.status, await response.text())
            ran += 1
            for argv in runs:
                assert_no_option_from(value, argv)
                if value in argv:  # a positional: only after the separator
                    assert "--" in argv and argv.index(value) > argv.index("--"), argv
    await still_serving(client)
    if api.internal:
        assert ran == 0  # version, rest_api_plugin_version, deploy_dag, refresh_dag


@pytest.mark.parametrize(("major", "api"), PARAMS_BY_API)
async def test_nul_and_invalid_utf8_in_any_value_are_refused(
    make_client: HostileClient,
    recorder: Recorder,
    no_internal_errors: None,
    major: int,
    api: Api,
) -> None:
    client = await make_client(major)
    method = client.get if "GET" in api.methods else client.post
    required = "".join(f"&{quote(k)}={quote(v)}" for k, v in baseline(api, major).items())
    not_utf8 = ("%ff%fe", "ok%c3", "%ed%a0%80")  # not UTF-8, cut short, a surrogate
    cases = [(arg.name, bad) for arg in text_args(api) for bad in ("a%00b", *not_utf8)]
    # Unknown arguments are ignored, a NUL in them too; bytes that are not text never are.
    cases += [("not_an_argument", bad) for bad in not_utf8]
    for name, bad in cases:
        response = await method(f"{API}?api={api.name}{required}&{quote(name)}={bad}")
        await refused(response, 400)
    assert recorder.take() == []
    await still_serving(client)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"api=pause&dag_id=%ff", "application/x-www-form-urlencoded"),
        (b"api=pause&dag_id=d\xff\xfe", "application/x-www-form-urlencoded"),
        (b"api=clear&dag_id=d&task_regex=\xc3", "application/x-www-form-urlencoded"),
        (b"api=pause&dag_id=d", "application/x-www-form-urlencoded; charset=no-such-charset"),
        (b"api=pause&api=unpause&dag_id=d", "application/x-www-form-urlencoded"),
    ],
    ids=["percent-ff", "raw-ff", "cut-utf8", "unknown-charset", "repeated-api"],
)
async def test_a_form_body_that_is_not_text_is_refused(
    make_client: HostileClient,
    recorder: Recorder,
    no_internal_errors: None,
    body: bytes,
    content_type: str,
) -> None:
    client = await make_client()
    response = await client.post(API, data=body, headers={"Content-Type": content_type})
    await refused(response, 400)
    assert recorder.take() == []
    await still_serving(client)


# --- repeated arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "api=pause&dag_id=a&dag_id=b",
        "api=pause&api=unpause&dag_id=a",  # which one would run?
        "api=version&api=pause&dag_id=a",
        "api=test&dag_id=a&task_id=b&execution_date=2024-01-02&stream=false&stream=true",
        "api=list_dags&output=json&output=table",
    ],
)
async def test_repeated_arguments_with_different_values_are_refused(
    make_client: HostileClient, recorder: Recorder, no_internal_errors: None, query: str
) -> None:
    client = await make_client()
    await refused(await client.get(f"{API}?{query}"), 400)
    await refused(await client.post(API, data=query.encode(), headers=FORM), 400)
    assert recorder.take() == []


async def test_a_repeated_multipart_field_with_different_values_is_refused(
    make_client: HostileClient, recorder: Recorder
) -> None:
    client = await make_client()
    body = multipart(("api", b"pause"), ("dag_id", b"a"), ("dag_id", b"b"))
    await refused(await client.post(API, data=body, headers=MULTIPART), 400)
    assert recorder.take() == []


# --- sizes, content types, malformed multipart ------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BOUNDARY = "hostile-boundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def part(name: str, data: bytes, extra: str = "") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )


def multipart(*fields: tuple[str, bytes]) -> bytes:
    return b"".join(part(name, data) for name, data in fields) + f"--{BOUNDARY}--\r\n".encode()


async def test_oversized_query_string_is_414(make_client: HostileClient) -> None:
    client = await make_client()
    await refused(await client.get(f"{API}?api=pause&dag_id={'a' * 70_000}"), 414)
    await still_serving(client)


async def test_oversized_bodies_and_values_are_refused(
    make_client: HostileClient, recorder: Recorder, no_internal_errors: None
) -> None:
    client = await make_client(max_upload_size=64 * 1024)

    async def post(body: bytes, headers: dict[str, str], query: str = "") -> Any:
        return await client.post(f"{API}{query}", data=io.BytesIO(body), headers=headers)

    huge = b"x" * (2 * 1024 * 1024)  # beyond the upload cap + 1 MiB of room for the fields
    await refused(await post(b"api=pause&dag_id=" + huge, FORM), 413)
    too_long = b"t" * 70_000  # over MAX_VALUE_LENGTH, under the body cap
    response = await post(b"api=clear&dag_id=d&task_regex=" + too_long, FORM, "?api=clear")
    assert "longer than" in (await refused(response, 400))["output"]
    many = "&".join(f"f{n}=v" for n in range(1000)).encode()
    await refused(await post(b"api=version&" + many, FORM), 400)
    await refused(await post(multipart(("api", b"pause"), ("dag_id", huge)), MULTIPART), 413)
    upload = part("dag_file", huge, '; filename="big.py"') + f"--{BOUNDARY}--\r\n".encode()
    await refused(await post(upload, MULTIPART, "?api=deploy_dag"), 413)
    await refused(await post(multipart(*((f"f{n}", b"v") for n in range(300))), MULTIPART), 400)
    assert recorder.take() == []
    await still_serving(client)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", "application/xml", "image/png", "multipart/mixed"],
)
async def test_a_wrong_content_type_is_415(
    make_client: HostileClient, recorder: Recorder, content_type: str
) -> None:
    client = await make_client()
    response = await client.post(
        f"{API}?api=pause&dag_id=a",
        data=b'{"api": "pause"}',
        headers={"Content-Type": content_type},
    )
    await refused(response, 415)
    assert recorder.take() == []


MALFORMED_MULTIPART = {
    "no-boundary": ("multipart/form-data", multipart(("api", b"pause"))),
    "empty-boundary": ("multipart/form-data; boundary=", b"--\r\n\r\n"),
    "wrong-boundary": ("multipart/form-data; boundary=other", multipart(("api", b"pause"))),
    "garbage": (MULTIPART["Content-Type"], b"\x00\xff" * 500),
    "no-closing-boundary": (MULTIPART["Content-Type"], part("api", b"pause")),
    "cut-inside-a-part": (MULTIPART["Content-Type"], part("api", b"pause")[:-10]),
    "cut-inside-headers": (MULTIPART["Content-Type"], f"--{BOUNDARY}\r\nContent-Disp".encode()),
    "part-header-too-long": (
        MULTIPART["Content-Type"],
        f"--{BOUNDARY}\r\nX-Long: {'a' * 200_000}\r\n\r\nv\r\n--{BOUNDARY}--\r\n".encode(),
    ),
    "nested": (
        MULTIPART["Content-Type"],
        f"--{BOUNDARY}\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n"
        f"--in\r\n\r\nx\r\n--in--\r\n--{BOUNDARY}--\r\n".encode(),
    ),
    "field-not-utf8": (MULTIPART["Content-Type"], multipart(("api", b"\xff\xfe"))),
    "unknown-charset": (
        MULTIPART["Content-Type"],
        part("api", b"pause", "\r\nContent-Type: text/plain; charset=no-such")
        + f"--{BOUNDARY}--\r\n".encode(),
    ),
    "default-charset-too-long": (
        MULTIPART["Content-Type"],
        multipart(("_charset_", b"u" * 64), ("api", b"pause")),
    ),
}


@pytest.mark.parametrize("case", MALFORMED_MULTIPART)
async def test_malformed_multipart_is_a_4xx(
    make_client: HostileClient,
    recorder: Recorder,
    home: Path,
    no_internal_errors: None,
    case: str,
) -> None:
    client = await make_client()
    content_type, body = MALFORMED_MULTIPART[case]
    for api in ("pause", "deploy_dag"):
        response = await client.post(
            f"{API}?api={api}&dag_id=a", data=body, headers={"Content-Type": content_type}
        )
        await refused(response)
    assert recorder.take() == []
    assert [p.name for p in (home / "dags").iterdir()] == ["escape"]  # nothing staged or left
    await still_serving(client)


# --- below HTTP: a real daemon and a raw socket -------------------------------------------------


async def exchange(port: int, data: bytes, close_after: bool = False) -> bytes:
    """Send ``data`` on a new connection and read until the daemon closes it (b"" when it
    closed without answering). ``close_after``: the client goes away right after sending."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if close_after:
            return b""
        return await asyncio.wait_for(reader.read(), timeout=60)
    except ConnectionResetError:  # the daemon closed while we were still sending
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()


def check_raw_answer(answer: bytes) -> str | None:
    """None for a connection closed without an answer, else the answer's 4xx status, with
    "envelope" when it is the bridge's JSON (whose http_response_code must be the status)."""
    if not answer:
        return None
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    assert 400 <= status < 500, answer[:500]
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if headers.get("content-type", "").startswith("application/json"):
        assert json.loads(body)["http_response_code"] == status
        return f"{status} envelope"
    return str(status)  # aiohttp's own text/plain answer to what it cannot parse


def request(target: str, *headers: str, body: bytes = b"", method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(target: str, content_type: str, chunks: bytes) -> bytes:
    return (
        f"POST {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode() + chunks


VERSION = f"{API}?api=version"
MULTIPART_TYPE = MULTIPART["Content-Type"]
CUT_UPLOAD = part("dag_file", b"x = 1\n" * 20, '; filename="cut.py"')[:90]
RAW_CASES: dict[str, bytes] = {
    "header-over-16k": request(VERSION, "X-Big: " + "a" * 20_000),
    "200-headers": request(VERSION, *(f"X-H{n}: v" for n in range(200))),
    "request-line-over-128k": request(f"{VERSION}&x={'a' * 140_000}"),
    "raw-ff-in-target": request(VERSION).replace(b"version", b"vers\xff\xfeion"),
    "raw-utf8-in-target": request(f"{VERSION}&x=cafe").replace(b"cafe", "caf\u00e9".encode()),
    "nul-in-header": request(VERSION, "X-A: a\x00b"),
    "bare-cr-in-header": request(VERSION, "X-A: a\rb"),
    "not-http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 500,
    "content-length-and-chunked": request(
        f"{API}?api=pause&dag_id=a",
        "Transfer-Encoding: chunked",
        "Content-Type: application/x-www-form-urlencoded",
        body=b"0\r\n\r\n",
        method="POST",
    ),
    "bad-chunk-size": chunked(
        f"{API}?api=pause", "application/x-www-form-urlencoded", b"zz\r\ndag_id=a\r\n0\r\n\r\n"
    ),
    "form-not-utf8": request(
        API, "Content-Type: application/x-www-form-urlencoded", body=b"api=\xff", method="POST"
    ),
    "multipart-without-closing-boundary": request(
        f"{API}?api=pause",
        f"Content-Type: {MULTIPART_TYPE}",
        body=part("dag_id", b"a"),
        method="POST",
    ),
    "multipart-cut-in-a-chunked-body": chunked(
        f"{API}?api=deploy_dag",
        MULTIPART_TYPE,
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(CUT_UPLOAD), CUT_UPLOAD),
    ),
    "malformed-content-disposition": request(
        f"{API}?api=pause",
        f"Content-Type: {MULTIPART_TYPE}",
        body=f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a\r\n\r\nv\r\n'
        f"--{BOUNDARY}--\r\n".encode(),
        method="POST",
    ),
}


REACH_THE_APP = (
    "form-not-utf8",
    "multipart-without-closing-boundary",
    "multipart-cut-in-a-chunked-body",
    "malformed-content-disposition",
)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, int, Path]]:
    """A real daemon on the fake airflow: it, its port and its dags folder."""
    dags = tmp_path / "dags"
    dags.mkdir()
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(
        f"[core]\ndags_folder = {dags}\n\n[rest_api_plugin]\n"
        f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\n"
    )
    port = free_port()
    started = await start_daemon(cfg, port)
    try:
        yield started, port, dags
    finally:
        assert await started.stop() == 0


def bridge_errors(lines: list[str]) -> list[str]:
    """Log lines that say the bridge itself failed (an unexpected exception, a 500)."""
    return [line for line in lines if " ERROR bridge" in line or '" 500 ' in line]


async def test_raw_protocol_abuse_gets_a_4xx_or_a_close_and_the_daemon_serves_on(
    daemon: tuple[Daemon, int, Path],
) -> None:
    process, port, dags = daemon
    answers = {
        case: check_raw_answer(await exchange(port, data)) for case, data in RAW_CASES.items()
    }
    # A closed connection is a fine answer, but most cases must have been answered with a
    # status: otherwise this test would not see what it claims to check. What gets past
    # aiohttp's parser must get the bridge's envelope.
    assert sum(status is not None for status in answers.values()) > len(RAW_CASES) // 2, answers
    for case in REACH_THE_APP:
        assert answers[case] in (None, "400 envelope"), answers
    health = await exchange(port, request("/health"))
    assert health.startswith(b"HTTP/1.1 200"), health[:200]
    assert json.loads(health.partition(b"\r\n\r\n")[2])["commands_running"] == 0
    assert list(dags.iterdir()) == []
    assert await process.stop() == 0
    assert bridge_errors(process.lines) == [], answers


async def until_in(folder: Path, present: bool) -> None:
    """Wait for a staged upload to appear in (or to leave) ``folder``: the daemon does it in
    another process and nothing signals it, so look, bounded in time."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 30
    while bool(list(folder.iterdir())) != present:
        assert loop.time() < give_up, (present, list(folder.iterdir()))
        await asyncio.sleep(0.05)


async def test_clients_that_leave_mid_body_leave_nothing_behind(
    daemon: tuple[Daemon, int, Path],
) -> None:
    process, port, dags = daemon
    head = part("dag_file", b"", '; filename="half.py"')[:-2]
    promised = (
        f"POST {API}?api=deploy_dag HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: {MULTIPART_TYPE}\r\nContent-Length: {len(head) + 1_000_000}\r\n\r\n"
    ).encode()
    half = promised + head + b"# half a file\n" * 1000
    # One client stays until its upload is being staged, then goes: the staged part goes too.
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(half)
    await writer.drain()
    await until_in(dags, present=True)
    writer.close()
    await writer.wait_closed()
    await until_in(dags, present=False)
    # Many more, gone at once, halfway through the body or through the headers.
    for _ in range(20):
        await exchange(port, half, close_after=True)
        await exchange(port, promised[: len(promised) // 2], close_after=True)
    health = await exchange(port, request("/health"))
    assert health.startswith(b"HTTP/1.1 200"), health[:200]
    await until_in(dags, present=False)
    assert await process.stop() == 0
    assert bridge_errors(process.lines) == []


async def test_a_value_cannot_forge_a_log_line(daemon: tuple[Daemon, int, Path]) -> None:
    process, port, _dags = daemon
    forged = "INFO bridge.audit: peer=10.0.0.1 api=pause cmd=forged"
    target = f"{API}?api=clear&dag_id=d&task_regex={quote('x' + chr(10) + forged)}"
    await exchange(port, request(target))
    assert await process.stop() == 0
    audit = [line for line in process.lines if "bridge.audit" in line]
    assert audit, "the call was not audited: the test did not run a command"
    assert not [line for line in process.lines if line.startswith(forged)]
