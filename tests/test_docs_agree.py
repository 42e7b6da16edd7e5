"""The guides say what the code says, checked where the code knows the fact (issue 26, item
13): every ``$ airflow-rest-bridge ... --help`` block is the parser's own help, install.md's
dependency list is setup.py's ``install_requires``, every pip install of the bridge pins the
tested set, the restart-only list of docs/configuration.md is the settings declared
restart-only, and every ``airflow-rest-bridge`` command line shown parses. No Airflow, no
daemon: the parser, setup.py and the setting declarations are read directly."""

from __future__ import annotations

import ast
import contextlib
import io
import itertools
import json
import re
import shlex
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.cli import build_parser
from bridge.config.settings import RESTART_KEYS
from bridge.task_logs.files import readable

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
# The guides: README and docs/*.md (docs/reference/ is generated from the code itself).
GUIDES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
# The width the guides' help blocks are wrapped at: argparse reads COLUMNS (through
# shutil.get_terminal_size) and wraps at two less.
HELP_COLUMNS = "80"
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.M | re.S)
PROGRAM = "airflow-rest-bridge"


def blocks(page: Path) -> Iterator[tuple[int, str, str]]:
    """Each fenced block of a page: the line its fence opens on, its language, its text
    (indented blocks, such as those inside a list item, dedented)."""
    text = page.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        yield line, match[2], textwrap.dedent(match[3])


