"""Request bodies: who may send one, how many bytes may be arriving at once, for how long.

- A body is read only once the caller may call the API the query string names: its scope
  and method are decided before any byte of the body (bridge.http.views), so a token
  without the scope gets its 403 at once, however large the body it started to send.
- A body whose API the query string does not name is read under ``UNNAMED_BODY`` bytes,
  form fields only (an upload needs ``?api=deploy_dag``).
- The bodies arriving at once stay within ``max_body_bytes_in_flight`` bytes, one token's
  within its share (``token_share``): a body that would go over is a 429 before it is read.
  A body with a Content-Length counts that many bytes, one without counts its cap.
- A whole body arrives within ``body_timeout`` seconds (and never stalls for 30): else 408.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from bridge.config.settings import Settings
from bridge.errors import RequestError
from bridge.process.slots import share

UNNAMED_BODY = 64 * 1024


class BodyBudget:
    """The bytes of the request bodies arriving now, in all and per token identity."""

    def __init__(self) -> None:
        self.total = 0
        self._by_owner: Counter[str] = Counter()

    @contextlib.contextmanager
    def reserved(self, size: int, owner: str | None, settings: Settings) -> Iterator[None]:
        """Count ``size`` bytes as arriving for the block; 429 when that goes over."""
        limit = settings.max_body_bytes_in_flight
        if self.total + size > limit:
            raise RequestError(
                f"request bodies of {self.total} bytes are arriving already and this one "
                f"counts {size} (max_body_bytes_in_flight {limit}): retry shortly",
                status=429,
                headers={"Retry-After": "1", "Connection": "close"},
            )
        if owner is not None and self._by_owner[owner] + size > share(limit, settings):
            raise RequestError(
                f"this token's request bodies of {self._by_owner[owner]} bytes are arriving "
                f"already and this one counts {size}, over its share (token_share "
                f"{settings.token_share:g} of max_body_bytes_in_flight {limit}): retry shortly",
                status=429,
                headers={"Retry-After": "1", "Connection": "close"},
            )
        self.total += size
        if owner is not None:
            self._by_owner[owner] += size
        try:
            yield
        finally:
            self.total -= size
            if owner is not None:
                self._by_owner[owner] -= size
                if not self._by_owner[owner]:
                    del self._by_owner[owner]
