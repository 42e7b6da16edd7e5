"""``GET /metrics``: the daemon as Prometheus sees it, in its text format, made by the
Prometheus client library (``prometheus_client``) from a registry of this application's own
(tests run many applications in one process).

- ``bridge_requests_total{endpoint, api, status}`` and
  ``bridge_request_duration_seconds{endpoint, api}``: every request, by route name and, for
  the API, by API name (``unknown`` for a name that is none: the labels stay few).
- read at each scrape: ``bridge_commands_running`` (calls holding a slot),
  ``bridge_commands_waiting`` (calls in line for one), ``bridge_follows_open`` (follows
  and waits, at most ``max_follows``), ``bridge_airflow_processes``,
  ``bridge_warm_helper_state{state}`` (1 for the state it is in),
  ``bridge_warm_helper_restarts_total``, ``bridge_jobs{state}``,
  ``bridge_job_webhooks_total{outcome}`` and ``bridge_job_webhooks_pending``.

Who may read it: with ``metrics_token`` set, a caller presenting it as
``Authorization: Bearer ...`` (what Prometheus sends with ``authorization:``), the API's
token or any named token (each scope includes read); without any token set, whoever reaches the
port. A cross-site request never.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from bridge.config.tokens import Scope, allows
from bridge.errors import RequestError
from bridge.http.answers import forbidden
from bridge.http.guards.auth import identify, presented_token, token_matches
from bridge.http.guards.browsers import cross_site
from bridge.http.keys import COMMANDS, FOLLOWS, JOBS, WARM_HELPER, WEBHOOKS, settings_of
from bridge.jobs.job import ENDED_STATES, RUNNING_STATES
from bridge.jobs.shared.board import SharedJobs
from bridge.jobs.webhooks import OUTCOMES
from bridge.process.warm import HELPER_STATES

CALLED_API: web.RequestKey[str] = web.RequestKey("called_api", str)  # set by the API view
# Seconds: a warm read takes tens of milliseconds, a cold one seconds, a stream minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
CLIENT_LEFT = "499"  # nginx's name for it: the client went away before the answer ended


class Metrics:
    """The application's registry: request counters kept here, the rest read when scraped."""

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "bridge_requests",
            "Requests answered, by route, API and HTTP status",
            ["endpoint", "api", "status"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "bridge_request_duration_seconds",
            "Time from a request's arrival to the end of its answer (a stream's end)",
            ["endpoint", "api"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(app))

    def observe(self, endpoint: str, api: str, status: str, seconds: float) -> None:
        self.requests.labels(endpoint, api, status).inc()
        self.durations.labels(endpoint, api).observe(seconds)


class _StateCollector(Collector):
    """What the daemon is doing now, read at each scrape (on the loop: counts only)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        commands = self._app[COMMANDS]
        jobs_board = self._app[JOBS]
        shared = jobs_board if isinstance(jobs_board, SharedJobs) else None
        yield InfoMetricFamily(
            "bridge_instance",
            "This bridge: its name among those sharing jobs_database, and where jobs are kept",
            value={
                "instance": settings_of(self._app).instance_name,
                "jobs_store": "folder" if shared is None else "database",
            },
        )
        if shared is not None:
            yield GaugeMetricFamily(
                "bridge_jobs_database_reachable",
                "1 while jobs_database answers, 0 while the bridge reconnects",
                value=1 if shared.reachable.is_set() else 0,
            )
        yield GaugeMetricFamily(
            "bridge_commands_running",
            "Calls running Airflow commands (each holds one of max_concurrent_commands)",
            value=commands.busy,
        )
        yield GaugeMetricFamily(
            "bridge_commands_waiting",
            "Calls waiting in line for a slot (at most max_waiting_calls)",
            value=commands.slots.waiting,
        )
        yield GaugeMetricFamily(
            "bridge_follows_open",
            "Follows and waits open: job output followed, task_log&follow=true, "
            "trigger_dag&wait=true (at most max_follows)",
            value=self._app[FOLLOWS].open,
        )
        yield GaugeMetricFamily(
            "bridge_airflow_processes",
            "Airflow processes the daemon started that still run",
            value=len(commands.running),
        )
        helper = self._app.get(WARM_HELPER)
        status = helper.status() if helper is not None else None
        state = GaugeMetricFamily(
            "bridge_warm_helper_state",
            "The warm helper's state: 1 for the one it is in (off: none configured)",
            labels=["state"],
        )
        current = status.state if status is not None else "off"
        for name in HELPER_STATES:
            state.add_metric([name], 1 if name == current else 0)
        yield state
        yield CounterMetricFamily(
            "bridge_warm_helper_restarts",
            "Warm helper restarts since the daemon started (it died, or Airflow changed)",
            value=status.restarts if status is not None else 0,
        )
        jobs = GaugeMetricFamily(
            "bridge_jobs", "Jobs this bridge runs or keeps, by state", labels=["state"]
        )
        tally = Tally(job.state for job in self._app[JOBS].jobs.values())
        for name in (*RUNNING_STATES, *ENDED_STATES):
            jobs.add_metric([name], tally.get(name, 0))
        yield jobs
        webhooks = self._app[WEBHOOKS]
        deliveries = CounterMetricFamily(
            "bridge_job_webhooks",
            "Job webhook deliveries, by outcome (delivered, given_up, dropped)",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            deliveries.add_metric([outcome], webhooks.outcomes.get(outcome, 0))
        yield deliveries
        yield GaugeMetricFamily(
            "bridge_job_webhooks_pending",
            "Job webhook deliveries waiting or being retried",
            value=webhooks.pending,
        )


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts and times every request, outermost, so that it sees the status answered."""
    started = time.perf_counter()
    status = CLIENT_LEFT
    try:
        response = await handler(request)
        status = str(response.status)
        return response
    except web.HTTPException as exc:
        status = str(exc.status)
        raise
    finally:
        route = request.match_info.route.name or "unmatched"
        api = request.get(CALLED_API, "")
        request.app[METRICS].observe(route, api, status, time.perf_counter() - started)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the text format, for whoever may read it (see the module)."""
    settings = settings_of(request.app)
    if cross_site(request):
        raise RequestError("cross-site request refused: metrics are for scrapers", status=403)
    caller = identify(settings, presented_token(request, settings))
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    allowed = (
        (settings.metrics_token and token_matches(bearer, settings.metrics_token))
        or (settings.auth_enabled and caller is not None and allows(caller.scopes, Scope.READ))
        or not (settings.metrics_token or settings.auth_enabled)
    )
    if not allowed:
        return forbidden()
    # On the loop: the collector reads the loop's own state (jobs, slots), and a few dozen
    # series render in well under a millisecond.
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
