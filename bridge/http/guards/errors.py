"""The error middleware: every failure becomes the seed's JSON envelope."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.calls import envelope
from bridge.errors import RequestError
from bridge.http import forms
from bridge.http.answers import error
from bridge.http.keys import STARTED_ENVELOPE, known_cli_commands, settings_of

log = logging.getLogger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A RequestError or an HTTP error is a 4xx/5xx envelope saying why; a bug is logged
    and answered 500 without a traceback; a client that left is nobody's error."""
    try:
        return await handler(request)
    except RequestError as exc:
        return error(_bare_envelope(request), exc.status, str(exc), exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error(_bare_envelope(request), exc.status, exc.reason, allow)
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("unexpected error for %s %s", request.method, request.path)
        return error(_bare_envelope(request), 500, "internal error; see the daemon log")


def _bare_envelope(request: web.Request) -> dict[str, Any]:
    """The envelope started for this request (with its arguments and call time), or a new
    one when the request failed before its arguments were read."""
    started = request.get(STARTED_ENVELOPE)
    if started is not None:
        return started
    settings = settings_of(request.app)
    too_long = len(request.query_string) > forms.MAX_QUERY_STRING
    query = {} if too_long else dict(request.query)
    token = settings.secret_values
    arguments = forms.shown_arguments(query, token, known_cli_commands(request.app))
    return envelope.start(arguments, {}, envelope.now())
