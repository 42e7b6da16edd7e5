"""The seed's header token: checked in constant time on the API endpoint only.

The test page, its static files and /health are served without the token (the page asks
for it and sends it with every call).
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge import envelope
from bridge.state import settings_of

log = logging.getLogger(__name__)
PROTECTED_PREFIX = "/admin/rest_api/api"


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte from timing."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


@web.middleware
async def token_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = settings_of(request.app)
    if settings.auth_enabled and request.path.startswith(PROTECTED_PREFIX):
        assert settings.rest_api_plugin_expected_http_token is not None
        presented = request.headers.get(settings.rest_api_plugin_http_token_header_name)
        if not token_matches(presented, settings.rest_api_plugin_expected_http_token):
            log.warning("token authentication failed for %s", request.remote)
            return envelope.forbidden()
    return await handler(request)
