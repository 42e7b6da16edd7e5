"""What a web browser may do here. Loopback is no boundary for a browser: any page the
operator visits can make the browser send requests to the daemon (an ``<img>`` is enough
to pause a DAG), and a DNS-rebinding page can even read the answers, under a name it
controls that resolves to 127.0.0.1. So:

- a request's ``Host`` must name this daemon: an IP address, ``localhost``, or a name the
  operator lists in ``allowed_hosts`` (a reverse proxy's public name); else 421;
- a cross-site request to the API (``Sec-Fetch-Site`` cross-site or same-site, or an
  ``Origin`` other than the one the request is addressed to) must carry a valid token; else
  403, and without a token configured it is always refused;
- no CORS headers are ever sent, so no other origin's script may read an answer.

The test page, curl and scripts are unaffected: they send no ``Origin`` of another site.
"""

from __future__ import annotations

import ipaddress
import logging

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from bridge.errors import RequestError
from bridge.http.guards.auth import PROTECTED_ROUTES, identify, presented_token
from bridge.http.guards.proxies import client_of
from bridge.http.keys import settings_of

log = logging.getLogger(__name__)
DEFAULT_PORTS = {"http": 80, "https": 443}


def host_name(host: str) -> str:
    """The name or address in a Host header, without its port, lower case."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8799
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """An IP address (a rebinding page cannot make the browser send one), localhost (which
    browsers resolve themselves), or a name the operator listed."""
    name = host_name(host).rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _authority(url: URL) -> str:
    """host[:port] as a Host header would say it (the scheme's default port left out)."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    port = url.explicit_port
    if port is None or port == DEFAULT_PORTS.get(url.scheme):
        return host.lower()
    return f"{host.lower()}:{port}"


def cross_site(request: web.Request) -> bool:
    """The browser says the request comes from another site, or from another origin than
    the one it is addressed to."""
    fetched_from = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if fetched_from in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    try:
        origin_url = URL(origin.strip())
    except ValueError:
        return True
    if origin.strip() == "null" or not origin_url.raw_host:
        return True  # a sandboxed frame, a file: page, a data: URL
    addressed = client_of(request).host.strip().lower()
    for scheme, port in DEFAULT_PORTS.items():
        if origin_url.scheme == scheme:
            addressed = addressed.removesuffix(f":{port}")
    return _authority(origin_url) != addressed


@web.middleware
async def browser_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = settings_of(request.app)
    # As a trusted proxy forwarded it, or the Host header (none: nothing to check).
    client = client_of(request)
    host = client.host or None
    if host is not None and not host_allowed(host, settings.allowed_hosts):
        log.warning("refused a request for host %r from %s", host[:200], client.remote)
        raise RequestError(
            f"this daemon does not answer to the host {host_name(host)!r}: use its address, "
            "localhost, or a name listed in allowed_hosts",
            status=421,
        )
    if request.match_info.route.name in PROTECTED_ROUTES and cross_site(request):
        presented = presented_token(request, settings)
        if not (settings.auth_enabled and identify(settings, presented) is not None):
            log.warning("refused a cross-site request from %s", client.remote)
            raise RequestError(
                "cross-site request refused: a page of another site may not call this "
                "daemon (a script or curl may, with the token header)",
                status=403,
            )
    return await handler(request)
