"""Command line: parse flags, load settings, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from dataclasses import replace
from pathlib import Path

from aiohttp import web

import bridge
from bridge import config, page
from bridge.access_log import AccessLogger
from bridge.airflow_info import AirflowNotUsable
from bridge.app import create_app
from bridge.leftovers import folder_in, stop_leftovers
from bridge.notify import Notifier
from bridge.redact import LogRedactor
from bridge.state import RUNTIME, Runtime
from bridge.uploads import clean_stale_uploads

log = logging.getLogger("bridge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-rest-bridge",
        description=(
            "Serve the Airflow CLI over HTTP (the airflow-rest-api-plugin API) from a "
            "standalone daemon. Settings come from the [rest_api_plugin] section of "
            "airflow.cfg and AIRFLOW__REST_API_PLUGIN__<KEY> environment variables."
        ),
    )
    parser.add_argument(
        "--host", help="address to listen on (default: listen_host, else 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        help=f"port to listen on (default: listen_port, else {config.DEFAULT_PORT})",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="airflow.cfg to read (default: $AIRFLOW_CONFIG, else $AIRFLOW_HOME/airflow.cfg, "
        "else ~/airflow/airflow.cfg)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {bridge.__version__}")
    return parser


def setup_logging() -> None:
    # Under systemd, journald stamps every line itself.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``airflow-rest-bridge``; returns the exit code."""
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        settings = config.load(args.config, os.environ)
        settings = config.with_listen(settings, args.host, args.port)
    except config.ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    ssl_context = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        except (OSError, ssl.SSLError) as exc:
            log.error("configuration error: cannot load the TLS certificate/key: %s", exc)
            return 2
    if settings.dags_folder.is_dir():
        clean_stale_uploads(settings.dags_folder)
    stop_leftovers(folder_in(settings.airflow_home))
    try:
        asyncio.run(serve(settings, ssl_context, args))
    except AirflowNotUsable as exc:
        log.error("cannot use Airflow: %s", exc)
        return 3
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.listen_host, settings.listen_port, exc)
        return 4
    return 0


async def serve(
    settings: config.Settings, ssl_context: ssl.SSLContext | None, args: argparse.Namespace
) -> None:
    """Serve until SIGTERM or SIGINT; startup (Airflow detection) runs before the port opens.

    SIGHUP reloads the configuration; systemd hears READY=1 once the port is open, STATUS=
    lines, WATCHDOG=1 pings when it asked for them, and STOPPING=1 on the way out.
    """
    notifier = Notifier(os.environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings)
    runtime = app[RUNTIME]
    # On the handlers, so that aiohttp's own records (its parse errors quote the request
    # line, query string and all) pass through it too.
    redactor = LogRedactor(lambda: runtime.settings.rest_api_plugin_expected_http_token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    runner = web.AppRunner(app, handler_cancellation=True, access_log_class=AccessLogger)
    await runner.setup()
    watchdog: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(
            runner, settings.listen_host, settings.listen_port, ssl_context=ssl_context
        )
        await site.start()
        address = f"{page.base_url(settings)}/admin/rest_api/"
        log.info(
            "serving on %s (auth %s, dags folder %s)",
            address,
            "on" if settings.auth_enabled else "off",
            settings.dags_folder,
        )
        loop.add_signal_handler(signal.SIGHUP, reload, runtime, args, notifier)
        notifier.ready(f"serving on {address}")
        if notifier.watchdog_interval:
            watchdog = asyncio.create_task(_watchdog(notifier, runtime, address))
        await stop.wait()
        log.info(
            "stopping: no new connections; running commands get %ss", settings.kill_grace_period
        )
        notifier.stopping()
        await site.stop()
        await _stop_commands(runtime)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await runner.cleanup()


async def _stop_commands(runtime: Runtime) -> None:
    """Let running commands finish for the grace period, then stop their process groups;
    their requests end with a final record that says the daemon stopped them."""
    grace = runtime.settings.kill_grace_period
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(runtime.slots.idle.wait(), timeout=grace)
        return
    runtime.stopping = True
    log.warning("stopping %d running command(s)", len(runtime.commands))
    await asyncio.gather(*(command.stop() for command in list(runtime.commands)))
    with contextlib.suppress(TimeoutError):
        # The handlers write their final records once their commands are gone.
        await asyncio.wait_for(runtime.slots.idle.wait(), timeout=grace)


async def _watchdog(notifier: Notifier, runtime: Runtime, address: str) -> None:
    assert notifier.watchdog_interval is not None
    while True:
        notifier.send(
            "WATCHDOG=1", f"STATUS=serving on {address}; {runtime.slots.running} command(s) running"
        )
        await asyncio.sleep(notifier.watchdog_interval)


def reload(runtime: Runtime, args: argparse.Namespace, notifier: Notifier) -> None:
    """SIGHUP: read the configuration again. A bad one is refused and the old one stays;
    requests already running keep the settings they started with."""
    notifier.reloading()
    old = runtime.settings
    try:
        new = config.with_listen(config.load(args.config, os.environ), args.host, args.port)
    except config.ConfigError as exc:
        log.error("reload refused, the running configuration stays in force: %s", exc)
        notifier.ready(f"reload refused: {exc}")
        return
    fixed = ("listen_host", "listen_port", "tls_cert_file", "tls_key_file", "airflow_executable")
    changed = [name for name in fixed if getattr(new, name) != getattr(old, name)]
    if changed:
        log.warning("%s take effect at the next start, not on reload", ", ".join(changed))
        new = replace(new, **{name: getattr(old, name) for name in fixed})
    runtime.settings = new
    runtime.slots.limit = new.max_concurrent_commands
    log.info("configuration reloaded (auth %s)", "on" if new.auth_enabled else "off")
    notifier.ready("configuration reloaded")
