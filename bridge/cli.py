"""Command line: parse flags, load settings, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web

import bridge
from bridge import config
from bridge.access_log import AccessLogger
from bridge.airflow_info import AirflowNotUsable
from bridge.app import create_app
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
    try:
        asyncio.run(serve(settings, ssl_context))
    except AirflowNotUsable as exc:
        log.error("cannot use Airflow: %s", exc)
        return 3
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.listen_host, settings.listen_port, exc)
        return 4
    return 0


async def serve(settings: config.Settings, ssl_context: ssl.SSLContext | None) -> None:
    """Serve until SIGTERM or SIGINT; startup (Airflow detection) runs before the port opens."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(
        create_app(settings),
        handler_cancellation=True,
        access_log_class=AccessLogger,
    )
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, settings.listen_host, settings.listen_port, ssl_context=ssl_context
        )
        await site.start()
        scheme = "https" if ssl_context else "http"
        log.info(
            "serving on %s://%s:%s/admin/rest_api/ (auth %s, dags folder %s)",
            scheme,
            settings.listen_host,
            settings.listen_port,
            "on" if settings.auth_enabled else "off",
            settings.dags_folder,
        )
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
