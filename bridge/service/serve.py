"""Serving until SIGTERM/SIGINT, as a systemd service or by hand.

The application's own lifecycle (bridge.http.lifecycle) does startup and shutdown; this adds
what belongs to the process: the listening socket (with TLS), the signals (SIGHUP reloads
the configuration), and systemd's notify protocol (READY=1 once the port is open, STATUS=,
WATCHDOG=1 pings when asked for, STOPPING=1 on the way out).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bridge.config.load import ConfigError, for_reload, load, with_listen
from bridge.config.settings import CurrentSettings, Settings
from bridge.http.access_log import AccessLogger
from bridge.http.app import create_app
from bridge.http.keys import COMMANDS, SETTINGS
from bridge.http.lifecycle import reloaded
from bridge.http.page import base_url
from bridge.offload import in_thread
from bridge.service import listening, loop_watch
from bridge.service.notify import Notifier
from bridge.text.redact import LogRedactor

log = logging.getLogger("bridge")
# With asyncio's debug mode on (PYTHONASYNCIODEBUG=1), a callback that holds the loop longer
# than this is logged (bridge.service.loop_watch); the tests run the daemon so, and fail on it.
SLOW_CALLBACK_SECONDS = 0.05


async def serve(
    settings: Settings,
    ssl_context: ssl.SSLContext | None,
    reread: Callable[[], Settings],
    sighup_pending: Callable[[], bool] = lambda: False,
) -> None:
    """Serve until SIGTERM or SIGINT. Startup (Airflow detection) runs before the port
    opens; ``reread`` loads the configuration again on SIGHUP (blocking; run in a thread);
    ``sighup_pending`` says whether one came before this handler was in place
    (bridge.launch)."""
    loop = asyncio.get_running_loop()
    if loop.get_debug():
        loop_watch.watch(SLOW_CALLBACK_SECONDS)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ready = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()
    notifier = Notifier(os.environ)
    app = create_app(settings)  # its startup (Airflow detection) runs in runner.setup()
    current = app[SETTINGS]
    # Before that startup: a port in use ends the start at once (exit code 4).
    sockets = await listening.reserve(settings.listen_host, settings.listen_port)

    def on_sighup() -> None:
        # Handled from the start, so that a SIGHUP while Airflow is detected does not end
        # the daemon; the reload itself waits until the daemon serves.
        reloading = _reload(current, reread, notifier, ready, functools.partial(reloaded, app))
        task = asyncio.create_task(reloading)
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    if sighup_pending():
        on_sighup()
    # On the handlers, so that aiohttp's own records (its parse errors quote the request
    # line, query string and all) pass through it too.
    redactor = log_redactor(current)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    runner = web.AppRunner(app, handler_cancellation=True, access_log_class=AccessLogger)
    try:
        await runner.setup()
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    watchdog: asyncio.Task[None] | None = None
    try:
        for sock in sockets:
            await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        address = f"{base_url(settings)}{app.router['index'].url_for()}"
        log.info(
            "serving on %s (auth %s, dags folder %s)",
            address,
            "on" if settings.auth_enabled else "off",
            settings.dags_folder,
        )
        notifier.ready(f"serving on {address}")
        ready.set()
        if notifier.watchdog_interval:
            watchdog = asyncio.create_task(_watchdog(notifier, app, address))
        await stop.wait()
        log.info(
            "stopping: no new connections; running commands get %ss",
            current.settings.kill_grace_period,
        )
        notifier.stopping()
    finally:
        for task in [*reloads, *([watchdog] if watchdog else [])]:
            task.cancel()
        await asyncio.gather(*reloads, *([watchdog] if watchdog else []), return_exceptions=True)
        # Stops the sites, then on_shutdown (running commands stopped), then cleanup.
        await runner.cleanup()
        for sock in sockets:
            sock.close()  # a site that never started leaves its socket to us


async def _watchdog(notifier: Notifier, app: web.Application, address: str) -> None:
    interval = notifier.watchdog_interval
    assert interval is not None  # only started when systemd asked for pings
    while True:
        running = app[COMMANDS].busy
        notifier.send("WATCHDOG=1", f"STATUS=serving on {address}; {running} command(s) running")
        await asyncio.sleep(interval)


async def _reload(
    current: CurrentSettings,
    reread: Callable[[], Settings],
    notifier: Notifier,
    ready: asyncio.Event,
    in_force: Callable[[], Awaitable[None]],
) -> None:
    """SIGHUP: read the configuration again. A bad one is refused and the old one stays;
    requests already running keep the settings they started with; ``in_force`` then does
    what changes at once (bridge.http.lifecycle.reloaded): callers waiting for a slot get
    the ones a higher max_concurrent_commands frees, revoked tokens lose their follows."""
    await ready.wait()
    notifier.reloading()
    try:
        new = await in_thread(reread)
    except ConfigError as exc:
        log.error("reload refused, the running configuration stays in force: %s", exc)
        notifier.ready(f"reload refused: {exc}")
        return
    new, changed = for_reload(current.settings, new)
    if changed:
        log.warning("%s take effect at the next start, not on reload", ", ".join(changed))
    current.settings = new
    await in_force()
    log.info("configuration reloaded (auth %s)", "on" if new.auth_enabled else "off")
    notifier.ready("configuration reloaded")


def log_redactor(current: CurrentSettings) -> LogRedactor:
    """The filter on the daemon's log handlers: the settings' secrets masked, and aiohttp's
    parser errors (they quote the request line, query string and all) reduced to their name."""
    return LogRedactor(lambda: current.settings.secret_values, quoting=(HttpProcessingError,))


def rereader(config: Path | None, host: str | None, port: int | None) -> Callable[[], Settings]:
    """How SIGHUP loads the configuration: as at startup, with the same flags."""

    def reread() -> Settings:
        return with_listen(load(config, os.environ), host, port)

    return reread


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plain HTTP. Raises ConfigError."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate/key: {exc}") from exc
    return context
