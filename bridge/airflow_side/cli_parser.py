"""Describe the installed Airflow's CLI, from its own argparse parser, and where it writes
task logs, as one JSON document.

    <airflow's python> cli_parser.py

Run by the Airflow installation's own interpreter in a child process, never imported by the
daemon (which has no Airflow). Output on stdout is exactly one JSON document::

    {"version": "2.11.2", "commands": [{"words": ["dags", "pause"], "help": "...",
      "arguments": [{"dest": "dag_id", "flags": [], "kind": "value", "nargs": null,
                     "choices": null, "type": "str", "required": true, "help": "..."}, ...]}],
     "stamps": [["/venv/lib/python3.12/site-packages/airflow/__init__.py",
                 [inode, mtime_ns, size]], ...],
     "task_logs": {"base_log_folder": "...", "log_filename_template": "...",
                   "remote_logging": false, "remote_base_log_folder": ""}}

``kind`` is ``value`` (takes a value), ``flag`` (a bare switch: store_true/store_const) or
``count`` (-v -v). ``type`` is ``int``, ``float``, ``date`` or ``str``: what the daemon can
check before anything runs; Airflow's own type function still runs in the CLI. Anything
Airflow prints while building its parser goes to stderr. Uses only the standard library and
Airflow.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
from typing import Any

DISTRIBUTIONS = "/*.dist-info"  # a stamp path ending so: the distributions in that folder
AIRFLOW_SECTIONS = "#airflow-sections"  # ... so: that airflow.cfg without [rest_api_plugin]
# Airflow's type functions, by name, as far as the daemon can check them itself.
_INT_TYPES = {"int", "positive_int"}
_FLOAT_TYPES = {"float"}
_DATE_TYPES = {"parse", "parsedate"}


def _type_name(action: argparse.Action) -> str:
    func = action.type
    if func is None:
        return "str"
    name = getattr(func, "__name__", "")
    if name in _INT_TYPES or (name.startswith("positive_int") and "int" in name):
        return "int"
    if name in _FLOAT_TYPES:
        return "float"
    if name in _DATE_TYPES or "timezone" in getattr(func, "__module__", ""):
        return "date"
    return "str"


def _kind(action: argparse.Action) -> str:
    if isinstance(action, argparse._CountAction):
        return "count"
    if action.nargs == 0:  # store_true, store_false, store_const
        return "flag"
    return "value"


def _text(help_text: object) -> str:
    """Help as plain text: Airflow builds some lazily (an object that only looks like str)."""
    if not help_text or help_text == argparse.SUPPRESS:
        return ""
    return str(help_text)


def _argument(action: argparse.Action) -> dict[str, Any]:
    choices = action.choices
    return {
        "dest": str(action.dest),
        "flags": [str(flag) for flag in action.option_strings],
        "kind": _kind(action),
        "nargs": action.nargs if isinstance(action.nargs, (str, int)) else None,
        "choices": [str(choice) for choice in choices] if choices else None,
        "type": "bool" if _kind(action) == "flag" else _type_name(action),
        "required": bool(action.required),
        "help": _text(action.help),
    }


def _commands(parser: argparse.ArgumentParser, words: list[str]) -> list[dict[str, Any]]:
    """Every leaf command under ``parser`` (a command is a parser without subcommands)."""
    found: list[dict[str, Any]] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: _text(choice.help) for choice in action._choices_actions}
        for name, sub in action.choices.items():
            sub_words = [*words, str(name)]
            nested = _commands(sub, sub_words)
            if nested:
                found.extend(nested)
                continue
            arguments = [
                _argument(a)
                for a in sub._actions
                if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
                and a.dest != argparse.SUPPRESS
            ]
            help_text = helps.get(name) or _text(sub.description)
            found.append({"words": sub_words, "help": help_text, "arguments": arguments})
    return found


def _stamps() -> list[list[Any]]:
    """[path, stamp] for what the CLI depends on: the airflow package (its __init__.py is
    replaced by an upgrade), the distributions installed beside it (a provider brings
    commands) and airflow.cfg (the executor and auth manager add commands). Found without
    importing Airflow, and taken before it is imported: a change made meanwhile shows up
    later. Folders' own mtimes are no stamp: Python writing __pycache__ changes them."""
    spec = importlib.util.find_spec("airflow")
    package = (list(spec.submodule_search_locations or []) or [""])[0] if spec else ""
    home = os.path.expanduser(os.environ.get("AIRFLOW_HOME") or "~/airflow")
    config = os.environ.get("AIRFLOW_CONFIG") or os.path.join(home, "airflow.cfg")
    paths = [
        os.path.join(package, "__init__.py"),
        os.path.join(os.path.dirname(package), "*.dist-info"),
    ]
    config_stamp = os.path.expanduser(config) + AIRFLOW_SECTIONS
    return [[path, _stamp(path)] for path in [*paths, config_stamp]]


def _stamp(path: str) -> list[int] | None:
    """As bridge.catalogue.cli_cache.stamp() (this runs under Airflow's interpreter and cannot
    import the bridge): a file's inode, mtime and size; for FOLDER/*.dist-info, the number
    and a digest of the names of the distributions installed there; for FILE#airflow-sections,
    the number and a digest of that airflow.cfg's lines outside [rest_api_plugin]."""
    try:
        if path.endswith(AIRFLOW_SECTIONS):
            with open(path[: -len(AIRFLOW_SECTIONS)], "rb") as config:
                kept, ours = [], False
                for line in config.read().splitlines():
                    header = line.strip()
                    if header.startswith(b"[") and header.endswith(b"]"):
                        ours = header == b"[rest_api_plugin]"
                    if not ours:
                        kept.append(line)
            digest = hashlib.sha256(b"\n".join(kept)).digest()
            return [len(kept), int.from_bytes(digest[:7], "big"), 0]
        if path.endswith(DISTRIBUTIONS):
            folder = os.path.dirname(path)
            names = sorted(n for n in os.listdir(folder) if n.endswith(".dist-info"))
            digest = hashlib.sha256("\n".join(names).encode()).digest()
            return [len(names), int.from_bytes(digest[:7], "big"), 0]
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_ino, info.st_mtime_ns, info.st_size]


def _task_logs() -> dict[str, Any] | None:
    """Where this installation writes task logs ([logging], with the environment's
    overrides, as its tasks see it); None when its configuration cannot say."""
    try:
        from airflow.configuration import conf  # type: ignore[import-not-found]

        return {
            "base_log_folder": conf.get("logging", "base_log_folder"),
            "log_filename_template": conf.get("logging", "log_filename_template"),
            "remote_logging": conf.getboolean("logging", "remote_logging", fallback=False),
            "remote_base_log_folder": conf.get("logging", "remote_base_log_folder", fallback=""),
        }
    except Exception as exc:  # an old or broken configuration: no task logs, still a CLI
        print(f"task log settings not read: {exc!r}", file=sys.stderr)
        return None


def main() -> int:
    report = sys.stdout
    sys.stdout = sys.stderr  # keep whatever Airflow prints out of the report
    stamps = _stamps()
    from airflow import __version__  # type: ignore[import-not-found]
    from airflow.cli.cli_parser import get_parser  # type: ignore[import-not-found]

    commands = _commands(get_parser(), [])
    document = {
        "version": str(__version__),
        "commands": commands,
        "stamps": stamps,
        "task_logs": _task_logs(),
    }
    report.write(json.dumps(document) + "\n")
    report.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
