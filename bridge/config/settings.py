"""Settings: every key of airflow.cfg's ``[rest_api_plugin]`` section, each declared once.

A key is a field of :class:`Settings` made by :func:`setting`: its name, its parser, its default
and its help live together here, and everything else is derived from them: reading the file
and the environment (:mod:`bridge.config.load`), the sample cfg and the settings reference
(:mod:`bridge.config.reference`), and which keys a reload cannot change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.config import parsers
from bridge.config.environment import for_child
from bridge.config.keys import Key, setting
from bridge.config.tokens import TokenTable

SECTION = "rest_api_plugin"
DEFAULT_PORT = 8799  # not one of Airflow's own ports (8080, 8793, 8794, 5555)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

HOME = Path("~/airflow").expanduser()  # Airflow's own default home


@dataclass(frozen=True)
class Settings:
    """Everything the daemon needs to know, resolved at startup and again on reload."""

    # Where Airflow lives: from airflow.cfg's location, $AIRFLOW_HOME and [core] dags_folder.
    config_path: Path | None = None
    airflow_home: Path = HOME
    dags_folder: Path = HOME / "dags"
    named_tokens: TokenTable = dataclasses.field(default_factory=TokenTable)
    # Airflow's own listening ports in this configuration, and whose (listen_port is not one)
    airflow_ports: tuple[tuple[int, str], ...] = ()
    # deploy_bundle's git connection, when the bundle names no repo_url: the connection's
    # host is the URL, asked of Airflow at each deploy (it may live in Airflow's database).
    deploy_git_connection: str | None = None

    log_loading: bool = setting(
        False,
        parsers.parse_bool,
        "Log the resolved settings once at startup (the token is never logged).",
        seed=True,
    )
    filter_loading_messages_in_cli_response: bool = setting(
        True,
        parsers.parse_bool,
        "Drop Airflow's start-up noise from command output: Python warnings printed while "
        "Airflow imports, and the log lines about plugin setup, filling the DagBag, loading DAG "
        "bundles, the auth backend, the executor and graphviz. Other lines, task logs included, "
        "are kept. False passes output on unchanged, but for the bridge's own secrets (always "
        "masked).",
        seed=True,
    )
    rest_api_plugin_http_token_header_name: str = setting(
        "rest_api_plugin_http_token",
        parsers.header_name,
        "The request header that carries the token (letters, digits, - and _).",
        seed=True,
    )
    rest_api_plugin_expected_http_token: str | None = setting(
        None,
        parsers.optional_text,
        "The token every API call must send. Unset or empty: no authentication.",
        seed=True,
        secret=True,
        example="a-long-random-secret",
    )
    tokens_file: Path | None = setting(
        None,
        parsers.optional_path,
        "Named tokens with scopes, written by 'airflow-rest-bridge token add|revoke' (hashes "
        "only; owner-only mode). Set: every call needs a token, named or the seed's one.",
        example="/etc/airflow-rest-bridge/tokens.json",
    )
    metrics_token: str | None = setting(
        None,
        parsers.optional_text,
        "A token for GET /metrics alone, sent as 'Authorization: Bearer ...' (Prometheus' "
        "authorization setting); the API's token is accepted too. Unset: /metrics is read "
        "with the API's token, or by anyone when the API has none.",
        secret=True,
        example="another-long-random-secret",
    )
    listen_host: str = setting(
        "127.0.0.1",
        lambda text: text.strip() or "127.0.0.1",
        "Address to listen on (--host overrides it).",
        restart=True,
    )
    listen_port: int = setting(
        DEFAULT_PORT,
        parsers.port,
        "Port to listen on, 1-65535 (--port overrides it). One of Airflow's own ports in "
        "this configuration is refused: [webserver] web_server_port and [api] port (8080), "
        "[logging] worker_log_server_port (8793) and trigger_log_server_port (8794), "
        "[celery] flower_port (5555).",
        restart=True,
    )
    allow_unauthenticated_remote_access: bool = setting(
        False,
        parsers.parse_bool,
        "Allow a listen address outside the loopback network (127.0.0.0/8, ::1, localhost) "
        "without a token (otherwise the daemon refuses to start).",
    )
    allowed_hosts: frozenset[str] = setting(
        frozenset(),
        parsers.name_set,
        "Comma-separated host names requests may be addressed to besides IP addresses and "
        "localhost, such as a reverse proxy's public name. A request for any other name is "
        "refused (421): a web page could otherwise reach the daemon through a name it controls "
        "(DNS rebinding).",
        example="airflow-bridge.example.com",
    )
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting(
        (),
        parsers.network_list,
        "Comma-separated addresses or networks of reverse proxies in front of the bridge. From "
        "them, X-Forwarded-For names the client (in the access and audit logs) and "
        "X-Forwarded-Proto and X-Forwarded-Host the address the page shows; from anyone else "
        "those headers are ignored.",
        example="127.0.0.1, 10.1.0.0/16",
    )
    airflow_executable: str = setting(
        "",
        parsers.text,
        "Path of Airflow's airflow CLI.",
        restart=True,
        unset="the airflow beside the daemon's own Python (same virtualenv), else the first "
        "airflow on PATH",
        example="/path/to/airflow-venv/bin/airflow",
    )
    airflow_python: str | None = setting(
        None,
        parsers.optional_text,
        "The Python interpreter of that Airflow installation: it imports uploaded DAG files "
        "(deploy_dag) and runs the warm helper.",
        restart=True,
        unset="the interpreter in the #! line of the airflow script (through env if it says "
        "#!/usr/bin/env python3)",
        example="/path/to/airflow-venv/bin/python",
    )
    dag_check_timeout: float = setting(
        120.0,
        parsers.positive_seconds,
        "Seconds the import check of an uploaded DAG file may take; longer is a 400 and "
        "nothing is deployed.",
    )
    service_start_timeout: float = setting(
        20.0,
        parsers.positive_seconds,
        "Seconds a service started with daemon=true has to write its pid file; the call then "
        "checks that it still runs a moment later, and answers 500 (with the end of its "
        "stderr file) when it does not.",
    )
    command_timeout: float = setting(
        600.0,
        parsers.positive_seconds,
        "Seconds a command may run; then its process group is stopped and the call answers 504.",
    )
    kill_grace_period: float = setting(
        5.0,
        parsers.positive_seconds,
        "Seconds between SIGTERM and SIGKILL when a process group is stopped; also how long "
        "output is still read after a command exited while something it left behind holds its "
        "output open, and how long running commands may finish when the daemon stops.",
    )
    max_concurrent_commands: int = setting(
        4,
        parsers.positive_int,
        "API calls that may run Airflow commands at once (streams, detached jobs, services, "
        "deploy_dag and refresh_dag count one each); further calls wait their turn "
        "(max_waiting_calls, slot_wait_timeout).",
    )
    max_waiting_calls: int = setting(
        64,
        parsers.non_negative_int,
        "Calls that may wait, in arrival order, for one of max_concurrent_commands; one more "
        "is refused with 429 and Retry-After. 0: none wait, every call over the limit is a 429.",
    )
    slot_wait_timeout: float = setting(
        120.0,
        parsers.positive_seconds,
        "Seconds a call waits for a slot; then it answers 503 with Retry-After (nothing ran).",
    )
    token_share: float = setting(
        0.5,
        parsers.share,
        "The share of max_concurrent_commands, of max_waiting_calls, of max_follows and of "
        "the request bodies in flight (max_body_bytes_in_flight) one token may hold at once "
        "(at least one of each); the seed token and admin tokens too, but with two slots (or "
        "follows) or more the last is kept for them. Over it: the call waits for its token's "
        "own slot, or 429.",
    )
    max_follows: int = setting(
        64,
        parsers.positive_int,
        "Follows open at once: a job's output followed (GET .../jobs/ID/output), "
        "task_log&follow=true and trigger_dag&wait=true (for the whole wait; it holds a slot "
        "only while a command runs). One more is refused with 429 and Retry-After before "
        "anything starts; one token holds at most its token_share of them.",
    )
    max_body_bytes_in_flight: int = setting(
        64 * 1024 * 1024,
        parsers.size,
        "Request bodies being received at once, in bytes (64 MiB; a K, M or G suffix): one "
        "that would go over is refused with 429 before it is read (a token: token_share).",
    )
    body_timeout: float = setting(
        300.0,
        parsers.positive_seconds,
        "Seconds a request's whole body may take to arrive (a stall of 30 s ends it sooner); "
        "then 408.",
    )
    max_upload_size: int = setting(
        10 * 1024 * 1024,
        parsers.size,
        "Largest deploy_dag upload or import file, in bytes (10 MiB); a K, M or G suffix "
        "(powers of 1024, optional trailing B) is accepted. Larger: 413.",
    )
    max_output_size: int = setting(
        16 * 1024 * 1024,
        parsers.size,
        "Cap on each of stdout and stderr kept in a buffered response, in characters (16 MiB; "
        "same suffixes). Longer output keeps its head and its tail (whole lines), with a line "
        "between them saying how many characters were left out, all within the cap; the "
        "envelope's warning says so. Streams are not capped.",
    )
    kill_on_disconnect: bool = setting(
        True,
        parsers.parse_bool,
        "Stop a command's process group when its client goes away (a stream or a buffered "
        "call). False lets it run on until it ends or times out (a stream's as a job).",
    )
    reattach_wait: float = setting(
        30.0,
        parsers.non_negative_seconds,
        "Seconds the command of a stream whose client left waits for one to reattach (GET "
        ".../jobs/ID/output) before kill_on_disconnect stops it; 0: at once.",
    )
    warm_helper: bool = setting(
        True,
        parsers.parse_bool,
        "Fork commands from a warm, pre-imported Airflow interpreter (milliseconds instead of "
        "seconds per call). False starts a cold airflow for every command.",
        restart=True,
    )
    disabled_apis: frozenset[str] = setting(
        frozenset(),
        parsers.name_set,
        "Comma-separated API names (any case) that answer 400, disabled by the operator. A "
        "name that is no API and no command of the installed Airflow is named in a warning "
        "at start and at each reload (it disables nothing).",
    )
    cli_commands: tuple[str, ...] = setting(
        (
            *("cheat-sheet", "dags.details", "dags.list", "dags.list-import-errors"),
            *("dags.list-jobs", "dags.list-runs", "dags.next-execution", "dags.report"),
            *("db.check", "db.check-migrations", "jobs.check"),
            *("pools.get", "pools.list", "providers.*", "tasks.failed-deps", "tasks.list"),
            *("tasks.state", "tasks.states-for-dag-run"),
        ),
        parsers.pattern_list,
        "Comma-separated patterns (* and ? as in file names) of the installed CLI's commands "
        "that answer as api=WORDS.JOINED.BY.DOTS, e.g. dags.*, config.get-value. The default "
        "changes nothing, writes no file and reveals no secret. A command that starts a "
        "service, changes a schema or the configuration, reveals secrets, rotates keys, "
        "deletes or clears data or is interactive answers only when named in full, and so "
        "does a call with a regex, 'all', show_values, file_io or drop argument. "
        "Empty: only the seed's APIs.",
        example="dags.*, tasks.*, config.get-value",
    )
    allowed_paths: tuple[Path, ...] = setting(
        (),
        parsers.path_list,
        "Comma-separated folders that file arguments (pid, stdout, stderr, log-file, keytab, "
        "flower_conf, cfg_path, save...) must stay inside; relative values are taken relative "
        "to the first (created, owner-only, when a command is to write there). A file a "
        "command of the installed CLI writes must be new. An empty value refuses all such "
        "arguments.",
        unset="<Airflow home>/.airflow-rest-bridge-files",
        example="/path/to/airflow-home/.airflow-rest-bridge-files",
    )
    backups_folder: Path = setting(
        HOME / "dag_backups",
        parsers.path,
        "Where deploy_dag force=true keeps the file it replaces, and delete_dag the file it "
        "removes (deploy_target = folder).",
        unset="<Airflow home>/dag_backups",
        example="/path/to/airflow-home/dag_backups",
    )
    backups_to_keep: int = setting(
        10,
        parsers.non_negative_int,
        "Backups kept per DAG file name; 0 keeps all.",
    )
    deploy_target: str = setting(
        "folder",
        parsers.deploy_target,
        "Where deploy_dag puts a DAG file and delete_dag removes it: 'folder', the dags folder "
        "of this host (the file it replaces is kept in backups_folder), or 'git', a commit "
        "pushed to deploy_git_branch of deploy_git_url, for every host that syncs its DAGs "
        "from there (git-sync, Airflow 3's GitDagBundle); the git history keeps every version.",
        example="git",
    )
    deploy_bundle: str | None = setting(
        None,
        parsers.bundle_name,
        "Airflow 3: deploy to the git repository of this DAG bundle of [dag_processor] "
        "dag_bundle_config_list (a GitDagBundle): deploy_target becomes git, and the URL "
        "(the bundle's repo_url, else its git connection's host), the branch (tracking_ref) "
        "and the folder (subdir) are the bundle's. Read again on reload.",
        example="dags-git",
    )
    deploy_git_url: str | None = setting(
        None,
        parsers.git_url,
        "The repository a git deploy pushes to, as git clones it (https://, ssh://, user@host:"
        "path or a local path). Credentials come from git's own configuration (a credential "
        "helper, an SSH key); one written into the URL is kept out of logs and answers.",
        secret=True,
        example="https://git.example.com/data/airflow-dags.git",
    )
    deploy_git_branch: str = setting(
        "main",
        parsers.git_branch,
        "The branch a git deploy commits to; it must exist in the repository. Never "
        "force-pushed: a branch that moved on is fetched and the deploy replayed onto it.",
    )
    deploy_git_subdir: str = setting(
        "",
        parsers.repository_subdir,
        "The folder of the repository that holds the DAG files (what the hosts' dags folder "
        "or bundle subdir shows); empty: the repository's root.",
        example="dags",
    )
    jobs_folder: Path | None = setting(
        None,
        parsers.optional_path,
        "Where jobs (detach=true) keep their record and output, so that both outlive the "
        "connection and a restart of the daemon.",
        unset="<Airflow home>/.airflow-rest-bridge-jobs",
        example="/var/lib/airflow-rest-bridge/jobs",
        restart=True,
    )
    job_output_limit: int = setting(
        64 * 1024 * 1024,
        parsers.size,
        "Output kept on disk per job, in bytes (64 MiB; same suffixes); beyond it the job's "
        "output ends with a line saying where it was cut, and the command runs on.",
    )
    jobs_to_keep: int = setting(
        100,
        parsers.non_negative_int,
        "Finished jobs kept per token (each token's newest; with job_max_age, whichever "
        "removes first); 0 keeps all.",
    )
    job_max_age: float = setting(
        7 * 24 * 3600.0,
        parsers.positive_seconds,
        "Seconds a finished job and its output are kept (7 days).",
    )
    job_webhooks: tuple[str, ...] = setting(
        (),
        parsers.url_list,
        "Comma-separated http(s) URLs: when a job ends, its record is POSTed to each as JSON, "
        "signed with job_webhook_secret (X-Bridge-Signature: sha256=<hex HMAC of the body>), "
        "retried with backoff for job_webhook_retry_for seconds. Only the operator names them; "
        "a caller never does.",
        example="https://ci.example.com/hooks/airflow-bridge",
    )
    job_webhook_secret: str | None = setting(
        None,
        parsers.optional_text,
        "The HMAC-SHA256 key job webhooks are signed with; required when job_webhooks is set.",
        secret=True,
        example="a-long-random-webhook-secret",
    )
    job_webhook_apis: frozenset[str] = setting(
        frozenset(),
        parsers.name_set,
        "Comma-separated API names whose jobs are sent to job_webhooks; empty: every API.",
    )
    job_webhook_tokens: frozenset[str] = setting(
        frozenset(),
        parsers.name_set,
        "Comma-separated token names whose jobs are sent to job_webhooks ('seed': the seed's "
        "token, '-': no token asked for); empty: every token.",
    )
    job_webhook_retry_for: float = setting(
        3600.0,
        parsers.positive_seconds,
        "Seconds a job webhook that fails (no answer, not 2xx) is retried, with backoff from 1 "
        "s up to 60 s between tries; then it is given up, logged and counted in /metrics.",
    )
    tls_cert_file: Path | None = setting(
        None,
        parsers.optional_path,
        "PEM certificate: with tls_key_file the daemon serves HTTPS; unset: plain HTTP.",
        restart=True,
        example="/etc/airflow-rest-bridge/cert.pem",
    )
    tls_key_file: Path | None = setting(
        None,
        parsers.optional_path,
        "PEM private key; set together with tls_cert_file.",
        restart=True,
        example="/etc/airflow-rest-bridge/key.pem",
    )

    @property
    def auth_enabled(self) -> bool:
        """True when requests must carry the token header."""
        return bool(self.rest_api_plugin_expected_http_token) or self.tokens_file is not None

    @property
    def jobs_path(self) -> Path:
        """jobs_folder, or its place in the Airflow home."""
        return self.jobs_folder or self.airflow_home / ".airflow-rest-bridge-jobs"

    @property
    def git_clone_path(self) -> Path:
        """The bridge's own clone of deploy_git_url: one per repository and branch, so a
        changed URL never pushes an old clone's commits anywhere."""
        key = hashlib.sha256(f"{self.deploy_git_url}\n{self.deploy_git_branch}".encode())
        return self.airflow_home / ".airflow-rest-bridge-git" / key.hexdigest()[:16]

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The set values of the keys declared secret (the seed's token, metrics_token):
        masked in every output, echo and log line."""
        values = (getattr(self, item.name) for item, key in keys() if key.secret)
        return tuple(value for value in values if value)

    def child_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment an Airflow CLI child gets (:func:`.environment.for_child`)."""
        return for_child(self, base)


def keys() -> Iterator[tuple[dataclasses.Field[Any], Key]]:
    """Every key of the section, in declaration order, with what is declared about it."""
    for item in dataclasses.fields(Settings):
        key = item.metadata.get("key")
        if key is not None:
            yield item, key


KNOWN_KEYS = tuple(item.name for item, _ in keys())
RESTART_KEYS = tuple(item.name for item, key in keys() if key.restart)


class CurrentSettings:
    """The settings in force: replaced as a whole by a reload (SIGHUP); a call reads them
    once, at its start, and keeps what it read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self) -> Settings:
        return self.settings
