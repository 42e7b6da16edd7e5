"""Jobs on any bridge: two daemons (their own ports, one Airflow home, one jobs database on
PostgreSQL) see, follow and cancel each other's jobs; a killed bridge's running jobs are
marked lost by its peer, and its restart leaves the peer's jobs alone; a restart of the
database in the middle of a job loses neither the job nor a daemon.

The first two tests use the suite's PostgreSQL server (a database of their own); the third
restarts a server, so it starts one of its own: the suite's serves other tests beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout

from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from tests.helpers import (
    API,
    POSTGRES,
    Daemon,
    free_port,
    live_members,
    pg,
    read_until,
    split_result,
    start_daemon,
    unique_date,
    warm_mode,
)

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(not POSTGRES, reason="BRIDGE_TEST_POSTGRES is not set"),
    # Once per Airflow version: the daemons run the cold CLI anyway (no warm helper).
    pytest.mark.skipif(not warm_mode(), reason="runs in the warm pass"),
]

JOBS = "/admin/rest_api/jobs"
TICKS = {"api": "test", "dag_id": "bridge_long", "task_id": "ticks"}  # four minutes of ticks
SLOW_LINES = {"api": "test", "dag_id": "bridge_demo", "task_id": "slow_lines"}
HANG = ClientTimeout(total=None, sock_read=300)  # a hang detector, not a measure of speed


class Bridges:
    """Daemons sharing one Airflow home and one jobs database, by name (their instance)."""

    def __init__(self, settings: Settings, airflow_bin: str, database: str, folder: Path) -> None:
        assert settings.config_path is not None
        self.base_cfg = settings.config_path.read_text()
        self.home = settings.airflow_home
        self.airflow_bin = airflow_bin
        self.database = database
        self.folder = folder
        self.ports: dict[str, int] = {}
        self.daemons: dict[str, Daemon] = {}
        self.session = ClientSession(timeout=HANG)

    async def start(self, name: str) -> Daemon:
        cfg = self.home / f"bridge-{self.folder.name}-{name}.cfg"  # the same Airflow home
        cfg.write_text(
            self.base_cfg
            + f"airflow_executable = {self.airflow_bin}\nwarm_helper = false\n"
            + f"jobs_database = {self.database}\nbridge_instance = {name}\n"
        )
        port = self.ports.setdefault(name, free_port())
        self.daemons[name] = daemon = await start_daemon(cfg, port)
        return daemon

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    async def detach(self, name: str, **params: str) -> str:
        """Start a job on bridge ``name``; its Location."""
        async with self.session.get(self.url(name, API), params=params | {"detach": "true"}) as r:
            body = await r.json()
            assert r.status == 202, body
            assert body["job_id"] in r.headers["Location"]
            return r.headers["Location"]

    async def status(self, name: str, location: str) -> dict[str, Any]:
        async with self.session.get(self.url(name, location)) as response:
            body: dict[str, Any] = await response.json()
            assert response.status == 200, body
            return body

    async def close(self) -> None:
        try:
            for daemon in self.daemons.values():
                assert await daemon.stop() == 0
        finally:
            await self.session.close()


@contextlib.asynccontextmanager
async def bridges(
    settings: Settings, airflow_bin: str, database: str, folder: Path
) -> AsyncIterator[Bridges]:
    both = Bridges(settings, airflow_bin, database, folder)
    try:
        yield both
    finally:
        await both.close()


@pytest.fixture
def jobs_database(airflow_info: AirflowInfo) -> Iterator[str]:
    """A fresh database on the suite's server for the bridges' jobs."""
    database = "bridge_jobs_" + airflow_info.version.replace(".", "_")
    pg("dropdb", database)
    pg("createdb", database)
    yield f"{POSTGRES}/{database}"
    pg("dropdb", database)


async def test_a_job_on_one_bridge_is_listed_followed_and_cancelled_on_the_other(
    settings: Settings, airflow_bin: str, jobs_database: str, tmp_path: Path
) -> None:
    async with bridges(settings, airflow_bin, jobs_database, tmp_path) as both:
        a, b = await both.start("a"), await both.start("b")
        # A long job started on A, listed on B, followed on B from byte 0 while it runs.
        ticking = await both.detach("a", **TICKS, execution_date=unique_date(2022))
        async with both.session.get(both.url("b", JOBS)) as response:
            listed = {job["job_id"]: job for job in (await response.json())["jobs"]}
        job_id = ticking.rsplit("/", 1)[1]
        assert listed[job_id]["bridge"] == "a", listed
        async with both.session.get(both.url("b", f"{ticking}/output")) as following:
            seen = await read_until(following, b"tick 3")
            running = await both.status("b", ticking)
            assert running["state"] == "running" and running["bridge"] == "a", running
            pid = running["pid"]
            assert live_members(session=pid)  # its command runs on A's side
            # Cancelled on B: A stops it (its whole session), B answers once it has.
            async with both.session.delete(both.url("b", ticking)) as response:
                cancelled = await response.json()
                assert response.status == 200, cancelled
            assert cancelled["state"] == "cancelled", cancelled
            assert "on bridge 'b'" in cancelled["warning"], cancelled
            assert live_members(session=pid) == []
            rest, result = split_result(await following.read())
        assert result["state"] == "cancelled" and b"tick 240" not in seen + rest
        async with both.session.get(both.url("a", f"{ticking}/output")) as response:
            on_a, _ = split_result(await response.read())
        assert on_a == seen + rest  # B followed the same bytes A kept, none lost, none twice

        # A short one, followed on B from its first byte to its end.
        short = await both.detach("a", **SLOW_LINES, execution_date=unique_date(2022))
        async with both.session.get(both.url("b", f"{short}/output")) as response:
            output, result = split_result(await response.read())
        assert b"first line" in output and b"second line" in output
        assert result["state"] == "succeeded" and result["bridge"] == "a", result
        async with both.session.get(both.url("a", f"{short}/output")) as response:
            assert split_result(await response.read())[0] == output

        # The bridge is named in /metrics and in its audit lines.
        async with both.session.get(both.url("a", "/metrics")) as response:
            metrics = await response.text()
        assert 'bridge_instance_info{instance="a",jobs_store="database"} 1.0' in metrics
        assert "bridge_jobs_database_reachable 1.0" in metrics
        await a.line_containing(" bridge=a api=test ")
        assert not [line for line in b.lines if " api=test " in line], "A ran the jobs, not B"

        # B stops while it follows a job A runs: the follow ends, saying so; the job goes on.
        again = await both.detach("a", **TICKS, execution_date=unique_date(2022))
        async with both.session.get(both.url("b", f"{again}/output")) as following:
            await read_until(following, b"tick 1")
            assert await both.daemons.pop("b").stop() == 0
            _, ended = split_result(await following.read())
        assert ended["http_response_code"] == 503 and ended["state"] == "running", ended
        assert "this bridge is stopping" in ended["warning"] and "bridge 'a'" in ended["warning"]
        assert (await both.status("a", again))["state"] == "running"


async def test_a_killed_bridges_jobs_are_lost_and_its_restart_leaves_the_peers_alone(
    settings: Settings, airflow_bin: str, jobs_database: str, tmp_path: Path
) -> None:
    async with bridges(settings, airflow_bin, jobs_database, tmp_path) as both:
        await both.start("a")
        await both.start("b")
        on_a = await both.detach("a", **TICKS, execution_date=unique_date(2022))
        on_b = await both.detach("b", **TICKS, execution_date=unique_date(2022))
        for name, location in (("a", on_a), ("b", on_b)):
            async with both.session.get(both.url(name, f"{location}/output")) as response:
                await read_until(response, b"tick 1")
        b_pid = (await both.status("b", on_b))["pid"]
        async with both.session.get(both.url("b", f"{on_a}/output")) as following:
            await read_until(following, b"tick 1")
            killed = both.daemons.pop("a")
            killed.signal(signal.SIGKILL)
            assert await killed.wait() == -signal.SIGKILL
            # B's follower ends once B finds A silent and marks its job lost.
            _, result = split_result(await following.read())
        assert result["state"] == "lost" and result["lost_by"] == "a", result
        assert re.search(
            r"bridge a, which ran this job, stopped sending heartbeats", result["warning"]
        )
        # A starts again: its ledger stops what the killed A left; B's job runs on.
        await both.start("a")
        assert (await both.status("a", on_a))["state"] == "lost"
        still = await both.status("a", on_b)
        assert still["state"] == "running" and still["bridge"] == "b", still
        assert live_members(session=b_pid), "A's restart stopped a command B runs"
        # And A cancels B's job through the database.
        async with both.session.delete(both.url("a", on_b)) as response:
            cancelled = await response.json()
        assert cancelled["state"] == "cancelled" and "on bridge 'a'" in cancelled["warning"]
        assert live_members(session=b_pid) == []


class PrivateServer:
    """A PostgreSQL server of the test's own (Debian's binaries, a throwaway cluster with
    trust on loopback), which the test may restart."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        assert found, "PostgreSQL's server binaries are not installed (make postgres)"
        self.bin = Path(found[-1]).parent
        self.data = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
        self.port = free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.data, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "bridge", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://bridge@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        argv = [*self.as_owner, str(self.bin / tool), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd="/")
        assert done.returncode == 0, done.stdout + done.stderr

    def pg_ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        log = str(self.data / "server.log")
        self._run(
            "pg_ctl", action, "-D", str(self.data), "-w", "-m", "fast", "-o", options, "-l", log
        )

    def remove(self) -> None:
        with contextlib.suppress(AssertionError):
            self.pg_ctl("stop")
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    server = PrivateServer()
    try:
        server.pg_ctl("start")
        yield server
    finally:
        server.remove()


