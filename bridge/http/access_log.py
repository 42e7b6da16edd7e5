"""The access log: one line per request, with secrets in the query string masked."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bridge.http.forms import shown_arguments
from bridge.http.guards.auth import CALLER
from bridge.http.guards.proxies import seen
from bridge.http.keys import known_cli_commands, settings_of


class AccessLogger(AbstractAccessLogger):
    """``peer token=NAME "METHOD path?masked-query" status bytes seconds`` (``-``: no
    token was asked for, or the request was refused before it was looked at)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        query = request.rel_url.raw_query_string
        target = request.path
        app = getattr(request, "app", None)
        settings = settings_of(app) if app else None
        remote = seen(request, settings.trusted_proxies).remote if settings else request.remote
        if query:
            token = settings.secret_values if settings else None
            installed = known_cli_commands(app)
            arguments = dict(parse_qsl(query, keep_blank_values=True))
            masked = shown_arguments(arguments, token, installed)
            target += "?" + urlencode(masked)
        caller = request.get(CALLER) if isinstance(request, web.Request) else None
        self.logger.info(
            '%s token=%s "%s %s" %s %s %.3fs',
            remote,
            caller.name if caller is not None else "-",
            request.method,
            target,
            response.status,
            response.body_length,
            time,
        )
