"""The statements the jobs database runs, each one round trip: what a change writes and the
notification that tells the other bridges about it go together (schema: :mod:`.schema`)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from bridge.jobs.shared.schema import CHANNEL, SCHEMA

Pool = asyncpg.Pool


def as_json(record: dict[str, Any]) -> str:
    """The record as jsonb takes it: a NUL (which jsonb refuses) becomes U+FFFD."""
    return json.dumps(_without_nul(record), default=str)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


async def register(
    pool: Pool, incarnation: str, instance: str, host: str, pid: int, heartbeat: float
) -> None:
    await pool.execute(
        f"INSERT INTO {SCHEMA}.bridges (incarnation, instance, host, pid, heartbeat_seconds) "
        "VALUES ($1, $2, $3, $4, $5)",
        incarnation,
        instance,
        host,
        pid,
        heartbeat,
    )


async def beat(connection: asyncpg.Connection, incarnation: str, timeout: float) -> None:
    await connection.execute(
        f"UPDATE {SCHEMA}.bridges SET heartbeat_at = now() WHERE incarnation = $1",
        incarnation,
        timeout=timeout,
    )


async def stopped(pool: Pool, incarnation: str) -> None:
    await pool.execute(
        f"UPDATE {SCHEMA}.bridges SET stopped_at = now() WHERE incarnation = $1", incarnation
    )


async def insert_job(
    pool: Pool, job_id: str, incarnation: str, instance: str, record: dict[str, Any]
) -> None:
    owner = record.get("owner")
    await pool.execute(
        f"INSERT INTO {SCHEMA}.jobs (job_id, incarnation, instance, state, owner, record) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        job_id,
        incarnation,
        instance,
        record["state"],
        owner if isinstance(owner, str) else None,
        as_json(record),
    )


async def append(pool: Pool, job_id: str, stream: str, offset: int, pieces: list[bytes]) -> None:
    """Output from byte ``offset`` in one transaction (all pieces or none), the job's new
    size, and ``o JOB SIZE``. A piece already at its offset is replaced: one the job took
    for lost (its commit's answer did not arrive) gives way to what the job wrote next."""
    async with pool.acquire() as connection, connection.transaction():
        at = offset
        for data in pieces:
            await connection.execute(
                f"INSERT INTO {SCHEMA}.job_output (job_id, start_at, stream, data) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (job_id, start_at) "
                "DO UPDATE SET stream = EXCLUDED.stream, data = EXCLUDED.data",
                job_id,
                at,
                stream,
                data,
            )
            at += len(data)
        await connection.execute(
            f"WITH sized AS (UPDATE {SCHEMA}.jobs SET output_size = $2 WHERE job_id = $1) "
            "SELECT pg_notify($3, 'o ' || $1 || ' ' || $2::text)",
            job_id,
            at,
            CHANNEL,
        )


async def write_record(
    pool: Pool, job_id: str, record: dict[str, Any], ended_at: float | None
) -> None:
    """The job's record (and its state), and ``r JOB``. The bridge that runs the job writes
    it, and its word is the last; where a peer had marked the job lost meanwhile (this
    bridge's heartbeat was late), the record says so."""
    await pool.execute(
        f"WITH written AS (UPDATE {SCHEMA}.jobs SET state = $3, ended_at = $4, record = "
        "CASE WHEN jobs.record ? 'lost_by' AND NOT $2::jsonb ? 'lost_by' THEN $2::jsonb || "
        "jsonb_build_object('warning', concat_ws('; ', nullif($2::jsonb->>'warning', ''), "
        "'a peer had marked it lost meanwhile (' || (jobs.record->>'warning') || ')')) "
        "ELSE $2::jsonb END WHERE job_id = $1) SELECT pg_notify($5, 'r ' || $1)",
        job_id,
        as_json(record),
        record.get("state"),
        ended_at,
        CHANNEL,
    )


async def pieces(pool: Pool, job_id: str, offset: int, limit: int) -> list[asyncpg.Record]:
    """The piece byte ``offset`` falls in and those after it that start before
    ``offset + limit``, in order."""
    return await pool.fetch(
        f"SELECT start_at, stream, data FROM {SCHEMA}.job_output WHERE job_id = $1 "
        f"AND start_at >= coalesce((SELECT max(start_at) FROM {SCHEMA}.job_output "
        "WHERE job_id = $1 AND start_at <= $2), 0) AND start_at < $2 + $3 ORDER BY start_at",
        job_id,
        offset,
        limit,
    )


async def job(pool: Pool, job_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT job_id, record, output_size FROM {SCHEMA}.jobs WHERE job_id = $1", job_id
    )


async def every_job(pool: Pool) -> list[asyncpg.Record]:
    """Every job, newest first (ids sort by the time they were made)."""
    return await pool.fetch(
        f"SELECT job_id, record, output_size FROM {SCHEMA}.jobs ORDER BY job_id DESC"
    )


async def retention(pool: Pool) -> list[asyncpg.Record]:
    """What the retention rules look at, newest first."""
    return await pool.fetch(
        f"SELECT job_id, owner, ended_at FROM {SCHEMA}.jobs ORDER BY job_id DESC"
    )


async def remove(pool: Pool, job_ids: list[str]) -> None:
    await pool.execute(f"DELETE FROM {SCHEMA}.jobs WHERE job_id = ANY($1::text[])", job_ids)


async def ask_cancel(pool: Pool, job_id: str, why: str) -> bool:
    """Note the cancel on a job still running, and ``c JOB``; False if it had ended."""
    row = await pool.fetchrow(
        f"WITH asked AS (UPDATE {SCHEMA}.jobs SET cancel_by = $2 "
        "WHERE job_id = $1 AND ended_at IS NULL RETURNING job_id) "
        "SELECT job_id, pg_notify($3, 'c ' || job_id) FROM asked",
        job_id,
        why,
        CHANNEL,
    )
    return row is not None


async def cancel_asked(pool: Pool, job_id: str) -> str | None:
    value = await pool.fetchval(f"SELECT cancel_by FROM {SCHEMA}.jobs WHERE job_id = $1", job_id)
    return str(value) if value is not None else None


async def cancels_for(pool: Pool, incarnation: str) -> list[asyncpg.Record]:
    """The running jobs of ``incarnation`` another bridge asked to cancel."""
    return await pool.fetch(
        f"SELECT job_id, cancel_by FROM {SCHEMA}.jobs WHERE incarnation = $1 "
        "AND ended_at IS NULL AND cancel_by IS NOT NULL",
        incarnation,
    )


async def mark_lost(pool: Pool, incarnation: str, lapse: int) -> list[asyncpg.Record]:
    """The running jobs of every other incarnation that stopped, or missed ``lapse`` of its
    own heartbeats (by the database's clock): ``lost``, the warning naming the bridge;
    ``r JOB`` for each."""
    return await pool.fetch(
        f"WITH silent AS (SELECT incarnation, instance, heartbeat_at FROM {SCHEMA}.bridges "
        "WHERE incarnation <> $1 AND (stopped_at IS NOT NULL "
        # A restart of the server gives every bridge a lapse from then to beat again.
        "OR greatest(heartbeat_at, pg_postmaster_start_time()) "
        "< now() - make_interval(secs => heartbeat_seconds * $2))), "
        f"lost AS (UPDATE {SCHEMA}.jobs j SET state = 'lost', "
        "ended_at = extract(epoch FROM now()), "
        "record = j.record || jsonb_build_object('state', 'lost', "
        "'ended_at', extract(epoch FROM now()), 'lost_by', s.instance, 'warning', "
        "concat_ws('; ', nullif(j.record->>'warning', ''), format('bridge %s, which ran "
        "this job, stopped sending heartbeats (the last at %s): how its command ended is "
        "unknown; the output up to then is kept', s.instance, "
        "to_char(s.heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')))) "
        "FROM silent s WHERE j.incarnation = s.incarnation AND j.ended_at IS NULL "
        "RETURNING j.job_id, s.instance) "
        "SELECT job_id, instance, pg_notify($3, 'r ' || job_id) FROM lost",
        incarnation,
        lapse,
        CHANNEL,
    )
