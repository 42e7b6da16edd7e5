"""The API catalogue's model: argument kinds, validation, and turning a request into an argv.

The table itself (every seed API) lives in :mod:`bridge.apis`; this module knows how to read
it. Validation happens here, before anything runs: a request either becomes a :class:`Call`
holding a safe argv, or raises :class:`RequestError` with a message for the 4xx envelope.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bridge.config import parse_bool


class RequestError(ValueError):
    """The request cannot be run as asked; ``status`` is the HTTP code to answer with."""

    def __init__(
        self, message: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class Kind(enum.Enum):
    """How an argument's text is checked and what value it becomes."""

    TEXT = "text"  # free text; only ever an argv element of its own
    BOOL = "bool"  # present-without-value or true/1/on/yes; false/0/off/no
    ID = "id"  # dag_id, task_id, pool name, variable key, conn_id: Airflow's key characters
    RUN_ID = "run_id"  # Airflow's default allowed_run_id_pattern
    DATE = "date"  # ISO date or datetime, e.g. the seed's 2017-01-02T03:04:05
    DATE_OR_RUN = "date_or_run"  # a logical date, or a run_id (the CLI takes either)
    JSON = "json"  # a JSON object (conf, task_params)
    INT = "int"  # a non-negative whole number
    DAGS_PATH = "dags_path"  # subdir: must stay inside the dags folder
    SERVER_PATH = "server_path"  # pid/log/stdout files etc.: inside the allowed folders
    FILE = "file"  # an uploaded file (multipart)
    DOCUMENT = "document"  # text that may be large (JSON to import); bounded by the body cap


# Airflow's KEY_REGEX for dag/task ids and variable/pool/connection keys, and its default
# allowed_run_id_pattern. A leading '-' is refused on top so that no id can look like an option.
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+\-]{1,250}$")
MAX_VALUE_LENGTH = 65536
MAX_INT_DIGITS = 18  # every count, port and id the CLI takes fits; int() never sees 4300 digits


@dataclass(frozen=True)
class Arg:
    """One argument of an API, under the seed's name."""

    name: str
    kind: Kind
    description: str
    required: bool = False


@dataclass(frozen=True)
class Context:
    """What validation needs to know about the host."""

    airflow_major: int
    dags_folder: Path
    allowed_paths: tuple[Path, ...]


Values = dict[str, Any]
Builder = Callable[[Values, Context], "Plan"]


@dataclass(frozen=True)
class Plan:
    """What a builder decided: the argv after ``airflow``, plus notes for the envelope."""

    argv: list[str]
    warnings: tuple[str, ...] = ()
    json_output: bool = False  # the CLI was asked for -o json; parse stdout
    # import/export: the CLI reads or writes a file the daemon owns; EXCHANGE_FILE in argv
    # stands for its path. Callers never name a path on the server.
    import_content: str | None = None
    export_file: bool = False

    @property
    def needs_file(self) -> bool:
        return self.export_file or self.import_content is not None


# Stands for the daemon's temp file in a Plan's argv. It holds a NUL, which no request value
# can (values with NUL are refused), so it can never be confused with one.
EXCHANGE_FILE = "\x00exchange-file"


@dataclass(frozen=True)
class Cli:
    """How an API becomes ``airflow WORDS [--flag=value ...] -- POSITIONALS`` on one version.

    ``options`` maps argument names to CLI flags; booleans become the bare flag. Arguments of
    the API that appear in neither ``options`` nor ``positionals`` are refused with
    ``reasons[name]`` (or a generic reason), except those in ``ignored``, which only warn.
    """

    words: tuple[str, ...]
    positionals: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    fixed: tuple[str, ...] = ()
    ignored: Mapping[str, str] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    also_required: tuple[str, ...] = ()
    json_capable: bool = False  # accepts -o json; the caller may ask with output=json
    always_json: bool = False  # always ask for -o json (the bridge reads the result)


@dataclass(frozen=True)
class Unavailable:
    """The API has no equivalent on this Airflow version; ``why`` says what to use."""

    why: str


Mapping_ = Cli | Unavailable | Builder


@dataclass(frozen=True)
class Api:
    """One seed API: its arguments and, per Airflow major version, how it runs."""

    name: str
    description: str
    args: tuple[Arg, ...] = ()
    by_major: Mapping[int, Mapping_] = field(default_factory=dict)
    internal: bool = False  # answered by the bridge itself, not by a CLI command
    requires_command: str | None = None  # top-level CLI command/group that must exist
    methods: tuple[str, ...] = ("GET", "POST")
    long_running: bool = False  # a service that runs in the foreground unless daemon=true
    # The CLI echoes secrets in its output (connections add prints the URI): mask them.
    mask_output: bool = False
    # Derives extra envelope fields from the CLI's parsed JSON output (e.g. trigger_dag's run).
    summarize: Callable[[Any], dict[str, Any]] | None = None

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)

    def availability(self, major: int, commands: frozenset[str]) -> str | None:
        """None if the API can run here, else why not (and what to use instead)."""
        if self.internal:
            return None
        mapping = self.by_major.get(major)
        if mapping is None:
            return f"{self.name} is not supported on Airflow {major}.x"
        if isinstance(mapping, Unavailable):
            return mapping.why
        if self.requires_command and self.requires_command not in commands:
            return (
                f"'airflow {self.requires_command}' is not available on this Airflow "
                "installation (its provider is not installed or not enabled by the executor)"
            )
        return None


