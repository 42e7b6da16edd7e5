"""Who is calling: the seed's header token (every scope) or a named token (its scopes),
checked in constant time on the API and jobs endpoints only.

The test page, its static files, the OpenAPI document and /health are served without a
token (the page asks for it and sends it with every call). Which scope an API needs is the
catalogue's (``Api.scope``); the API view checks it once it knows the API.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.calls.call import NOBODY, Caller
from bridge.config.settings import Settings
from bridge.config.tokens import ALL_SCOPES, SEED_IDENTITY, SEED_NAME
from bridge.http.answers import forbidden
from bridge.http.guards.proxies import client_of
from bridge.http.keys import settings_of

log = logging.getLogger(__name__)
# Route names (bridge.http.app's table): the API and the jobs it starts.
PROTECTED_ROUTES = frozenset({"api", "jobs", "job", "job_cancel", "job_output"})
CALLER: web.RequestKey[Caller] = web.RequestKey("caller", Caller)


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so the token cannot be guessed byte by byte from timing."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def identify(settings: Settings, presented: str | None) -> Caller | None:
    """The caller the presented token names, with its identity; None for a missing or wrong
    one (a revoked token is unknown from the reload on)."""
    if not settings.auth_enabled:
        return NOBODY
    seed = settings.rest_api_plugin_expected_http_token
    if seed and token_matches(presented, seed):
        return Caller(SEED_NAME, ALL_SCOPES, SEED_IDENTITY)
    named = settings.named_tokens.find(presented)
    if named is None:
        return None
    return Caller(named.name, named.scopes, named.identity, named.dags)


def presented_token(request: web.Request, settings: Settings) -> str | None:
    """The token header's value; None when missing, or when it is not text (aiohttp keeps
    bytes that are not UTF-8 as surrogates, which no token of ours can be)."""
    value = request.headers.get(settings.rest_api_plugin_http_token_header_name)
    try:
        return value.encode().decode() if value is not None else None
    except UnicodeError:
        return None


@web.middleware
async def token_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name in PROTECTED_ROUTES:
        settings = settings_of(request.app)
        caller = identify(settings, presented_token(request, settings))
        if caller is None:
            log.warning("token authentication failed for %s", client_of(request).remote)
            return forbidden()
        request[CALLER] = caller
    return await handler(request)


def caller_of(request: web.Request) -> Caller:
    """The caller the middleware found (NOBODY where it did not look)."""
    return request.get(CALLER, NOBODY)
