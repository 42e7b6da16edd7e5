"""The listening address, taken before anything else starts.

A port in use must be found in milliseconds, not after Airflow detection and the warm
helper's start (tens of seconds of CPU on a loaded host, again at every restart a service
manager makes). So the daemon binds its sockets first, without listening: a connection
is refused, as before, until the daemon serves; then aiohttp listens on them
(``web.SockSite``).
"""

from __future__ import annotations

import asyncio
import socket


async def reserve(host: str, port: int) -> list[socket.socket]:
    """A socket bound to each address ``host`` resolves to, on ``port``; OSError (the
    address in use, or not this host's) closes what was bound and says which."""
    loop = asyncio.get_running_loop()
    found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    bound: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in found:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            # as aiohttp's own sites do: a restart may bind while old connections linger
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setblocking(False)
            sock.bind(address)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound
