"""systemd's notify protocol (sd_notify): readiness, status, stopping, watchdog pings.

Nothing happens when NOTIFY_SOCKET is unset, so the daemon behaves the same outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends ``KEY=VALUE`` lines to the socket systemd named in NOTIFY_SOCKET."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        # '@name' is Linux's abstract socket namespace, spelt with a leading NUL.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = _watchdog_interval(environ)

    def send(self, *lines: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:  # systemd gone or socket unreadable: serve on regardless
            log.warning("sd_notify to %s failed: %s", self._address.lstrip("\0"), exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of WatchdogSec, when systemd asked this process for pings."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
