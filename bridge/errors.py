"""The one error a request's own input can cause: answered as a 4xx envelope saying why."""

from __future__ import annotations


class RequestError(ValueError):
    """The request cannot be run as asked; ``status`` is the HTTP code to answer with."""

    def __init__(
        self, message: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
