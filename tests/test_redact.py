"""Masking secrets before they reach a log line, airflow_cmd or the envelope's arguments."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiohttp.http_exceptions import LineTooLong

from bridge.catalogue.model import Context
from bridge.catalogue.planning import collect, plan_cli
from bridge.catalogue.table import BY_NAME
from bridge.config.settings import CurrentSettings, Settings
from bridge.http.forms import shown_arguments
from bridge.service.serve import log_redactor
from bridge.text.noise import StreamText
from bridge.text.redact import MASK, is_sensitive_name, mask_uri, shown_command

TOKEN = "tok-3f9a1c"
URI = "postgres://user:secret@host:5432/db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://user:secret@host:5432/db", f"postgres://user:{MASK}@host:5432/db"),
        ("redis://:secret@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("mysql://u:pa:ss@h/db", f"mysql://u:{MASK}@h/db"),
        ("uri is postgres://u:secret@h/db here", f"uri is postgres://u:{MASK}@h/db here"),
        ("postgres://user@host/db", "postgres://user@host/db"),
        ("http://host:8080/path", "http://host:8080/path"),
        # Secrets in the query part: masked by the parameter's name, the others kept.
        (
            "aws://?aws_access_key_id=AKIA1&aws_secret_access_key=abc%2Fdef&region_name=eu",
            f"aws://?aws_access_key_id=AKIA1&aws_secret_access_key={MASK}&region_name=eu",
        ),
        (
            "postgres://u:pw@h/db?sslmode=require&password=two;api_key=k#frag",
            f"postgres://u:{MASK}@h/db?sslmode=require&password={MASK};api_key={MASK}#frag",
        ),
        ("http://h/p?token=&next=1", "http://h/p?token=&next=1"),
        ("a=b and c&d=e", "a=b and c&d=e"),
    ],
)
def test_mask_uri(text: str, expected: str) -> None:
    assert mask_uri(text) == expected


def test_mask_uri_password_containing_at_sign() -> None:
    masked = mask_uri("postgres://user:p@ss@host:5432/db")
    assert "ss@" not in masked
    assert masked.endswith("@host:5432/db")


def shown(api: str, **values: str) -> list[str]:
    """The argv the catalogue plans for a call, as logs and airflow_cmd show it."""
    chosen = BY_NAME[api]
    ctx = Context(3, Path("/dags"), (Path("/home"),))
    plan = plan_cli(chosen, collect(chosen, {k: [v] for k, v in values.items()}, ctx), ctx, False)
    return shown_command(["/venv/bin/airflow", *plan.argv], TOKEN)


def test_connections_add_shows_neither_the_uri_password_nor_secret_extras() -> None:
    extra = '{"password": "hunter2", "region": "eu"}'
    argv = shown("connections", add="true", conn_id="pg", conn_uri=URI, conn_extra=extra)
    assert f"--conn-uri=postgres://user:{MASK}@host:5432/db" in argv
    assert f'--conn-extra={{"password": "{MASK}", "region": "eu"}}' in argv
    assert "secret" not in " ".join(argv) and "hunter2" not in " ".join(argv)


def test_a_conf_shows_no_value_of_a_sensitive_key() -> None:
    """conf is JSON like conn_extra: its sensitive keys are masked in airflow_cmd and logs."""
    conf = '{"password": "hunter2", "when": "now"}'
    argv = shown("trigger_dag", dag_id="d", conf=conf)
    assert f'--conf={{"password": "{MASK}", "when": "now"}}' in argv
    assert "hunter2" not in " ".join(argv)


def test_the_argv_that_runs_keeps_its_secrets() -> None:
    chosen = BY_NAME["connections"]
    ctx = Context(3, Path("/dags"), ())
    values = collect(chosen, {"add": ["true"], "conn_id": ["pg"], "conn_uri": [URI]}, ctx)
    assert f"--conn-uri={URI}" in plan_cli(chosen, values, ctx, False).argv


@pytest.mark.parametrize(
    "values",
    [
        {"set": "my_password VALUE"},
        {"set": "API_KEY\tVALUE", "json": "true"},
        {"cmd": "set", "key": "db_secret", "value": "VALUE"},
    ],
)
def test_a_sensitive_variable_value_is_masked(values: dict[str, str]) -> None:
    argv = shown("variables", **values)
    assert argv[-1] == MASK
    assert "VALUE" not in " ".join(argv)


def test_an_ordinary_variable_value_is_shown() -> None:
    assert shown("variables", set="colour blue")[-2:] == ["colour", "blue"]


def test_the_token_is_masked_anywhere_in_an_argv() -> None:
    argv = ["airflow", "variables", "set", "--", "note", f"x{TOKEN}y", f"--conf={TOKEN}"]
    masked = shown_command(argv, TOKEN)
    assert not any(TOKEN in part for part in masked)
    assert masked[-2:] == [f"x{MASK}y", f"--conf={MASK}"]


def test_without_a_token_an_argv_shows_as_it_is() -> None:
    argv = ["airflow", "dags", "list", "--output=json"]
    assert shown_command(argv, None) == argv == shown_command(argv, "")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            {"api": "connections", "conn_uri": "postgres://user:secret@host:5432/db"},
            {"api": "connections", "conn_uri": f"postgres://user:{MASK}@host:5432/db"},
        ),
        (
            {"api": "connections", "conn_extra": '{"api_key": "k1"}'},
            {"api": "connections", "conn_extra": f'{{"api_key": "{MASK}"}}'},
        ),
        (
            {"api": "variables", "cmd": "set", "key": "db_password", "value": "VALUE"},
            {"api": "variables", "cmd": "set", "key": "db_password", "value": MASK},
        ),
        (
            {"api": "variables", "cmd": "set", "key": "colour", "value": "blue"},
            {"api": "variables", "cmd": "set", "key": "colour", "value": "blue"},
        ),
        (
            {"api": "variables", "set": "api_key VALUE"},
            {"api": "variables", "set": f"api_key {MASK}"},
        ),
        ({"api": "variables", "set": "colour blue"}, {"api": "variables", "set": "colour blue"}),
        (
            {"api": "variables", "import": "[1]"},
            {"api": "variables", "import": "<3 characters of JSON>"},
        ),
        ({"api": "pool", "set": "password_pool 3 x"}, {"api": "pool", "set": "password_pool 3 x"}),
        (
            {"api": "trigger_dag", "conf": '{"password": "hunter2", "n": 1}'},
            {"api": "trigger_dag", "conf": f'{{"password": "{MASK}", "n": 1}}'},
        ),
        (
            {"api": "test", "task_params": '{"db": {"api_key": "k1"}}'},
            {"api": "test", "task_params": f'{{"db": {{"api_key": "{MASK}"}}}}'},
        ),
        ({"conn_password": "hunter2"}, {"conn_password": MASK}),
        ({"api": "nope", "my_token": "abc"}, {"api": "nope", "my_token": MASK}),
        ({"note": f"a{TOKEN}b"}, {"note": f"a{MASK}b"}),
    ],
)
def test_arguments_are_masked_by_their_traits(
    args: dict[str, str], expected: dict[str, str]
) -> None:
    assert shown_arguments(args, TOKEN) == expected


def test_masking_does_not_change_its_input() -> None:
    args = {"api": "variables", "set": "api_key VALUE"}
    shown_arguments(args, None)
    assert args == {"api": "variables", "set": "api_key VALUE"}


@pytest.mark.parametrize("separator", ["\t", "\n"])
def test_a_key_value_split_by_other_whitespace_is_masked(separator: str) -> None:
    masked = shown_arguments({"api": "variables", "set": f"api_key{separator}VALUE"}, None)
    assert "VALUE" not in masked["set"]


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("password", True),
        ("MY_API_KEY", True),
        ("aws_secret_access_key", True),
        ("private_key", True),
        ("colour", False),
        ("dag_folder", False),
    ],
)
def test_is_sensitive_name(name: str, sensitive: bool) -> None:
    assert is_sensitive_name(name) is sensitive


def test_stream_text_masks_a_uri_split_across_reads() -> None:
    stream = StreamText(filtering=False, mask=mask_uri)
    text = stream.feed(b"added postgres://user:sec") + stream.feed(b"ret@host/db\nnext\n")
    text += stream.finish()
    assert "secret" not in text
    assert text == "added postgres://user:***@host/db\nnext\n"


def test_log_redactor_masks_escapes_and_drops_quoted_requests() -> None:
    token, password = "tok-abc123", "pw-987zyx"
    stream = logging.StreamHandler(io := _Buffer())
    stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    stream.addFilter(log_redactor(CurrentSettings(Settings(metrics_token=token))))
    logger = logging.getLogger("test.redactor")
    logger.propagate = False
    logger.addHandler(stream)
    try:
        logger.warning("cmd=%s", f"--conn-uri=postgres://u:{password}@h/db --note={token}")
        logger.warning("value=%s", "a\nINFO bridge.audit: forged")
        logger.warning("value=%s", "b\rINFO bridge.audit: overwritten")
        try:
            raise LineTooLong(f"GET /?conn_uri=postgres%3A%2F%2Fu%3A{password}%40h".encode(), 8)
        except LineTooLong:
            logger.exception("Error handling request from %s", "127.0.0.1")
        try:
            raise ValueError(f"bad {token} in postgres://u:{password}@h/db")
        except ValueError:
            logger.exception("unexpected error")
    finally:
        logger.removeHandler(stream)
    text = io.text
    assert token not in text and password not in text, text
    assert "\nINFO bridge.audit: forged" not in text
    assert "a\\nINFO bridge.audit: forged" in text
    assert "\r" not in text and "b\\rINFO bridge.audit: overwritten" in text
    assert "Error handling request from 127.0.0.1: LineTooLong (HTTP 400)\n" in text  # no trace
    assert "Traceback" in text and f"postgres://u:{MASK}@h/db" in text  # other tracebacks stay


class _Buffer:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass
