"""Requests that come through a reverse proxy the operator trusts (``trusted_proxies``): the
client is who the proxy says (``X-Forwarded-For``), and so are the scheme and host it was
asked for (``X-Forwarded-Proto``, ``X-Forwarded-Host``). From anyone else those headers are
ignored: a client could otherwise name any address in the logs. The guards, the views, the
page and the access log ask :func:`client_of`."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from bridge.http.keys import settings_of

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Seen:
    """Who asked, and what for, as far as trusted proxies tell."""

    remote: str | None
    scheme: str
    host: str


def trusted(address: str | None, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in networks)


def seen(request: web.BaseRequest, networks: tuple[Network, ...]) -> Seen:
    """The client, scheme and host of ``request``, behind the trusted proxies it came
    through: the nearest address in X-Forwarded-For that is not one of them."""
    # Not request.host: without a Host header it asks the resolver for this machine's name.
    remote, scheme, host = request.remote, request.scheme, request.headers.get("Host", "")
    if not networks or not trusted(remote, networks):
        return Seen(remote, scheme, host)
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        remote = hop
        if not trusted(hop, networks):
            break
    forwarded_scheme = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
    forwarded_host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    return Seen(
        remote,
        forwarded_scheme.lower() if forwarded_scheme in ("http", "https") else scheme,
        forwarded_host or host,
    )


SEEN: web.RequestKey[Seen] = web.RequestKey("seen", Seen)


def client_of(request: web.Request) -> Seen:
    """The client, scheme and host of ``request`` as the trusted proxies tell (worked out
    once per request, with the settings in force at its first look).

    Read from the request itself rather than from a clone carrying them (request.clone):
    a clone's state is a copy, so what auth and the view store on it (the caller, the API)
    would never reach the access log and the metrics, which see the request aiohttp made.
    """
    known = request.get(SEEN)
    if known is None:
        known = request[SEEN] = seen(request, settings_of(request.app).trusted_proxies)
    return known
