"""The keys of detached jobs and their webhooks.

Part of :class:`bridge.config.settings.Settings`, which puts every group together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.config import parsers
from bridge.config.keys import setting


@dataclass(frozen=True)
class JobKeys:
    """Detached jobs: where they are kept, for how long, and their webhooks."""

    jobs_folder: Path | None = setting(
        None,
        parsers.optional_path,
        "Where jobs (detach=true) keep their record and output, so that both outlive the "
        "connection and a restart of the daemon.",
        unset="<Airflow home>/.airflow-rest-bridge-jobs",
        example="/var/lib/airflow-rest-bridge/jobs",
        restart=True,
    )
    jobs_database: str | None = setting(
        None,
        parsers.database_url,
        "A PostgreSQL SQLAlchemy URL (it may be Airflow's own sql_alchemy_conn): jobs are kept "
        "there instead of jobs_folder, in tables of the bridge's own (schema "
        "airflow_rest_bridge, made and migrated by the bridge), and every bridge naming the "
        "same database lists, follows and cancels every job, whichever bridge runs it.",
        secret=True,
        example="postgresql://airflow:secret@db.example.com:5432/airflow",
        restart=True,
    )
    bridge_instance: str | None = setting(
        None,
        parsers.instance_name,
        "This bridge's name among those sharing jobs_database: each job records the bridge "
        "that runs it, and /metrics and the audit lines name it.",
        unset="<host name>:<listen_port>",
        example="airflow-a:8082",
        restart=True,
    )
    jobs_heartbeat: float = setting(
        2.0,
        parsers.positive_seconds,
        "Seconds between a bridge's heartbeats in jobs_database; a bridge silent for three "
        "of them has its running jobs marked lost by any peer, which says which bridge lost "
        "them.",
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
