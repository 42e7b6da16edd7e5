"""The catalogue's vocabulary: an API, its arguments and their traits, how it maps onto each
Airflow major version's CLI, and the plan (argv) a validated call becomes.

The table of the seed's APIs (:mod:`bridge.catalogue.table`) is written in these terms; the
HTTP layer dispatches on :attr:`Api.handler` and reads argument traits (upload, document,
server path, secret) instead of knowing API or argument names.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.catalogue.installed_cli import InstalledCli
from bridge.config.tokens import Scope
from bridge.text.redact import Secret


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
    FILE = "file"  # an uploaded file (multipart), staged by the upload code
    DOCUMENT = "document"  # text that may be large (JSON to import); a value or a file part


MAX_VALUE_LENGTH = 65536  # characters of any value but a document
MAX_INT_DIGITS = 18  # every count, port and id the CLI takes fits; int() never sees 4300 digits
# What each kind accepts, for the generated reference and the OpenAPI document.
KIND_HELP = {
    Kind.TEXT: "Free text, passed on unchanged as one argument of its own.",
    Kind.BOOL: "true/false; also 1/0, on/off, yes/no, or the name alone for true.",
    Kind.ID: "1-250 of A-Z a-z 0-9 _ . - (Airflow's key characters), not starting with -.",
    Kind.RUN_ID: "1-250 of A-Z a-z 0-9 _ . ~ : + - (Airflow's default run_id pattern), not "
    "starting with -.",
    Kind.DATE: "An ISO date or date-time, such as 2017-01-02 or 2017-01-02T03:04:05; a space "
    "instead of T and a trailing Z are accepted (sent on as T and +00:00), and so is an offset "
    "whose + arrived as a space (2017-01-02T03:04:05 00:00 is sent on as +00:00).",
    Kind.DATE_OR_RUN: "A date (as for date) when it starts with YYYY-, else a run_id.",
    Kind.JSON: 'A JSON object, such as {"key": 1}.',
    Kind.INT: f"A non-negative whole number of at most {MAX_INT_DIGITS} digits.",
    Kind.DAGS_PATH: "A file or folder inside the dags folder; relative to it.",
    Kind.SERVER_PATH: "A path inside the folders the operator allows (allowed_paths); "
    "relative to the first of them. A file the command writes must be new and named NAME.EXT: "
    "neither it nor NAME may exist.",
    Kind.FILE: "A file, uploaded as a multipart/form-data file field.",
    Kind.DOCUMENT: f"Text (the JSON to import) not held to the {MAX_VALUE_LENGTH}-character "
    "limit, only to the body size limits; also accepted as a multipart file field.",
}


class Handler(enum.Enum):
    """Who answers an API: the CLI, or the bridge itself."""

    CLI = "cli"  # the catalogue's argv, run through the command path
    AIRFLOW_VERSION = "airflow_version"  # the version detected at startup
    BRIDGE_VERSION = "bridge_version"
    DEPLOY_DAG = "deploy_dag"  # upload, check, install, serialize (bridge.deploy)
    REFRESH_DAG = "refresh_dag"  # re-serialize a known DAG (bridge.deploy)
    DELETE_DAG = "delete_dag"  # remove a DAG's file through the deploy target (bridge.deploy)
    TASK_LOG = "task_log"  # a task try's log file (bridge.task_logs), followed live

    @property
    def streams(self) -> bool:
        """It can answer as a stream (stream=true|ndjson), not only with one envelope."""
        return self in (Handler.CLI, Handler.TASK_LOG)


@dataclass(frozen=True)
class Arg:
    """One argument of an API, under the seed's name, with its traits."""

    name: str
    kind: Kind
    description: str
    required: bool = False
    secret: Secret = Secret.NONE  # how much of the value logs and echoes may show
    choices: tuple[str, ...] | None = None  # the only values the CLI takes
    # Read by the bridge itself on every major (trigger_dag's wait), never part of the argv:
    # Api.use_of says so wherever the argument is described.
    for_bridge: bool = False
    # A server path the command creates: it must not exist yet, nor its name without the
    # extension (graphviz writes its source there before the image).
    new_file: bool = False
    # Why a call giving it must name the API in full in cli_commands (a regex flag...).
    named_only: str | None = None
    config_section: bool = False  # names sections of airflow.cfg: never the bridge's own

    def __post_init__(self) -> None:
        # A JSON object's sensitive keys are masked wherever it is shown, as conn_extra's.
        if self.kind is Kind.JSON and self.secret is Secret.NONE:
            object.__setattr__(self, "secret", Secret.EXTRA)

    @property
    def is_upload(self) -> bool:
        """Sent as a file part of a multipart body, staged on disk as it arrives."""
        return self.kind is Kind.FILE

    @property
    def takes_file_part(self) -> bool:
        """A multipart file part is accepted for it (an upload, or a document read as text)."""
        return self.kind in (Kind.FILE, Kind.DOCUMENT)


