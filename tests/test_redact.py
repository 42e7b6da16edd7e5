"""Masking secrets before they reach a log line, airflow_cmd or the envelope's arguments."""

from __future__ import annotations

import pytest

from bridge.redact import MASK, is_sensitive_name, mask_arguments, mask_argv, mask_uri

TOKEN = "tok-3f9a1c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://user:secret@host:5432/db", f"postgres://user:{MASK}@host:5432/db"),
        ("redis://:secret@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("mysql://u:pa:ss@h/db", f"mysql://u:{MASK}@h/db"),
        ("uri is postgres://u:secret@h/db here", f"uri is postgres://u:{MASK}@h/db here"),
        ("postgres://user@host/db", "postgres://user@host/db"),
        ("http://host:8080/path", "http://host:8080/path"),
    ],
)
def test_mask_uri(text: str, expected: str) -> None:
    assert mask_uri(text) == expected


def test_mask_uri_password_containing_at_sign() -> None:
    masked = mask_uri("postgres://user:p@ss@host:5432/db")
    assert "ss@" not in masked
    assert masked.endswith("@host:5432/db")


def test_mask_argv_conn_uri_and_password_flags() -> None:
    argv = [
        "/venv/bin/airflow",
        "connections",
        "add",
        "--conn-uri=postgres://user:secret@host:5432/db",
        "--conn-password=hunter2",
        "--",
        "pg",
    ]
    masked = mask_argv(argv)
    assert masked[3] == f"--conn-uri=postgres://user:{MASK}@host:5432/db"
    assert masked[4] == f"--conn-password={MASK}"
    assert "secret" not in " ".join(masked) and "hunter2" not in " ".join(masked)
    assert argv[4] == "--conn-password=hunter2"  # the argv that runs is untouched


@pytest.mark.parametrize(
    "argv",
    [
        ["variables", "set", "--", "my_password", "VALUE"],
        ["/venv/bin/airflow", "variables", "set", "--", "my_password", "VALUE"],
        ["airflow", "variables", "set", "--json", "--", "API_KEY", "VALUE"],
    ],
)
def test_mask_argv_sensitive_variable_value(argv: list[str]) -> None:
    masked = mask_argv(argv)
    assert masked[-1] == MASK
    assert masked[:-1] == argv[:-1]


def test_mask_argv_keeps_ordinary_variable_value() -> None:
    argv = ["airflow", "variables", "set", "--", "colour", "VALUE"]
    assert mask_argv(argv) == argv


def test_mask_argv_masks_the_token_anywhere() -> None:
    argv = ["airflow", "variables", "set", "--", "note", f"x{TOKEN}y", f"--conf={TOKEN}"]
    masked = mask_argv(argv, token=TOKEN)
    assert not any(TOKEN in part for part in masked)
    assert masked[-2:] == [f"x{MASK}y", f"--conf={MASK}"]


def test_mask_argv_without_token_changes_nothing_else() -> None:
    argv = ["airflow", "dags", "list", "--output=json"]
    assert mask_argv(argv, token=None) == argv == mask_argv(argv, token="")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            {"api": "connections", "conn_uri": "postgres://user:secret@host:5432/db"},
            {"api": "connections", "conn_uri": f"postgres://user:{MASK}@host:5432/db"},
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
        ({"conn_password": "hunter2"}, {"conn_password": MASK}),
        ({"note": f"a{TOKEN}b"}, {"note": f"a{MASK}b"}),
    ],
)
def test_mask_arguments(args: dict[str, str], expected: dict[str, str]) -> None:
    assert mask_arguments(args, token=TOKEN) == expected


def test_mask_arguments_does_not_change_its_input() -> None:
    args = {"set": "api_key VALUE"}
    mask_arguments(args)
    assert args == {"set": "api_key VALUE"}


@pytest.mark.parametrize("separator", ["\t", "\n"])
def test_mask_arguments_set_with_other_whitespace(separator: str) -> None:
    masked = mask_arguments({"set": f"api_key{separator}VALUE"})
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
    from bridge.noise import StreamText

    stream = StreamText(filtering=False, mask=mask_uri)
    text = stream.feed(b"added postgres://user:sec") + stream.feed(b"ret@host/db\nnext\n")
    text += stream.finish()
    assert "secret" not in text
    assert text == "added postgres://user:***@host/db\nnext\n"
