"""The access log: one line per request, with secrets in the query string masked, a request
whose client left before its answer ended included."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from bridge.http.forms import shown_arguments
from bridge.http.guards.auth import CALLER
from bridge.http.guards.proxies import client_of
from bridge.http.keys import known_cli_commands, settings_of
from bridge.http.metrics import CLIENT_LEFT


class AccessLogger(AbstractAccessLogger):
    """``peer token=NAME "METHOD path?masked-query" status bytes seconds`` (``token=-``: no
    token was asked for, or the request was refused before it was looked at; bytes ``-``:
    not known, for a client that left, status 499)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        query = request.rel_url.raw_query_string
        target = request.path
        # A request aiohttp refused before routing it (a malformed request line) has no app.
        app = getattr(request, "app", None)
        settings = settings_of(app) if app else None
        remote = request.remote
        if isinstance(request, web.Request) and app is not None:
            remote = client_of(request).remote
        if query:
            token = settings.secret_values if settings else None
            installed = known_cli_commands(app)
            arguments = dict(parse_qsl(query, keep_blank_values=True))
            masked = shown_arguments(arguments, token, installed)
            target += "?" + urlencode(masked)
        caller = request.get(CALLER)
        self.logger.info(
            '%s token=%s "%s %s" %s %s %.3fs',
            remote,
            caller.name if caller is not None else "-",
            request.method,
            target,
            response.status,
            response.body_length if response.prepared else "-",
            time,
        )


@web.middleware
async def client_left_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp writes no access line for a request whose handler was cancelled, which is
    what a client that leaves before its answer ended does (handler_cancellation): this
    writes it, with the status the metrics count it under (499), through the server's own
    access logger, so that it goes wherever the other lines go (and nowhere when off)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        return await handler(request)
    except asyncio.CancelledError:
        logger = getattr(request.protocol, "access_logger", None)
        if isinstance(logger, AbstractAccessLogger) and logger.enabled:
            left = web.StreamResponse(status=int(CLIENT_LEFT))
            logger.log(request, left, loop.time() - started)
        raise
