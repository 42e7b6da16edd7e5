"""The seed's header token: checked in constant time on the API and jobs endpoints only.

The test page, its static files, the OpenAPI document and /health are served without the
token (the page asks for it and sends it with every call).
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.http import envelope
from bridge.http.keys import settings_of

log = logging.getLogger(__name__)
# Route names (bridge.http.app's table): the API and the jobs it starts.
PROTECTED_ROUTES = frozenset({"api", "jobs", "job", "job_cancel", "job_output"})


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte from timing."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


@web.middleware
async def token_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = settings_of(request.app)
    expected = settings.rest_api_plugin_expected_http_token
    if expected and request.match_info.route.name in PROTECTED_ROUTES:
        presented = request.headers.get(settings.rest_api_plugin_http_token_header_name)
        if not token_matches(presented, expected):
            log.warning("token authentication failed for %s", request.remote)
            return envelope.forbidden()
    return await handler(request)
