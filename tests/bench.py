"""`make bench`: the bridge (warm helper on and off) against the plain CLI and Airflow's own
REST API, on a throwaway SQLite Airflow home per Airflow version, printed as one table each.

    python -m tests.bench AIRFLOW_EXECUTABLE [AIRFLOW_EXECUTABLE ...] [--samples N]

Every figure comes from one run on this machine: latencies are perf_counter() around a real
HTTP request (aiohttp client) or a real ``subprocess.run`` of the CLI; RSS is read from /proc;
the time inside the warm child comes from the bridge's Server-Timing header.
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import contextlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bridge.jobs.shared.schema import connection_string
from tests.demo.make_home import child_env, make_home
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
DATE = "2024-01-02T00:00:00+00:00"
RUN_ID = "bench_run"
STREAM_DAG = """
import datetime, time
try:
    from airflow.sdk import DAG, task
except ImportError:
    from airflow import DAG
    from airflow.decorators import task

with DAG(dag_id="bench_stream", start_date=datetime.datetime(2020, 1, 1), schedule=None):
    @task
    def ticks() -> None:
        for _ in range(30):
            print(f"tick {time.time():.6f}", flush=True)
            time.sleep(0.05)

    ticks()
"""
TICK = re.compile(rb"tick (\d+\.\d+)")


@dataclass(frozen=True)
class ReadApi:
    name: str
    params: dict[str, str]
    rest_path: str  # Airflow's own REST API, after /api/v1 or /api/v2


READ_APIS = (
    ReadApi("version", {"api": "version"}, "/version"),
    ReadApi("list_dags", {"api": "list_dags"}, "/dags"),
    ReadApi(
        "list_tasks", {"api": "list_tasks", "dag_id": "bridge_demo"}, "/dags/bridge_demo/tasks"
    ),
    ReadApi(
        "task_state",
        {"api": "task_state", "dag_id": "bridge_demo", "task_id": "hello", "execution_date": DATE},
        f"/dags/bridge_demo/dagRuns/{RUN_ID}/taskInstances/hello",
    ),
    ReadApi(
        "dag_state",
        {"api": "dag_state", "dag_id": "bridge_demo", "execution_date": DATE},
        f"/dags/bridge_demo/dagRuns/{RUN_ID}",
    ),
    ReadApi("variables get", {"api": "variables", "get": "bench_var"}, "/variables/bench_var"),
    ReadApi("pool get", {"api": "pool", "get": "default_pool"}, "/pools/default_pool"),
)


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    inside: list[float] = field(default_factory=list)  # Server-Timing: time in the command
    errors: int = 0

    def p(self, q: int) -> float:
        if not self.seconds:
            return float("nan")
        if len(self.seconds) == 1:
            return self.seconds[0]
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[q - 1]


def ms(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "-"
    return f"{seconds * 1000:.1f}" if seconds < 10 else f"{seconds * 1000:.0f}"


def rss_kib(pid: int | None, key: str = "VmRSS") -> int:
    if not pid:
        return 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_http(
    session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]
) -> None:
    give_up = time.monotonic() + 300
    while time.monotonic() < give_up:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with code {proc.returncode}")
        try:
            async with session.get(url) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within 300 s")


async def timed_get(
    session: aiohttp.ClientSession, url: str, params: dict[str, str] | None, samples: Samples
) -> dict[str, Any] | None:
    started = time.perf_counter()
    try:
        async with session.get(url, params=params) as response:
            body = await response.read()
            elapsed = time.perf_counter() - started
            timing = response.headers.get("Server-Timing", "")
    except aiohttp.ClientError:
        samples.errors += 1
        return None
    if response.status != 200:
        samples.errors += 1
        return None
    samples.seconds.append(elapsed)
    if match := re.search(r"dur=([\d.]+)", timing):
        samples.inside.append(float(match[1]) / 1000)
    try:
        parsed: dict[str, Any] = json.loads(body)
        return parsed
    except ValueError:
        return None


async def bridge_samples(
    session: aiohttp.ClientSession, base: str, api: ReadApi, count: int, warmup: int
) -> tuple[Samples, dict[str, Any] | None]:
    throwaway = Samples()
    for _ in range(warmup):
        await timed_get(session, base, api.params, throwaway)
    samples = Samples()
    body = None
    for _ in range(count):
        body = await timed_get(session, base, api.params, samples) or body
    return samples, body


def cli_samples(argv: list[str], env: dict[str, str], count: int) -> Samples:
    samples = Samples()
    for _ in range(count):
        started = time.perf_counter()
        result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
        samples.seconds.append(time.perf_counter() - started)
        samples.errors += result.returncode != 0
    return samples


def cli_max_rss_kib(argv: list[str], env: dict[str, str]) -> int:
    """Peak RSS of one plain CLI run, as /usr/bin/time -v reports it."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    if not Path(time_bin).exists():
        return 0
    result = subprocess.run(
        [time_bin, "-v", *argv], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    return int(match[1]) if match else 0


async def throughput(
    session: aiohttp.ClientSession, base: str, clients: int, per_client: int
) -> tuple[float, int, Samples]:
    apis = [api for api in READ_APIS if api.name != "version"]
    samples = Samples()

    async def client(index: int) -> None:
        for n in range(per_client):
            api = apis[(index + n) % len(apis)]
            await timed_get(session, base, api.params, samples)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return clients * per_client / elapsed, samples.errors, samples


async def burst_statuses(
    session: aiohttp.ClientSession, base: str, clients: int, per_client: int
) -> dict[int, int]:
    """Every client sends its calls at once (each waits for its previous answer): the
    statuses, counted. With the default limits, callers over them wait in line."""
    api = next(api for api in READ_APIS if api.name == "list_dags")
    statuses: dict[int, int] = {}

    async def client() -> None:
        for _ in range(per_client):
            async with session.get(base, params=api.params) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return statuses


async def streaming_delays(session: aiohttp.ClientSession, base: str) -> Samples:
    """Time from the task printing a line (its own timestamp) to this client reading it."""
    samples = Samples()
    params = {
        "api": "test",
        "dag_id": "bench_stream",
        "task_id": "ticks",
        "execution_date": DATE,
        "stream": "true",
    }
    async with session.get(base, params=params) as response:
        async for chunk in response.content.iter_any():
            received = time.time()
            for match in TICK.finditer(chunk):
                samples.seconds.append(received - float(match[1]))
    return samples


async def cross_bridge_delays(
    session: aiohttp.ClientSession, bridge_a: str, bridge_b: str
) -> tuple[Samples, float]:
    """A detached job on bridge A followed on bridge B (one jobs database): the time from the
    task printing a line on A's side (its own timestamp) to B's client reading it; and the
    first line's alone (the job's first byte on the other bridge)."""
    params = {
        "api": "test",
        "dag_id": "bench_stream",
        "task_id": "ticks",
        "execution_date": DATE,
        "detach": "true",
    }
    async with session.get(f"{bridge_a}/admin/rest_api/api", params=params) as response:
        location = response.headers["Location"]
    samples = Samples()
    async with session.get(f"{bridge_b}{location}/output") as response:
        async for chunk in response.content.iter_any():
            received = time.time()
            for match in TICK.finditer(chunk):
                samples.seconds.append(received - float(match[1]))
    return samples, samples.seconds[0] if samples.seconds else float("nan")


async def fresh_database(url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``url`` (a SQLAlchemy URL); its URL."""
    server = connection_string(url).rstrip("/")  # the server's URL names no database
    connection = await asyncpg.connect(f"{server}/postgres")
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name}")
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return f"{server}/{name}"


def rest_api_argv(airflow: str, major: int, port: int) -> list[str]:
    if major >= 3:
        return [airflow, "api-server", "--port", str(port), "--workers", "1"]
    return [airflow, "webserver", "--port", str(port), "--workers", "1"]


def extra_cfg(major: int) -> str:
    if major >= 3:  # every request is an admin: no login in the way of timing
        return "\n[core]\nsimple_auth_manager_all_admins = True\n"
    return "\n[api]\nauth_backends = airflow.api.auth.backend.default\n[webserver]\nworkers = 1\n"


def with_section(cfg: Path, text: str) -> None:
    """Merge extra keys into airflow.cfg (a section may exist already)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(cfg)
    extra = configparser.ConfigParser(interpolation=None)
    extra.read_string(text)
    for section in extra.sections():
        if not parser.has_section(section):
            parser.add_section(section)
        for key, value in extra.items(section):
            parser.set(section, key, value)
    with cfg.open("w") as out:
        parser.write(out)


async def bench_one(
    airflow: str, samples: int, cold_samples: int, postgres: str | None = None
) -> str:
    printed = subprocess.run([airflow, "version"], capture_output=True, text=True).stdout
    version = next(
        line.strip() for line in reversed(printed.splitlines()) if re.match(r"\d+\.\d+", line)
    )
    major = int(version.split(".")[0])
    work = Path(tempfile.mkdtemp(prefix=f"bridge-bench-{version}-"))
    home = work / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "bench_stream.py").write_text(STREAM_DAG)
    print(f"\n== Airflow {version}: setting up {home}", file=sys.stderr, flush=True)
    cfg = make_home(airflow, home)
    with_section(cfg, extra_cfg(major))
    if major < 3:  # Airflow 2's stable API asks FAB; anonymous callers get the Admin role
        (home / "webserver_config.py").write_text('AUTH_ROLE_PUBLIC = "Admin"\n')
    env = child_env(home)
    ports = {"warm": free_port(), "cold": free_port(), "rest": free_port()}
    ports |= {"shared_a": free_port(), "shared_b": free_port()}
    shared: dict[str, str] = {}
    if postgres:  # two more bridges, one jobs database (their own: the others keep a folder)
        database = await fresh_database(postgres, "bridge_bench_" + version.replace(".", "_"))
        shared = {"AIRFLOW__REST_API_PLUGIN__JOBS_DATABASE": database}
    daemon = [sys.executable, "-m", "bridge", "--config", str(cfg)]
    common = dict(
        env,
        AIRFLOW__REST_API_PLUGIN__AIRFLOW_EXECUTABLE=airflow,
    )  # default limits: max_concurrent_commands 4, callers over it wait their turn
    out: list[str] = []
    rest_argv = rest_api_argv(airflow, major, ports["rest"])
    prefix = "/api/v2" if major >= 3 else "/api/v1"
    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        with (
            process(
                [*daemon, "--port", str(ports["warm"])],
                dict(common, AIRFLOW__REST_API_PLUGIN__WARM_HELPER="true"),
                work / "warm.log",
            ) as warm_proc,
            process(
                [*daemon, "--port", str(ports["cold"])],
                dict(common, AIRFLOW__REST_API_PLUGIN__WARM_HELPER="false"),
                work / "cold.log",
            ) as cold_proc,
            process(rest_argv, env, work / "rest.log") as rest_proc,
            contextlib.ExitStack() as more,
        ):
            shared_procs = [
                more.enter_context(
                    process(
                        [*daemon, "--port", str(ports[name])],
                        dict(common, **shared, AIRFLOW__REST_API_PLUGIN__BRIDGE_INSTANCE=name),
                        work / f"{name}.log",
                    )
                )
                for name in (("shared_a", "shared_b") if shared else ())
            ]
            warm = f"http://127.0.0.1:{ports['warm']}/admin/rest_api/api"
            cold = f"http://127.0.0.1:{ports['cold']}/admin/rest_api/api"
            rest = f"http://127.0.0.1:{ports['rest']}{prefix}"
            await wait_http(session, f"http://127.0.0.1:{ports['warm']}/health", warm_proc)
            await wait_http(session, f"http://127.0.0.1:{ports['cold']}/health", cold_proc)
            await wait_http(session, f"{rest}/version", rest_proc)
            await prepare(session, warm)
            async with session.get(f"http://127.0.0.1:{ports['warm']}/health") as response:
                health = await response.json()
            helper_pid = health["warm_helper"]["pid"]
            print(f"   warm helper: {health['warm_helper']}", file=sys.stderr, flush=True)

            rows = []
            for api in READ_APIS:
                print(f"   {api.name}", file=sys.stderr, flush=True)
                warm_s, body = await bridge_samples(session, warm, api, samples, warmup=5)
                cold_s, _ = await bridge_samples(session, cold, api, cold_samples, warmup=1)
                command = (body or {}).get("airflow_cmd")
                argv = shlex.split(command) if command else [airflow, "version"]
                cli_s = cli_samples(argv, env, cold_samples)
                rest_s = Samples()
                for _ in range(samples):
                    await timed_get(session, rest + api.rest_path, None, rest_s)
                rows.append((api, warm_s, cold_s, cli_s, rest_s))
            print("   16 concurrent clients", file=sys.stderr, flush=True)
            rate, errors, load = await throughput(session, warm, clients=16, per_client=20)
            print("   burst of 64", file=sys.stderr, flush=True)
            burst = await burst_statuses(session, warm, clients=16, per_client=4)
            print("   streaming delay", file=sys.stderr, flush=True)
            delays = await streaming_delays(session, warm)
            across: tuple[Samples, float] | None = None
            if shared_procs:
                print("   a job followed on another bridge", file=sys.stderr, flush=True)
                bridges = [f"http://127.0.0.1:{ports[name]}" for name in ("shared_a", "shared_b")]
                for url, proc in zip(bridges, shared_procs, strict=True):
                    await wait_http(session, f"{url}/health", proc)
                across = await cross_bridge_delays(session, *bridges)
            daemon_rss = rss_kib(warm_proc.pid)
            daemon_peak = rss_kib(warm_proc.pid, "VmHWM")
            helper_rss = rss_kib(helper_pid)
            cli_rss = cli_max_rss_kib([airflow, "dags", "list"], env)
    shutil.rmtree(work, ignore_errors=True)

    out.append(
        f"\nAirflow {version} ({os.cpu_count()} CPUs; {samples} warm / {cold_samples} cold "
        "samples; ms)"
    )
    header = (
        f"{'API':<14}{'warm p50':>9}{'p95':>8}{'cold p50':>10}{'p95':>8}{'CLI p50':>9}"
        f"{'p95':>8}{'REST p50':>9}{'p95':>7}{'CLI/warm':>10}{'warm/REST':>10}"
        f"{'overhead':>9}{'errors':>7}"
    )
    out.append(header)
    out.append("-" * len(header))
    for api, warm_s, cold_s, cli_s, rest_s in rows:
        row_errors = warm_s.errors + cold_s.errors + cli_s.errors + rest_s.errors
        overhead = [
            total - inside for total, inside in zip(warm_s.seconds, warm_s.inside, strict=False)
        ]
        overhead_p50 = statistics.median(overhead) if overhead else float("nan")
        out.append(
            f"{api.name:<14}{ms(warm_s.p(50)):>9}{ms(warm_s.p(95)):>8}"
            f"{ms(cold_s.p(50)):>10}{ms(cold_s.p(95)):>8}{ms(cli_s.p(50)):>9}{ms(cli_s.p(95)):>8}"
            f"{ms(rest_s.p(50)):>9}{ms(rest_s.p(95)):>7}"
            f"{cli_s.p(50) / warm_s.p(50):>9.0f}x{warm_s.p(50) / rest_s.p(50):>9.1f}x"
            f"{ms(overhead_p50):>9}{row_errors:>7}"
        )
    out.append(
        f"16 concurrent clients (warm, 320 requests of the 6 read APIs): {rate:.1f} requests/s, "
        f"{errors} errors, p50 {ms(load.p(50))} ms, p95 {ms(load.p(95))} ms"
    )
    refused = sum(count for status, count in burst.items() if status != 200)
    out.append(
        f"burst of 64 list_dags from 16 clients at once (default limits): {refused} refused "
        f"({', '.join(f'{n} x {status}' for status, n in sorted(burst.items()))})"
    )
    out.append(
        f"streaming delay (task prints a line -> client reads it), {len(delays.seconds)} lines: "
        f"p50 {ms(delays.p(50))} ms, p95 {ms(delays.p(95))} ms"
    )
    if across is not None:
        lines, first = across
        out.append(
            f"a detached job on bridge A followed on bridge B (one jobs database, PostgreSQL), "
            f"{len(lines.seconds)} lines: first byte {ms(first)} ms after the task printed it; "
            f"p50 {ms(lines.p(50))} ms, p95 {ms(lines.p(95))} ms"
        )
    out.append(
        f"RSS: daemon {daemon_rss / 1024:.0f} MiB (peak {daemon_peak / 1024:.0f} MiB), "
        f"warm helper {helper_rss / 1024:.0f} MiB; one plain 'airflow dags list' peaks at "
        f"{cli_rss / 1024:.0f} MiB (/usr/bin/time -v)"
    )
    out.append(
        "overhead = warm total minus the time inside the helper's child or worker (Server-Timing); "
        "CLI = the same argv run directly; REST = Airflow's own API server"
    )
    return "\n".join(out)


async def prepare(session: aiohttp.ClientSession, bridge: str) -> None:
    """The data the read APIs look at: a variable and one DAG run with a known run_id."""
    setup: list[dict[str, str]] = [
        {"api": "variables", "cmd": "set", "key": "bench_var", "value": "42"},
        {"api": "trigger_dag", "dag_id": "bridge_demo", "run_id": RUN_ID, "exec_date": DATE},
    ]
    for params in setup:
        async with session.get(bridge, params=params) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"bench setup {params} failed: {body}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("airflow", nargs="+", help="airflow executables, one per version")
    parser.add_argument("--samples", type=int, default=40, help="warm and REST samples per API")
    parser.add_argument("--cold-samples", type=int, default=5, help="cold and CLI samples")
    parser.add_argument(
        "--postgres",
        help="a PostgreSQL server's URL (postgresql://user:password@host:port) whose user may "
        "create databases: two more bridges share a jobs database there",
    )
    args = parser.parse_args(argv)
    tables = [
        asyncio.run(bench_one(a, args.samples, args.cold_samples, args.postgres))
        for a in args.airflow
    ]
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
