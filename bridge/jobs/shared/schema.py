"""The jobs database's tables, the bridge's own, in the schema ``airflow_rest_bridge``: made
and migrated here, one bridge at a time (an advisory lock), never touching Airflow's tables
when the database is Airflow's.

- ``bridges``: one row per start of a bridge (an *incarnation*), with its heartbeat.
- ``jobs``: each job's record (what its status shows), the incarnation that runs it, its
  output's size, and a cancel another bridge asked for.
- ``job_output``: the output in pieces of at most :data:`PIECE` bytes, by byte offset.

Live changes travel by ``NOTIFY`` on :data:`CHANNEL`, sent by the statement that makes them:
``o JOB SIZE`` (more output), ``r JOB`` (a new record), ``c JOB`` (cancel it).
"""

from __future__ import annotations

import urllib.parse

import asyncpg

SCHEMA = "airflow_rest_bridge"
CHANNEL = "airflow_rest_bridge_jobs"
PIECE = 64 * 1024  # the largest output row: a long burst is several
# The errors that mean "the database is not there now" (the connection, not the statement):
# only these make the bridge take it for gone and reconnect. InternalClientError: a
# connection the server cut in the middle of a statement; the server's classes 08
# (connection exception) and 57P (shut down, cannot connect now).
UNREACHABLE = (
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    OSError,
    TimeoutError,
)
# Any error of a statement: a full disk, a value it refuses, besides the above.
FAILED = (*UNREACHABLE, asyncpg.PostgresError)


class JobsDatabaseUnusable(RuntimeError):
    """The bridge cannot keep its jobs in jobs_database (not reached, a schema too new)."""


MIGRATIONS = (
    # 1: bridges, jobs and their output.
    f"""
    CREATE TABLE {SCHEMA}.bridges (
        incarnation text PRIMARY KEY,
        instance text NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        heartbeat_seconds double precision NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now(),
        stopped_at timestamptz
    );
    CREATE TABLE {SCHEMA}.jobs (
        job_id text PRIMARY KEY,
        incarnation text NOT NULL,
        instance text NOT NULL,
        state text NOT NULL,
        owner text,
        record jsonb NOT NULL,
        output_size bigint NOT NULL DEFAULT 0,
        cancel_by text,
        ended_at double precision
    );
    CREATE INDEX jobs_running ON {SCHEMA}.jobs (incarnation) WHERE ended_at IS NULL;
    CREATE TABLE {SCHEMA}.job_output (
        job_id text NOT NULL REFERENCES {SCHEMA}.jobs (job_id) ON DELETE CASCADE,
        start_at bigint NOT NULL,
        stream text NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (job_id, start_at)
    );
    """,
)


def connection_string(url: str) -> str:
    """The SQLAlchemy URL as libpq takes it: without the ``+driver`` part of its scheme."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(scheme="postgresql"))


async def migrate(connection: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> int:
    """Make the schema and tables, or bring them up to date; the version they are at."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", SCHEMA)
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (version integer NOT NULL)"
        )
        found = await connection.fetchval(f"SELECT max(version) FROM {SCHEMA}.schema_version")
        version = int(found or 0)
        if version > len(MIGRATIONS):
            raise JobsDatabaseUnusable(
                f"jobs_database holds schema version {version}, newer than this bridge's "
                f"{len(MIGRATIONS)}: upgrade this bridge"
            )
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            await connection.execute(statements)
            await connection.execute(
                f"INSERT INTO {SCHEMA}.schema_version (version) VALUES ($1)", number
            )
        return len(MIGRATIONS)


def said(exc: BaseException) -> str:
    """An error in words, never with the URL (it may hold a password)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
