"""The jobs database's board on its own, against the suite's PostgreSQL server: output in
bounded pieces read back from any offset, the cap, a connection the server cut (a gap said,
never a failed job), retention, and a start that cannot use the database. Two daemons
sharing it, with Airflow, are tests/test_integration_shared_jobs.py."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bridge.errors import RequestError
from bridge.jobs.job import Job
from bridge.jobs.shared import queries
from bridge.jobs.shared.board import LAPSE, SharedJobs
from bridge.jobs.shared.schema import PIECE, SCHEMA, JobsDatabaseUnusable, connection_string
from bridge.jobs.spool import Piece
from tests.helpers import POSTGRES, free_port, pg, warm_mode

pytestmark = [
    # No Airflow here, but the suite's PostgreSQL server is only there in the integration
    # passes (make integration); once is enough.
    pytest.mark.airflow,
    pytest.mark.skipif(not POSTGRES, reason="BRIDGE_TEST_POSTGRES is not set"),
    pytest.mark.skipif(not warm_mode(), reason="runs in the warm pass"),
]


async def ended(job: Job) -> None:
    while not job.ended:
        await job.changed()


@pytest.fixture
async def database() -> AsyncIterator[str]:
    name = "bridge_store_" + uuid.uuid4().hex[:12]
    await asyncio.to_thread(pg, "createdb", name)
    yield f"{POSTGRES}/{name}"
    await asyncio.to_thread(pg, "dropdb", name)


@pytest.fixture
async def board(database: str) -> AsyncIterator[SharedJobs]:
    jobs = SharedJobs(database, "store-test", heartbeat=0.5, stop_wait=1.0)
    await jobs.load(keep=100, max_age=3600)
    yield jobs
    await jobs.close()


async def test_output_is_kept_in_bounded_pieces_and_read_from_any_offset(
    board: SharedJobs,
) -> None:
    job = await board.create({"api": "test", "owner": "t-1"}, limit=1024 * 1024)
    await job.set_state("running")
    big = "".join(f"line {n:06d}\n" for n in range(20_000))  # 240 000 bytes: four pieces
    await job.write("stdout", "hello\n")
    await job.write("stderr", big)
    await job.write("stdout", "bye\n")
    whole = b"hello\n" + big.encode() + b"bye\n"
    assert job.size == len(whole)
    sizes = await board.link.connected().fetch(
        f"SELECT octet_length(data) AS n FROM {SCHEMA}.job_output WHERE job_id = $1", job.job_id
    )
    assert max(row["n"] for row in sizes) == PIECE and len(sizes) == 2 + 4
    for offset, limit in ((0, 64 * 1024), (3, 10), (6, PIECE + 7), (len(whole) - 5, 100)):
        pieces = await job.store.read(offset, limit)
        assert b"".join(piece.data for piece in pieces) == whole[offset : offset + limit]
        assert pieces[0].offset == offset
    assert await job.store.read(0, 8) == [Piece("stdout", 0, b"hello\n"), Piece("stderr", 6, b"li")]
    assert await job.store.read(len(whole)) == []
    await job.finish("succeeded", {"http_response_code": 200})


async def test_a_job_elsewhere_is_seen_through_the_database(
    board: SharedJobs, database: str
) -> None:
    other = SharedJobs(database, "other", heartbeat=0.5, stop_wait=1.0)
    await other.load(keep=100, max_age=3600)
    try:
        job = await other.create({"api": "test", "owner": "t-1"}, limit=1024)
        await job.set_state("running")
        view = await board.find(job.job_id)
        assert view is not None and view.elsewhere and view.state == "running"
        assert view.record["bridge"] == "other"
        # Looked up again (at once, as a status poll and a follow do): the same view, the
        # one notifications keep current.
        again = await asyncio.gather(*(board.find(job.job_id) for _ in range(3)))
        assert all(found is view for found in again)
        pulse = view.pulse
        await job.write("stdout", "live\n")
        await asyncio.wait_for(pulse.wait(), timeout=120)  # the notification, not a poll
        assert view.size == 5 and await view.store.read(0) == [Piece("stdout", 0, b"live\n")]
        assert [j.job_id for j in await board.listing()] == [job.job_id]
        assert await board.find("0" * 20) is None and await board.find("../etc") is None
    finally:
        await other.close()
    # A stopped bridge's running job is lost at the next heartbeat of a peer, named.
    await asyncio.wait_for(ended(view), timeout=120)  # a hang detector
    assert view.state == "lost" and view.record["lost_by"] == "other"


async def test_the_cap_ends_the_kept_output_with_a_line_that_says_so(board: SharedJobs) -> None:
    job = await board.create({"api": "test"}, limit=10)
    await job.set_state("running")
    await job.write("stdout", "0123456789abcdef\n")
    await job.finish("succeeded", {"http_response_code": 200})
    kept = b"".join(piece.data for piece in await job.store.read(0, 1000))
    assert kept.startswith(b"0123456789\n[airflow-rest-bridge: the output kept ends here")
    assert job.record["output_cut"] is True


async def test_a_database_gone_leaves_a_gap_said_and_the_job_goes_on(
    board: SharedJobs, database: str
) -> None:
    job = await board.create({"api": "test"}, limit=1024 * 1024)
    await job.set_state("running")
    await job.write("stdout", "before\n")
    name = database.rsplit("/", 1)[1]
    admin = await asyncpg.connect(connection_string(POSTGRES) + "/postgres")
    try:
        # The database refuses new connections and cuts the bridge's: as good as gone.
        await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        # The next write is not kept, and neither the job nor its writer fails.
        await job.write("stdout", "lost\n")
        assert job.size == len("before\n") and not board.reachable.is_set()
        assert job.state == "running"
        await admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
    finally:
        await admin.close()
    await asyncio.wait_for(board.reachable.wait(), timeout=120)  # the listener reconnected
    await job.write("stdout", "after\n")
    assert "5 bytes of output were not kept at byte 7" in job.record["warning"]
    kept = b"".join(piece.data for piece in await job.store.read(0))
    assert kept == b"before\nafter\n"
    await job.finish("succeeded", {"http_response_code": 200})
    stored = await board.link.connected().fetchval(
        f"SELECT record->>'warning' FROM {SCHEMA}.jobs WHERE job_id = $1", job.job_id
    )
    assert "5 bytes of output were not kept at byte 7" in stored


async def test_finished_jobs_are_kept_per_owner_and_by_age(board: SharedJobs) -> None:
    made: list[Job] = []
    for owner in ("t-a", "t-a", "t-a", "t-b"):
        job = await board.create({"api": "test", "owner": owner}, limit=10)
        await job.finish("succeeded", {"http_response_code": 200})
        made.append(job)
    running = await board.create({"api": "test", "owner": "t-a"}, limit=10)
    await board.prune(keep=2, max_age=3600)
    listed = [job.job_id for job in await board.listing()]
    assert listed == [running.job_id, made[3].job_id, made[2].job_id, made[1].job_id]
    made[3].record["ended_at"] = time.time() - 7200
    await made[3].store.write_record(made[3].describe())
    await board.prune(keep=2, max_age=3600)
    assert made[3].job_id not in [job.job_id for job in await board.listing()]


async def test_a_start_without_the_database_fails_and_says_why_without_the_password() -> None:
    port = free_port()  # nothing listens there
    jobs = SharedJobs(f"postgresql://u:sekrit@127.0.0.1:{port}/x", "n", 0.5, 1.0)
    with pytest.raises(JobsDatabaseUnusable, match="ConnectionRefusedError") as raised:
        await jobs.load(keep=1, max_age=1)
    assert "sekrit" not in str(raised.value)


async def test_a_newer_schema_is_refused(database: str) -> None:
    first = SharedJobs(database, "x", 0.5, 1.0)
    await first.load(keep=1, max_age=1)
    await first.link.connected().execute(
        f"INSERT INTO {SCHEMA}.schema_version (version) VALUES (99)"
    )
    await first.close()
    second = SharedJobs(database, "y", 0.5, 1.0)
    with pytest.raises(JobsDatabaseUnusable, match="upgrade this bridge"):
        await second.load(keep=1, max_age=1)


async def test_while_the_database_is_gone_calls_get_a_503(board: SharedJobs) -> None:
    await board.link.connected().close()  # every statement now fails
    board.link.unreachable(ConnectionError("test"))
    for attempt in (board.listing(), board.find("0" * 20), board.create({}, limit=1)):
        with pytest.raises(RequestError) as raised:
            await attempt
        assert raised.value.status == 503, raised.value


async def test_each_bridge_is_judged_by_its_own_heartbeat(board: SharedJobs, database: str) -> None:
    slow = SharedJobs(database, "slow", heartbeat=30.0, stop_wait=1.0)
    await slow.load(keep=100, max_age=3600)
    try:
        job = await slow.create({"api": "test"}, limit=10)
        await job.set_state("running")
        pool = board.link.connected()

        async def silent_for(seconds: int) -> list[str]:
            await pool.execute(
                f"UPDATE {SCHEMA}.bridges SET heartbeat_at = now() - make_interval(secs => $2) "
                "WHERE incarnation = $1",
                slow.incarnation,
                seconds,
            )
            rows = await queries.mark_lost(pool, board.incarnation, LAPSE)
            return [row["job_id"] for row in rows]

        # Silent for ten times the judge's own heartbeat, but not for three of its own.
        assert await silent_for(10) == []
        assert await silent_for(95) == [job.job_id]
    finally:
        slow._closing.set()  # its job is lost already; close without its final word
        await slow.close()


async def test_records_land_in_order_and_a_nul_is_no_failure(board: SharedJobs) -> None:
    job = await board.create({"api": "test", "arguments": {"x": "a\x00b"}}, limit=10)
    records = [{**job.describe(), "state": "running", "step": n} for n in range(20)]
    await asyncio.gather(*(job.store.write_record(record) for record in records))
    stored = await board.link.connected().fetchval(
        f"SELECT record FROM {SCHEMA}.jobs WHERE job_id = $1", job.job_id
    )
    assert json.loads(stored)["step"] == 19
    assert json.loads(stored)["arguments"] == {"x": "a\ufffdb"}
    assert board.link.pending == {}
