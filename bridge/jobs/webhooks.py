"""Telling the operator's receivers that a job ended (``job_webhooks``).

Each ended job's record (what ``GET .../jobs/<id>`` answers) is POSTed as JSON to every URL
the operator set, signed with HMAC-SHA256 over the exact body bytes with
``job_webhook_secret``: ``X-Bridge-Signature: sha256=<hex>``, as GitHub signs its webhooks.
A try that gets no 2xx (refused, timed out, 5xx, a redirect) is tried again after 1 s, then
2, 4, ... up to 60 s between tries, for ``job_webhook_retry_for`` seconds; then it is given
up and logged. Deliveries run in tasks of their own: a receiver that is down or slow never
holds a job, a follower or the event loop. At most ``MAX_PENDING`` wait at once (beyond, the
oldest is given up); the daemon's stop gives up the rest, and no job that ends after it is
sent. ``/metrics`` counts each outcome. URLs are logged without their query and credentials:
either may hold a secret.

The POST itself is a :class:`Sender`'s, handed in by the app (bridge/http/webhook_sender.py):
HTTP client code belongs to the adapters, and this package imports no aiohttp.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import traceback
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from bridge.config.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Bridge-Signature"
FIRST_DELAY, MAX_DELAY = 1.0, 60.0  # seconds between tries: doubling, capped
TRY_TIMEOUT = 10.0  # seconds one POST may take, connecting included
MAX_PENDING = 1000  # deliveries waiting or retrying at once
OUTCOMES = ("delivered", "given_up", "dropped")


class SendFailed(Exception):
    """A try that got no answer (refused, reset, timed out, a URL the client refuses); its
    text says why and holds no URL credentials or query."""


class Sender(Protocol):
    """What POSTs a delivery: an HTTP client, which lives with the adapters."""

    async def send(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """POST ``body`` to ``url`` within ``timeout`` seconds (connecting included), not
        following a redirect: the answer's status, or :class:`SendFailed` without one."""
        ...

    async def close(self) -> None:
        """Let go of the connections; no send follows."""
        ...


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
    """The deliveries of one daemon; ``ended`` is called (on the loop) as each job ends.
    ``sender`` makes each try's POST; ``close`` closes it."""

    def __init__(self, current: Callable[[], Settings], sender: Sender) -> None:
        self._current = current
        self._sender = sender
        self._pending: dict[asyncio.Task[None], str] = {}  # oldest first
        self._closed = False
        self.outcomes: Counter[str] = Counter()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def ended(self, record: dict[str, Any]) -> None:
        """Send ``record`` to the receivers the settings in force name, if its API and token
        are among those they want; nothing once the daemon stops (``close``)."""
        if self._closed:  # a delivery started now would outlive close() and the sender
            return
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
        try:
            status = await self._sender.send(url, body, headers, TRY_TIMEOUT)
        except SendFailed as exc:
            return str(exc)
        except Exception as exc:
            # Not a failure the sender knows (a host name the client cannot encode, a bug):
            # still a failed try, and retried like the others. Nothing says that it can never
            # work, and the retries are bounded (job_webhook_retry_for, MAX_PENDING), whereas
            # a delivery given up is a record lost. Its text is left out, as it may quote the
            # URL, secrets and all; where it was raised says enough to find it. _deliver logs
            # it (with shown(url)) at the first try and when it gives up.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return f"unexpected {type(exc).__name__} at {Path(where.filename).name}:{where.lineno}"
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def idle(self) -> None:
        """Return once every delivery started so far was delivered or given up."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        """The daemon stops: what is not delivered yet is given up (and said), no job that
        ends from now on is sent, and the sender is closed."""
        self._closed = True
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
        await self._sender.close()