@dataclass(frozen=True)
class Context:
    """What validation needs to know about the host."""

    airflow_major: int
    dags_folder: Path
    allowed_paths: tuple[Path, ...]
    cli: InstalledCli | None = None  # the installed CLI's parser, where it could be read
    cli_commands: tuple[str, ...] = ()  # the operator's patterns in force (named_only)


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
    # (dag_id, run_id): RUN_DATE in argv stands for that run's logical date, looked up first
    # (Airflow 2's dags state takes only a date).
    run_of: tuple[str, str] | None = None

    @property
    def needs_file(self) -> bool:
        return self.export_file or self.import_content is not None


# Stands for the daemon's temp file in a Plan's argv. It holds a NUL, which no request value
# can (values with NUL are refused), so it can never be confused with one.
EXCHANGE_FILE = "\x00exchange-file"
RUN_DATE = "\x00run-date"


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


class After(enum.Enum):
    """What the bridge does once an API's command succeeded (bridge.calls), its lines
    streamed like the command's and its findings in the result."""

    DAG_REPORT = "dag_report"  # count the DAGs Airflow knows, list the files that do not import


class Confinement(enum.Enum):
    """What a token confined to some DAGs may do with an API (bridge.calls.confined), reviewed
    API by API in the table; an API it does not mark, and every command of the installed CLI,
    is refused to such a token."""

    REFUSED = "refused"  # it cannot be confined to a DAG (no dag_id, or it reaches past one)
    ONE_DAG = "one_dag"  # names one DAG in dag_id and acts on that DAG alone
    DAG_LIST = "dag_list"  # lists DAGs: answered whole, with the caller's DAGs only
    NO_DAG = "no_dag"  # says nothing of any DAG (the versions)


class Use(enum.Enum):
    """What one Airflow major does with an argument of an API (:meth:`Api.use_of`)."""

    BRIDGE = "bridge"  # the bridge reads it itself, the same on every major
    POSITIONAL = "positional"
    OPTION = "option"  # detail: the CLI flag
    IGNORED = "ignored"  # detail: why (the envelope's warning says so)
    REFUSED = "refused"  # detail: why (answered 400)
    BUILT = "built"  # a builder decides (see the API's description)
    NONE = "none"  # the API itself has no equivalent on this major


REMOVED_OPTION = "the option was removed from the CLI"


@dataclass(frozen=True)
class ArgUse:
    """What one Airflow major does with an argument: the one answer the argv, the API
    reference, the OpenAPI document and the test page all give."""

    use: Use
    detail: str = ""

    def note(self, major: int) -> str | None:
        """A sentence for a reader, where the argument is not simply passed on."""
        if self.use is Use.BRIDGE:
            return "The bridge's own: the bridge itself acts on it, the same on every Airflow major"
        if self.use is Use.IGNORED:
            return f"Ignored on Airflow {major}.x (a warning says so): {self.detail}"
        if self.use is Use.REFUSED:
            return f"No equivalent on Airflow {major}.x, answers 400: {self.detail}"
        return None


