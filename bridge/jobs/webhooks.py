"""Telling the operator's receivers that a job ended (``job_webhooks``).

Each ended job's record (what ``GET .../jobs/<id>`` answers) is POSTed as JSON to every URL
the operator set, signed with HMAC-SHA256 over the exact body bytes with
``job_webhook_secret``: ``X-Bridge-Signature: sha256=<hex>``, as GitHub signs its webhooks.
A try that gets no 2xx (refused, timed out, 5xx, a redirect) is tried again after 1 s, then
2, 4, ... up to 60 s between tries, for ``job_webhook_retry_for`` seconds; then it is given
up and logged. Deliveries run in tasks of their own: a receiver that is down or slow never
holds a job, a follower or the event loop. At most ``MAX_PENDING`` wait at once (beyond, the
oldest is given up); the daemon's stop gives up the rest. ``/metrics`` counts each outcome.
URLs are logged without their query and credentials: either may hold a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import urllib.parse
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp

from bridge.config.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Bridge-Signature"
FIRST_DELAY, MAX_DELAY = 1.0, 60.0  # seconds between tries: doubling, capped
TRY_TIMEOUT = 10.0  # seconds one POST may take, connecting included
MAX_PENDING = 1000  # deliveries waiting or retrying at once
OUTCOMES = ("delivered", "given_up", "dropped")


def signature(secret: str, body: bytes) -> str:
    """The X-Bridge-Signature value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def shown(url: str) -> str:
    """The URL for a log line: without credentials, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Webhooks:
    """The deliveries of one daemon; ``ended`` is called (on the loop) as each job ends."""

    def __init__(self, current: Callable[[], Settings]) -> None:
        self._current = current
        self._pending: dict[asyncio.Task[None], str] = {}  # oldest first
        self._session: aiohttp.ClientSession | None = None
        self.outcomes: Counter[str] = Counter()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def ended(self, record: dict[str, Any]) -> None:
        """Send ``record`` to the receivers the settings in force name, if its API and token
        are among those they want."""
        settings = self._current()
        secret = settings.job_webhook_secret
        if not settings.job_webhooks or not secret:
            return
        if settings.job_webhook_apis and str(record.get("api")).lower() not in (
            settings.job_webhook_apis
        ):
            return
        if settings.job_webhook_tokens and str(record.get("token")).lower() not in (
            settings.job_webhook_tokens
        ):
            return
        body = json.dumps(record, default=str, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, body)}
        job = str(record.get("job_id"))
        give_up = asyncio.get_running_loop().time() + settings.job_webhook_retry_for
        for url in settings.job_webhooks:
            if len(self._pending) >= MAX_PENDING:
                oldest = next(iter(self._pending))
                log.warning(
                    "job webhook %s: given up, %d deliveries wait already",
                    self._pending.pop(oldest),
                    MAX_PENDING,
                )
                oldest.cancel()
                self.outcomes["dropped"] += 1
            task = asyncio.create_task(self._deliver(url, body, headers, job, give_up))
            self._pending[task] = f"{shown(url)} (job {job})"
            task.add_done_callback(lambda done: self._pending.pop(done, None))

    async def _deliver(
        self, url: str, body: bytes, headers: dict[str, str], job: str, give_up: float
    ) -> None:
        loop = asyncio.get_running_loop()
        delay, tries = FIRST_DELAY, 0
        while True:
            tries += 1
            problem = await self._post(url, body, headers)
            if problem is None:
                self.outcomes["delivered"] += 1
                if tries > 1:
                    log.info("job webhook %s: job %s delivered at try %d", shown(url), job, tries)
                return
            if loop.time() + delay > give_up:
                self.outcomes["given_up"] += 1
                log.warning(
                    "job webhook %s: job %s given up after %d tries (job_webhook_retry_for): %s",
                    shown(url), job, tries, problem,
                )  # fmt: skip
                return
            if tries == 1:
                log.warning(
                    "job webhook %s: job %s not delivered (%s): trying again with backoff",
                    shown(url), job, problem,
                )  # fmt: skip
            await asyncio.sleep(delay)  # the backoff itself: nothing to wait for but time
            delay = min(delay * 2, MAX_DELAY)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """One try: None when the receiver answered 2xx, else what went wrong."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(TRY_TIMEOUT))
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                return None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def idle(self) -> None:
        """Return once every delivery started so far was delivered or given up."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        """The daemon stops: what is not delivered yet is given up (and said)."""
        if self._pending:
            log.warning(
                "job webhooks: %d deliveries given up, the daemon stops: %s",
                len(self._pending),
                ", ".join(self._pending.values()),
            )
            self.outcomes["given_up"] += len(self._pending)
            for task in list(self._pending):
                task.cancel()
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
