"""The job webhooks' POST (a bridge.jobs.webhooks Sender) with aiohttp's client: HTTP client
code lives with the adapters, so the jobs package stays free of aiohttp."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from bridge.jobs.webhooks import SendFailed


class AiohttpSender:
    """One client session for every delivery: made at the first POST (so on the loop), closed
    by the webhooks' ``close``."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def send(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """POST ``body``; the answer's status, or SendFailed when there was none."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,  # a redirect is a failed try (docs/api.md)
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                await response.read()
                return response.status
        except aiohttp.InvalidURL as exc:
            # Its text is the URL itself, credentials and query included: never logged.
            raise SendFailed(type(exc).__name__) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendFailed(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            ) from exc

    async def close(self) -> None:
        """Close the session, if a POST made one."""
        if self._session is not None:
            await self._session.close()
            self._session = None