@dataclass(frozen=True)
class Unavailable:
    """The API has no equivalent on this Airflow version; ``why`` says what to use."""

    why: str


Mapping_ = Cli | Unavailable | Builder


@dataclass(frozen=True)
class Api:
    """One seed API: its arguments, who answers it and, per Airflow major, how it runs."""

    name: str
    description: str
    args: tuple[Arg, ...] = ()
    by_major: Mapping[int, Mapping_] = field(default_factory=dict)
    handler: Handler = Handler.CLI
    requires_command: str | None = None  # top-level CLI command/group that must exist
    methods: tuple[str, ...] = ("GET", "POST")
    # A service (it runs in the foreground unless daemon=true): the name Airflow gives its
    # files, $AIRFLOW_HOME/airflow-<service>.pid, .out, .err.
    service: str | None = None
    # The CLI echoes secrets in its output (connections add prints the URI): mask them.
    mask_output: bool = False
    # Derives extra envelope fields from the CLI's parsed JSON output (e.g. trigger_dag's run).
    summarize: Callable[[Any], dict[str, Any]] | None = None
    # Envelope fields the API adds when its command succeeded: the state it leaves behind
    # (Airflow 3's pause and unpause print the state from before the change).
    leaves: Mapping[str, Any] = field(default_factory=dict)
    # What follows its command once it succeeded (None: nothing).
    after: After | None = None
    # Arguments it does not know are a 400 (a command of the installed CLI), not a warning
    # (a seed API: old scripts send extra keys).
    strict_arguments: bool = False
    # What a token must be allowed to call it (bridge.config.tokens.Scope): every command the
    # catalogue does not know better is admin.
    scope: Scope = Scope.ADMIN
    # What a DAG-confined token may do with it; its arguments that name files on the server
    # (subdir, ...) and ``confined_refuses`` are refused to such a token.
    confinement: Confinement = Confinement.REFUSED
    confined_refuses: tuple[str, ...] = ()
    # Boolean arguments set for a DAG-confined token wherever the installed major has them
    # (Airflow 2's clear would otherwise follow ExternalTaskMarkers into other DAGs).
    confined_sets: tuple[str, ...] = ()
    # The Airflow majors whose command logs other DAGs' files on stdout whatever it is given
    # (reviewed against 2.11 and 3.3): a DAG-confined token is shown neither stream.
    confined_hides_stdout: tuple[int, ...] = ()

    @property
    def long_running(self) -> bool:
        return self.service is not None

    @property
    def internal(self) -> bool:
        """Answered by the bridge itself, not by one CLI command."""
        return self.handler is not Handler.CLI

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)

    @property
    def secrets(self) -> dict[str, Secret]:
        """Argument name -> how much of its value may be shown."""
        return {arg.name: arg.secret for arg in self.args}

    def use_of(self, arg: Arg, major: int) -> ArgUse:
        """What Airflow ``major`` does with ``arg`` of this API (validation, argv and every
        description of the API read it here)."""
        if self.internal or arg.for_bridge:
            return ArgUse(Use.BRIDGE)
        mapping = self.by_major.get(major)
        if mapping is None or isinstance(mapping, Unavailable):
            return ArgUse(Use.NONE)
        if not isinstance(mapping, Cli):
            return ArgUse(Use.BUILT)
        if arg.name in mapping.positionals:
            return ArgUse(Use.POSITIONAL)
        if arg.name in mapping.options:
            return ArgUse(Use.OPTION, mapping.options[arg.name])
        if arg.name in mapping.ignored:
            return ArgUse(Use.IGNORED, mapping.ignored[arg.name])
        return ArgUse(Use.REFUSED, mapping.reasons.get(arg.name, REMOVED_OPTION))

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