# --- value checks ----------------------------------------------------------------------------


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
            raise RequestError(
                f"argument '{arg.name}' must be true/false (also 1/0, on/off, yes/no)"
            ) from None
    value = text.strip()
    if kind in (Kind.TEXT, Kind.DOCUMENT):
        return text
    if kind is Kind.ID:
        return _identifier(arg.name, value, _ID, "letters, digits, '_', '.' and '-'")
    if kind is Kind.RUN_ID:
        return _identifier(arg.name, value, _RUN_ID, "letters, digits and _.~:+-")
    if kind is Kind.DATE:
        return _date(arg.name, value)
    if kind is Kind.DATE_OR_RUN:
        if value[:4].isdigit() and value[4:5] == "-":
            return _date(arg.name, value)
        return _identifier(
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
        return str(confine(arg.name, value, ctx.allowed_paths, base=ctx.allowed_paths[0]))
    raise RequestError(f"argument '{arg.name}' must be sent as a file upload (multipart)")


def _identifier(name: str, value: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not value:
        raise RequestError(f"argument '{name}' is empty")
    if value.startswith("-"):
        raise RequestError(f"argument '{name}' must not start with '-': {value!r}")
    if not pattern.match(value):
        raise RequestError(f"argument '{name}' may only contain {allowed}: {value!r}")
    return value


def _date(name: str, value: str) -> str:
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


# --- from request values to argv --------------------------------------------------------------


def collect(api: Api, raw: Mapping[str, list[str]], ctx: Context) -> Values:
    """Validate every argument of ``api`` present in ``raw`` (name -> texts)."""
    values: Values = {}
    for arg in api.args:
        texts = raw.get(arg.name)
        if not texts:
            continue
        if len(texts) > 1 and len(set(texts)) > 1:
            raise RequestError(f"argument '{arg.name}' was given {len(texts)} different values")
        if arg.kind is Kind.FILE:
            continue  # uploads are handled by the upload code, not as text
        values[arg.name] = parse_value(arg, texts[0], ctx)
    missing = [
        a.name for a in api.args if a.required and a.kind is not Kind.FILE and a.name not in values
    ]
    if missing:
        raise RequestError(f"The argument(s) {missing} are required")
    return values


def plan_cli(api: Api, values: Values, ctx: Context, want_json: bool) -> Plan:
    """Turn validated values into the argv (after ``airflow``) for this Airflow version."""
    mapping = api.by_major[ctx.airflow_major]
    if isinstance(mapping, Unavailable):  # pragma: no cover - availability is checked first
        raise RequestError(mapping.why)
    if not isinstance(mapping, Cli):
        plan = mapping(values, ctx)
        if want_json and not plan.json_output:
            raise RequestError(f"output=json is not supported for {api.name} as called")
        return plan
    return _plan_from_cli(api, mapping, values, ctx, want_json)


def _plan_from_cli(api: Api, cli: Cli, values: Values, ctx: Context, want_json: bool) -> Plan:
    warnings: list[str] = []
    missing = [name for name in cli.also_required if name not in values]
    if missing:
        raise RequestError(
            f"The argument(s) {missing} are required for {api.name} on Airflow "
            f"{ctx.airflow_major}.x"
        )
    options: list[str] = []
    for name, value in values.items():
        if name in cli.positionals or name == "output" or value is False:
            continue  # output=json is handled below; a false boolean adds nothing
        if name in cli.ignored:
            warnings.append(f"'{name}' was ignored: {cli.ignored[name]}")
            continue
        flag = cli.options.get(name)
        if flag is None:
            why = cli.reasons.get(name, "the option was removed from the CLI")
            raise RequestError(
                f"argument '{name}' of {api.name} has no equivalent on Airflow "
                f"{ctx.airflow_major}.x: {why}"
            )
        if value is True:
            options.append(flag)
        elif value is not False:
            options.append(f"{flag}={value}")
    if want_json and not (cli.json_capable or cli.always_json):
        raise RequestError(f"output=json is not supported for {api.name}")
    json_output = want_json or cli.always_json
    if json_output:
        options.append("--output=json")
    positionals = [values[name] for name in cli.positionals if name in values]
    argv = [*cli.words, *cli.fixed, *options]
    if positionals:
        argv += ["--", *positionals]
    return Plan(argv=argv, warnings=tuple(warnings), json_output=json_output)
