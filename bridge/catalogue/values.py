"""Checking one argument's text against its kind, before anything runs: it becomes a safe
value or a :class:`~bridge.errors.RequestError` saying what is wrong."""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bridge.catalogue.model import MAX_INT_DIGITS, MAX_VALUE_LENGTH, Arg, Context, Kind
from bridge.config.parsers import BOOL_HINT, parse_bool
from bridge.config.settings import SECTION
from bridge.errors import RequestError

# Airflow's KEY_REGEX for dag/task ids and variable/pool/connection keys, and its default
# allowed_run_id_pattern, without a leading '-' so that no id can look like an option. The
# OpenAPI document publishes the same patterns.
ID_PATTERN = r"^[A-Za-z0-9_.][A-Za-z0-9_.\-]{0,249}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9_.~:+][A-Za-z0-9_.~:+\-]{0,249}$"
_ID = re.compile(ID_PATTERN)
_RUN_ID = re.compile(RUN_ID_PATTERN)


def parse_value(arg: Arg, text: str, ctx: Context) -> Any:
    """Check one argument's text against its kind; raise RequestError saying what is wrong."""
    if "\x00" in text:
        raise RequestError(f"argument '{arg.name}' contains a NUL character")
    if len(text) > MAX_VALUE_LENGTH and arg.kind is not Kind.DOCUMENT:
        raise RequestError(f"argument '{arg.name}' is longer than {MAX_VALUE_LENGTH} characters")
    kind = arg.kind
    if kind is Kind.BOOL:
        if text == "":
            return True
        try:
            return parse_bool(text)
        except ValueError:
            raise RequestError(f"argument '{arg.name}' must be {BOOL_HINT}") from None
    value = text.strip()
    if arg.config_section:
        _not_the_bridges_section(arg.name, value)
    if arg.choices is not None and value not in arg.choices:
        raise RequestError(
            f"argument '{arg.name}' must be one of {list(arg.choices)}, got {value!r}"
        )
    if kind in (Kind.TEXT, Kind.DOCUMENT):
        return text
    if kind is Kind.ID:
        return identifier(arg.name, value, _ID, "letters, digits, '_', '.' and '-'")
    if kind is Kind.RUN_ID:
        return identifier(arg.name, value, _RUN_ID, "letters, digits and _.~:+-")
    if kind is Kind.DATE:
        return _date(arg.name, value)
    if kind is Kind.DATE_OR_RUN:
        if value[:4].isdigit() and value[4:5] == "-":
            return _date(arg.name, value)
        return identifier(
            arg.name, value, _RUN_ID, "a date such as 2017-01-02T03:04:05 or a run_id"
        )
    if kind is Kind.JSON:
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise RequestError(f"argument '{arg.name}' is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise RequestError(f"argument '{arg.name}' must be a JSON object, like {{\"key\": 1}}")
        return json.dumps(parsed)
    if kind is Kind.INT:
        # ASCII only: str.isdigit() is also true for '²', which int() refuses.
        if not (value.isascii() and value.isdigit()) or len(value) > MAX_INT_DIGITS:
            raise RequestError(
                f"argument '{arg.name}' must be a whole number of at most {MAX_INT_DIGITS} "
                f"digits, got {value[:40]!r}"
            )
        return str(int(value))
    if kind is Kind.DAGS_PATH:
        return str(confine(arg.name, value, (ctx.dags_folder,), base=ctx.dags_folder))
    if kind is Kind.SERVER_PATH:
        if not ctx.allowed_paths:
            raise RequestError(
                f"argument '{arg.name}' names a path on the host, and the operator allows "
                "none (allowed_paths is empty)"
            )
        path = confine(arg.name, value, ctx.allowed_paths, base=ctx.allowed_paths[0])
        return str(new_file(arg.name, path, ctx.allowed_paths[0]) if arg.new_file else path)
    raise RequestError(f"argument '{arg.name}' must be sent as a file upload (multipart)")


def _not_the_bridges_section(name: str, value: str) -> None:
    """The bridge's own section holds its token: Airflow's config commands never read it."""
    for section in re.split(r"[\s,]+", value):
        if section.casefold() == SECTION.casefold():
            raise RequestError(
                f"argument '{name}' names [{SECTION}], the bridge's own section of airflow.cfg "
                "(it holds the bridge's token): Airflow's config commands cannot read it here"
            )


def new_file(name: str, path: Path, first_folder: Path) -> Path:
    """A file a command will create: never an existing one, nor its twin without the
    extension (graphviz writes its source to NAME before the image NAME.EXT, and may then
    delete it), so a name must have an extension."""
    stem, dot, _ = path.name.rpartition(".")
    if not dot or not stem:
        raise RequestError(
            f"argument '{name}' names a file the command writes: name it NAME.EXT "
            f"(got {path.name!r})"
        )
    for taken in (path, path.with_name(stem)):
        if os.path.lexists(taken):
            raise RequestError(
                f"argument '{name}' names a file the command writes, and {taken.name!r} "
                "exists: a file argument never overwrites a file"
            )
    if path.parent == first_folder.resolve():
        first_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def identifier(name: str, value: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not value:
        raise RequestError(f"argument '{name}' is empty")
    if value.startswith("-"):
        raise RequestError(f"argument '{name}' must not start with '-': {value!r}")
    if not pattern.match(value):
        raise RequestError(f"argument '{name}' may only contain {allowed}: {value!r}")
    return value


# A date-time whose UTC offset lost its '+' to URL decoding (a '+' that was not sent as %2B
# arrives as a space): 2019-01-11T12:00:00 00:00.
_SPACE_FOR_PLUS = re.compile(r"(\S+[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})")


def _date(name: str, value: str) -> str:
    lost_plus = _SPACE_FOR_PLUS.fullmatch(value)
    if lost_plus:
        value = f"{lost_plus[1]}+{lost_plus[2]}"
    candidate = value.replace(" ", "T", 1)
    candidate = candidate[:-1] + "+00:00" if candidate.endswith("Z") else candidate
    try:
        if "T" in candidate:
            datetime.fromisoformat(candidate)
        else:
            date.fromisoformat(candidate)
    except ValueError:
        raise RequestError(
            f"argument '{name}' must be a date like 2017-01-02 or 2017-01-02T03:04:05, "
            f"got {value!r}"
        ) from None
    return candidate


def confine(name: str, value: str, roots: tuple[Path, ...], base: Path) -> Path:
    """Resolve ``value`` (relative to ``base``) and insist it stays inside one of ``roots``."""
    if not value:
        raise RequestError(f"argument '{name}' is empty")
    resolved = (base / value).resolve()
    for root in roots:
        real_root = root.resolve()
        if resolved == real_root or real_root in resolved.parents:
            return resolved
    allowed = ", ".join(str(r) for r in roots)
    raise RequestError(f"argument '{name}' must name a path inside {allowed}; got {value!r}")