async def test_a_database_restart_in_the_middle_of_a_job_loses_neither_job_nor_daemon(
    settings: Settings, airflow_bin: str, private_server: PrivateServer, tmp_path: Path
) -> None:
    async with bridges(settings, airflow_bin, private_server.url, tmp_path) as both:
        a, b = await both.start("a"), await both.start("b")
        ticking = await both.detach("a", **TICKS, execution_date=unique_date(2022))
        async with both.session.get(both.url("b", f"{ticking}/output")) as following:
            before = await read_until(following, b"tick 2")
            await asyncio.to_thread(private_server.pg_ctl, "restart")
            after_restart = len(a.lines), len(b.lines)
            await a.line_containing("jobs database: reachable again", after=after_restart[0])
            await b.line_containing("jobs database: reachable again", after=after_restart[1])
            # Output written after the restart reaches B's same follow.
            last = max(int(n) for n in re.findall(rb"tick (\d+)", before))
            later = await read_until(following, f"tick {last + 4}\n".encode())
            async with both.session.delete(both.url("b", ticking)) as response:
                cancelled = await response.json()
            assert response.status == 200 and cancelled["state"] == "cancelled", cancelled
            rest, result = split_result(await following.read())
        ticks = [int(n) for n in re.findall(rb"tick (\d+)", before + later + rest)]
        assert ticks == sorted(set(ticks))  # in order, none twice
        gap = set(range(1, ticks[-1] + 1)) - set(ticks)
        # A gap (output written while the server was down) is said, with where it was.
        assert not gap or "bytes of output were not kept" in result.get("warning", ""), result
        for name in ("a", "b"):
            async with both.session.get(both.url(name, "/health")) as response:
                assert response.status == 200
        async with both.session.get(both.url("a", JOBS)) as response:
            states = {job["job_id"]: job["state"] for job in (await response.json())["jobs"]}
        assert states[ticking.rsplit("/", 1)[1]] == "cancelled"
