"""What a command of the installed CLI, and each of its arguments, may do: classified from the
CLI's own parser (words, dests, flags, help, choices) and a reviewed table per Airflow minor.

Every rule fails closed: a shape the table does not know gets the strictest class the facts
allow. A value argument whose dest or help names a file, path, save, log, pid or output is a
file the command *writes* unless the table says it only reads it, or is no file at all; a
command in a group that holds secrets (connections, variables, config) answers a wildcard
only when the table says it reveals nothing.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bridge.catalogue.installed_cli import CliArgument, CliCommand
from bridge.catalogue.model import Confinement

# The Airflow minors whose parsers the table below was reviewed against (2.11.2, 3.3.2).
REVIEWED_MINORS = ("2.11", "3.3")


class FileUse(enum.Enum):
    """What a command does with the path an argument names."""

    NONE = "none"  # not a path
    READS = "reads"  # a file it reads: inside allowed_paths
    WRITES = "writes"  # a file it creates: inside allowed_paths, and never an existing one


@dataclass(frozen=True)
class Reviewed:
    """One argument someone read the help and code of, on the minors named."""

    minors: tuple[str, ...]
    command: str
    dest: str
    use: FileUse


_BOTH = REVIEWED_MINORS
_ON_2 = ("2.11",)
_ON_3 = ("3.3",)
FILE_TABLE: tuple[Reviewed, ...] = (
    # Named like a file by their help, but no path: column names, table names, a module path.
    Reviewed(_BOTH, "dags.list", "columns", FileUse.NONE),  # "(default: [... 'fileloc' ...])"
    Reviewed(_BOTH, "db.clean", "tables", FileUse.NONE),  # "Options: [... 'log' ...]"
    Reviewed(_BOTH, "db.drop-archived", "tables", FileUse.NONE),
    Reviewed(_BOTH, "db.export-archived", "tables", FileUse.NONE),
    Reviewed(_ON_3, "db-manager.migrate", "import_path", FileUse.NONE),  # a Python import path
    Reviewed(_ON_3, "db-manager.downgrade", "import_path", FileUse.NONE),
    Reviewed(_ON_3, "db-manager.reset", "import_path", FileUse.NONE),
    Reviewed(_ON_2, "webserver", "access_logformat", FileUse.NONE),  # a gunicorn format
    # Files the command only reads.
    *(
        Reviewed(_BOTH, f"{group}.import", "file", FileUse.READS)
        for group in ("connections", "pools", "variables")
    ),
    Reviewed(_ON_2, "roles.import", "file", FileUse.READS),
    Reviewed(_ON_2, "users.import", "import", FileUse.READS),
    Reviewed(_BOTH, "kerberos", "keytab", FileUse.READS),
    Reviewed(_ON_2, "tasks.run", "cfg_path", FileUse.READS),
    Reviewed(_ON_3, "dags.test", "dagfile_path", FileUse.READS),
    Reviewed(_ON_3, "api-server", "log_config", FileUse.READS),
    Reviewed(_ON_3, "api-server", "ssl_ca_file", FileUse.READS),
    *(
        Reviewed(minors, service, dest, FileUse.READS)
        for minors, service in ((_ON_2, "webserver"), (_ON_3, "api-server"))
        for dest in ("ssl_cert", "ssl_key")
    ),
)
_FILE_TABLE = {(minor, r.command, r.dest): r.use for r in FILE_TABLE for minor in r.minors}
# A word of a dest or help that names a file (tokens: 'dagfile_path' -> dagfile, path).
_FILE_WORD = re.compile(
    r"file\w*|\w*files?|\w*paths?|saves?|log|logs|logging|\w*logfile|pid|outputs?|keytab"
    r"|dir|directory|folder|cert\w*"
)


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("_", " "))


def names_a_file(argument: CliArgument) -> bool:
    """Its dest or help has a word that names a file, path, save, log, pid or output."""
    words = _tokens(argument.dest) + _tokens(argument.help)
    return any(_FILE_WORD.fullmatch(word) for word in words)


def file_use(command: CliCommand, argument: CliArgument, minor: str) -> FileUse:
    """What ``command`` does with the path ``argument`` names on this minor. A flag and a
    value bound to choices name no path; otherwise the reviewed table decides, and a shape it
    does not know that names a file is a file written."""
    if argument.kind != "value" or argument.choices:
        return FileUse.NONE
    reviewed = _FILE_TABLE.get((minor, command.name, argument.dest))
    if reviewed is not None:
        return reviewed
    return FileUse.WRITES if names_a_file(argument) else FileUse.NONE


# --- arguments that answer only when the command is named in full -----------------------------

REGEX = "selects by a regex or pattern (it can reach every DAG or task)"
ALL = "is an 'all' flag"
REVEALS = "reveals secret values"
UPLOADS = "sends data to a service outside the host"
DROPS = "deletes, drops or clears data"
# Reviewed on 2.11 and 3.3: the arguments the rules below would miss or misname.
RISK_TABLE = {
    "show_values": REVEALS,  # connections list, variables list, config list
    "file_io": UPLOADS,  # info: uploads the report to file.io
    "drop_archives": DROPS,  # db export-archived
    "clear_only": DROPS,  # dags reserialize (2.x): clears the serialized DAGs
    "reset_dagruns": DROPS,  # dags backfill (2.x): deletes existing runs
    "skip_archive": DROPS,  # db clean: purged rows are not kept
    "clear_task_instances": DROPS,  # partitions clear
}
# Reviewed: their help names a clear or a regex, and they select or drop nothing.
NO_RISK = frozenset({"dry_run", "exclude_parentdag", "exclude_subdags", "ignore_dependencies"})
_DROP_WORDS = re.compile(r"\b(?:delete[sd]?|drop|purge[sd]?|clear(?:ed|s)?|wipe)\b", re.I)


def risk(argument: CliArgument) -> str | None:
    """Why a call giving ``argument`` must name its command in full (None: it need not)."""
    if argument.dest in RISK_TABLE:
        return RISK_TABLE[argument.dest]
    if argument.dest in NO_RISK:
        return None
    words = set(_tokens(argument.dest)) | set(_tokens(" ".join(argument.flags)))
    if words & {"regex", "regexp", "pattern"} or re.search(r"\bregex", argument.help, re.I):
        return REGEX
    if "all" in words:
        return ALL
    if argument.kind != "value" and _DROP_WORDS.search(argument.help):
        return DROPS  # a switch whose help says it deletes (a value's help names ids)
    return None


def is_config_section(argument: CliArgument) -> bool:
    """The value names sections of Airflow's configuration (``config get-value SECTION``,
    ``--section``); ``--ignore-section`` reads nothing."""
    words = _tokens(argument.dest)
    return argument.kind == "value" and "section" in words and "ignore" not in words


# --- commands that answer only when named in full ---------------------------------------------

_SCHEMA = frozenset({"migrate", "upgrade", "downgrade", "init", "reset", "drop-archived"})
_DELETES = ("delete", "clean", "reset", "drop", "remove", "stop", "purge")
_INTERACTIVE = frozenset({"shell", "standalone"})
SECRET_GROUPS = ("connections", "variables", "config")
# Commands of those groups that reveal nothing a caller did not send, reviewed on 2.11 and
# 3.3 (the deletes answer only when named, as every delete does). Any other is SECRETS.
REVEALS_NOTHING = frozenset(
    {
        *("connections.add", "connections.create-default-connections", "connections.delete"),
        *("connections.import", "connections.test"),
        *("variables.delete", "variables.import", "variables.set"),
        "config.lint",
    }
)

SERVICE = "starts or stops a service (it has --daemon or --pid, or is a celery command)"
SCHEMA = (
    "changes a database schema (a command named " + ", ".join(sorted(_SCHEMA)) + " in any "
    "group: db, db-manager, ...)"
)
CONFIG = "changes Airflow's configuration (a config command other than lint)"
SECRETS = (
    "reveals secrets (a connections, variables or config command that shows values, or an export)"
)
ROTATION = "rotates encryption keys"
DELETES = "deletes data (a word with " + ", ".join(_DELETES) + ")"
CLEARS = "clears runs or task instances"
INTERACTIVE = "is interactive (" + ", ".join(sorted(_INTERACTIVE)) + ")"
EXPLICIT_ONLY_REASONS = (
    *(SERVICE, SCHEMA, CONFIG, SECRETS, ROTATION, DELETES, CLEARS, INTERACTIVE),
)
ARGUMENT_REASONS = (REGEX, ALL, REVEALS, UPLOADS, DROPS)


def explicit_only(command: CliCommand) -> str | None:
    """Why a wildcard pattern must not reach ``command`` (None when it may)."""
    words = command.words
    if any(a.dest in ("daemon", "pid") for a in command.arguments) or words[0] == "celery":
        return f"it {SERVICE}"
    if words[-1] in _SCHEMA:
        return f"it {SCHEMA}"
    if words[0] in SECRET_GROUPS and command.name not in REVEALS_NOTHING:
        config_change = words[0] == "config" and words[-1] not in ("get-value", "list")
        return f"it {CONFIG if config_change else SECRETS}"
    if any("export" in word for word in words):
        return f"it {SECRETS}"
    if any("rotate" in word for word in words):
        return f"it {ROTATION}"
    if any(part in word for word in words for part in _DELETES):
        return f"it {DELETES}"
    if any("clear" in word for word in words):
        return f"it {CLEARS}"
    if words[-1] in _INTERACTIVE:
        return f"it {INTERACTIVE}"
    return None


# The installed CLI's reports on DAGs, read on the minors reviewed: each reads what it reports
# and changes nothing; a one-DAG report covers the DAG its required dag_id names alone, a list
# has the dag_id in every row. They need the `read` scope (every other command `admin`), and a
# DAG-confined token may call them (bridge.calls.confined), for its own DAGs. Every other
# command, and these on a minor nobody reviewed, is refused to such a token.
DAG_REPORTS: dict[str, Confinement] = {
    **{
        name: Confinement.ONE_DAG
        for name in (
            "dags.details",
            "dags.list-runs",
            "dags.next-execution",
            "dags.state",
            "tasks.failed-deps",
            "tasks.list",
            "tasks.state",
            "tasks.states-for-dag-run",
        )
    },
    "dags.list": Confinement.DAG_LIST,
    "dags.list-jobs": Confinement.DAG_LIST,
}


def dag_report(command: CliCommand, minor: str) -> Confinement:
    """The class of ``command`` if it is a reviewed report on DAGs on this minor and the
    parser still shows the shape it was reviewed for; refused (no report) otherwise."""
    reviewed = DAG_REPORTS.get(command.name, Confinement.REFUSED)
    if minor not in REVIEWED_MINORS or reviewed is Confinement.REFUSED:
        return Confinement.REFUSED
    if any(risk(argument) for argument in command.arguments):
        return Confinement.REFUSED
    if reviewed is Confinement.ONE_DAG:
        dag_id = command.argument("dag_id")
        one_dag = dag_id is not None and (
            dag_id.required or (dag_id.positional and dag_id.nargs not in ("?", "*"))
        )
        return reviewed if one_dag else Confinement.REFUSED
    return reviewed if command.json_capable else Confinement.REFUSED
