"""The command line: parse flags, load the settings, serve until SIGTERM/SIGINT (or manage
the named tokens: ``token add|list|revoke``, bridge.token_commands).

Exit codes: 0 stopped by a signal, 2 configuration error, 3 Airflow cannot be used, 4 the
address cannot be listened on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import queue
import sys
from collections.abc import Callable
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from typing import TypeVar

import bridge
from bridge import launch, token_commands
from bridge.catalogue.installed import AirflowNotUsable
from bridge.config import parsers
from bridge.config.groups.defaults import DEFAULT_PORT
from bridge.config.load import ConfigError
from bridge.jobs.shared.schema import JobsDatabaseUnusable
from bridge.service.serve import rereader, serve, tls_context

log = logging.getLogger("bridge")
T = TypeVar("T")


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
        "--port", help=f"port to listen on (default: listen_port, else {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="airflow.cfg to read (default: $AIRFLOW_CONFIG, else $AIRFLOW_HOME/airflow.cfg, "
        "else ~/airflow/airflow.cfg)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {bridge.__version__}")
    token_commands.add_parser(parser.add_subparsers(dest="command", metavar="{token}"))
    return parser


def setup_logging() -> QueueListener:
    """Log lines go to stderr from a thread of their own: the event loop only queues them, so
    that a reader that falls behind (journald, a pipe) never holds the loop. Returns the
    thread's listener, to be stopped (and so flushed) at exit."""
    # Under systemd, journald stamps every line itself.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(logging.Formatter(fmt))
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queued = QueueHandler(lines)
    queued.setFormatter(
        logging.Formatter()
    )  # the message (and traceback); the writer adds the rest
    logging.basicConfig(level=logging.INFO, handlers=[queued])
    listener = QueueListener(lines, writer)
    listener.start()
    return listener


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``airflow-rest-bridge``; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "token":
        return token_commands.run(args)
    listener = setup_logging()
    try:
        return _run(args)
    finally:
        listener.stop()


def _run(args: argparse.Namespace) -> int:
    try:
        port = _flag("--port", args.port, parsers.port)
        host = _flag("--host", args.host, parsers.text)
        reread = rereader(args.config, host or None, port)
        settings = reread()
        launch.sighup_pending()  # one that came before this read is answered by it
        ssl_context = tls_context(settings)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    try:
        asyncio.run(serve(settings, ssl_context, reread, launch.sighup_pending))
    except AirflowNotUsable as exc:
        log.error("cannot use Airflow: %s", exc)
        return 3
    except JobsDatabaseUnusable as exc:
        log.error("cannot use jobs_database: %s", exc)
        return 5
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.listen_host, settings.listen_port, exc)
        return 4
    return 0


def _flag(name: str, text: str | None, parse: Callable[[str], T]) -> T | None:
    """A flag's value, checked like the setting it overrides (a ConfigError naming it)."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(f"{name} {text}: {exc}") from None