def logical_lines(text: str) -> Iterator[str]:
    """A shell block's lines, each continued line (a trailing backslash) joined to the next."""
    pending = ""
    for line in text.splitlines():
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def help_of(words: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """What ``airflow-rest-bridge WORDS --help`` prints, at the guides' width."""
    monkeypatch.setenv("COLUMNS", HELP_COLUMNS)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as ended:
        build_parser().parse_args(words)
    assert ended.value.code == 0
    return printed.getvalue()


def help_blocks() -> list[tuple[str, list[str], str]]:
    """(where, the words after the program, the help shown) of every block that starts with
    ``$ airflow-rest-bridge ... --help``."""
    found = []
    for page in GUIDES:
        for line, _, text in blocks(page):
            first, _, shown = text.partition("\n")
            if not first.startswith(f"$ {PROGRAM} "):
                continue
            words = shlex.split(first.removeprefix("$ "))
            if words[-1] == "--help":
                found.append((f"{page.name}:{line}", words[1:], shown))
    return found


def test_install_md_shows_the_help_of_the_daemon_and_of_token() -> None:
    shown = {(where.split(":")[0], " ".join(words)) for where, words, _ in help_blocks()}
    assert ("install.md", "--help") in shown
    assert ("install.md", "token --help") in shown


@pytest.mark.parametrize(
    ("words", "shown"), [(w, s) for _, w, s in help_blocks()], ids=[h[0] for h in help_blocks()]
)
def test_a_help_block_is_the_parsers_help(
    words: list[str], shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shown == help_of(words, monkeypatch)


def install_requires() -> list[str]:
    """setup.py's install_requires, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [str(item) for item in ast.literal_eval(node.value)]
    raise AssertionError("setup.py has no install_requires")


def test_install_md_names_every_dependency_of_setup_py() -> None:
    text = (DOCS / "install.md").read_text(encoding="utf-8")
    paragraph = next(p for p in text.split("\n\n") if p.startswith("`setup.py` declares"))
    shown = {
        item
        for item in re.findall(r"`([^`]+)`", paragraph)
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*[<>=!~][^\s]*", item)
    }
    assert shown == set(install_requires())


def bridge_installs() -> list[tuple[str, str, str, set[str]]]:
    """(where, the command, what it installs, what it may be constrained by) of every pip or
    pipx install of the bridge in the guides' shell blocks, comments included (an alternative
    is often shown as one). The bridge is a checkout: a path ending in airflow-rest-bridge,
    or $SRC; its tested set is constraints.txt in it, and an install into Airflow's own
    environment pins that environment's versions (a `pip freeze > FILE` in the same block)."""
    found = []
    for page in GUIDES:
        for line, language, text in blocks(page):
            if language not in ("sh", "bash", "shell"):
                continue
            frozen = set(re.findall(r"pip freeze > (\S+)", text))
            uncommented = "\n".join(line.lstrip(" #") for line in text.splitlines())
            for command in logical_lines(uncommented):
                match = re.search(r"\bpipx? install (.*)", command)
                if match is None:
                    continue
                words = shlex.split(match[1])
                targets = [w for w in words if w == "$SRC" or w.endswith("/" + PROGRAM)]
                for target in targets:
                    allowed = {f"{target}/constraints.txt", *frozen}
                    found.append((f"{page.name}:{line}", command.strip(), target, allowed))
    return found


def constraints_of(command: str) -> list[str]:
    """The constraint files a pip (or pipx, through --pip-args) command line passes."""
    words = shlex.split(command.split("install", 1)[1])
    for word in list(words):
        if word.startswith("--pip-args="):
            words += shlex.split(word.removeprefix("--pip-args="))
    files = [after for before, after in itertools.pairwise(words) if before == "-c"]
    return files + [w.split("=", 1)[1] for w in words if w.startswith("--constraint=")]


def test_the_guides_install_the_bridge_somewhere() -> None:
    pages = {where.split(":")[0] for where, *_ in bridge_installs()}
    assert {"README.md", "install.md", "systemd.md"} <= pages


@pytest.mark.parametrize(
    ("command", "allowed"),
    [(c, a) for _, c, _, a in bridge_installs()],
    ids=[i[0] for i in bridge_installs()],
)
def test_every_install_of_the_bridge_pins_the_tested_set(command: str, allowed: set[str]) -> None:
    used = constraints_of(command)
    assert used and set(used) <= allowed, f"{command!r} should pass -c one of {sorted(allowed)}"


def test_the_restart_only_list_is_the_settings_declared_restart_only() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    after = text.split("These settings are read at startup only", 1)[1]
    bullets = re.search(r"\n\n((?:- .*\n)+)", after)
    assert bullets is not None, "no list after 'These settings are read at startup only'"
    listed = re.findall(r"`([a-z_]+)`", bullets[1])
    assert sorted(listed) == sorted(RESTART_KEYS)


def test_the_task_log_line_shown_is_what_the_bridge_makes_of_airflow_3s() -> None:
    """A line of a task's log as Airflow 3.3.2 writes it for what the task printed (taken from
    a real log, its time changed), shown as task_log shows it."""
    written = {"timestamp": "2026-11-30T10:00:01.479489Z", "level": "info", "event": "tick 1"}
    written["logger"] = "task.stdout"
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    assert f"`{readable(json.dumps(written))}`" in api


def command_lines() -> list[tuple[str, list[str]]]:
    """(where, the words after the program) of every airflow-rest-bridge command line in the
    guides' shell and text blocks (a `$ ` prompt, environment assignments and the program's
    folder removed), but for the --help blocks, checked above."""
    found = []
    for page in GUIDES:
        for line, language, text in blocks(page):
            if language not in ("sh", "bash", "shell", "text"):
                continue
            for command in logical_lines(text):
                try:
                    words = shlex.split(command.strip().removeprefix("$ "), comments=True)
                except ValueError:  # not a shell line (a JSON answer, a log line)
                    continue
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    words.pop(0)
                if words and Path(words[0]).name == PROGRAM and words[-1] != "--help":
                    found.append((f"{page.name}:{line}", words[1:]))
    return found


def test_the_guides_show_the_command_line() -> None:
    shown = {" ".join(words[:2]) for _, words in command_lines()}
    assert {"token add", "token list", "token revoke"} <= shown


@pytest.mark.parametrize(
    "words", [w for _, w in command_lines()], ids=[c[0] for c in command_lines()]
)
def test_every_command_line_shown_parses(words: list[str]) -> None:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            build_parser().parse_args(words)
    except SystemExit:
        pytest.fail(f"airflow-rest-bridge {shlex.join(words)}: {printed.getvalue()}")
