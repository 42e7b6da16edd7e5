"""The keys of how Airflow's commands run.

Part of :class:`bridge.config.settings.Settings`, which puts every group together.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config import parsers
from bridge.config.keys import setting


@dataclass(frozen=True)
class CommandKeys:
    """How Airflow's commands run: the CLI, its limits, waits and shares, which commands answer."""

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
