"""The keys of who may call and how the daemon serves.

Part of :class:`bridge.config.settings.Settings`, which puts every group together.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from bridge.config import parsers
from bridge.config.groups.defaults import DEFAULT_PORT
from bridge.config.keys import setting


@dataclass(frozen=True)
class AccessKeys:
    """Who may call, where the daemon listens and how it serves (TLS)."""

    log_loading: bool = setting(
        False,
        parsers.parse_bool,
        "Log the resolved settings once at startup (the token is never logged).",
        seed=True,
    )
    filter_loading_messages_in_cli_response: bool = setting(
        True,
        parsers.parse_bool,
        "Drop Airflow's start-up noise from command output: Python warnings printed while "
        "Airflow imports, and the log lines about plugin setup, filling the DagBag, loading DAG "
        "bundles, the auth backend, the executor and graphviz. Other lines, task logs included, "
        "are kept. False passes output on unchanged, but for the bridge's own secrets (always "
        "masked).",
        seed=True,
    )
    rest_api_plugin_http_token_header_name: str = setting(
        "rest_api_plugin_http_token",
        parsers.header_name,
        "The request header that carries the token (letters, digits, - and _).",
        seed=True,
    )
    rest_api_plugin_expected_http_token: str | None = setting(
        None,
        parsers.optional_text,
        "The token every API call must send. Unset or empty: no authentication.",
        seed=True,
        secret=True,
        example="a-long-random-secret",
    )
    tokens_file: Path | None = setting(
        None,
        parsers.optional_path,
        "Named tokens with scopes, written by 'airflow-rest-bridge token add|revoke' (hashes "
        "only; owner-only mode). Set: every call needs a token, named or the seed's one.",
        example="/etc/airflow-rest-bridge/tokens.json",
    )
    metrics_token: str | None = setting(
        None,
        parsers.optional_text,
        "A token for GET /metrics alone, sent as 'Authorization: Bearer ...' (Prometheus' "
        "authorization setting); the API's token is accepted too. Unset: /metrics is read "
        "with the API's token, or by anyone when the API has none.",
        secret=True,
        example="another-long-random-secret",
    )
    listen_host: str = setting(
        "127.0.0.1",
        lambda text: text.strip() or "127.0.0.1",
        "Address to listen on (--host overrides it).",
        restart=True,
    )
    listen_port: int = setting(
        DEFAULT_PORT,
        parsers.port,
        "Port to listen on, 1-65535 (--port overrides it). One of Airflow's own ports in "
        "this configuration is refused: [webserver] web_server_port and [api] port (8080), "
        "[logging] worker_log_server_port (8793) and trigger_log_server_port (8794), "
        "[celery] flower_port (5555).",
        restart=True,
    )
    allow_unauthenticated_remote_access: bool = setting(
        False,
        parsers.parse_bool,
        "Allow a listen address outside the loopback network (127.0.0.0/8, ::1, localhost) "
        "without a token (otherwise the daemon refuses to start).",
    )
    allowed_hosts: frozenset[str] = setting(
        frozenset(),
        parsers.name_set,
        "Comma-separated host names requests may be addressed to besides IP addresses and "
        "localhost, such as a reverse proxy's public name. A request for any other name is "
        "refused (421): a web page could otherwise reach the daemon through a name it controls "
        "(DNS rebinding).",
        example="airflow-bridge.example.com",
    )
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting(
        (),
        parsers.network_list,
        "Comma-separated addresses or networks of reverse proxies in front of the bridge. From "
        "them, X-Forwarded-For names the client (in the access and audit logs) and "
        "X-Forwarded-Proto and X-Forwarded-Host the address the page shows; from anyone else "
        "those headers are ignored.",
        example="127.0.0.1, 10.1.0.0/16",
    )
    tls_cert_file: Path | None = setting(
        None,
        parsers.optional_path,
        "PEM certificate: with tls_key_file the daemon serves HTTPS; unset: plain HTTP.",
        restart=True,
        example="/etc/airflow-rest-bridge/cert.pem",
    )
    tls_key_file: Path | None = setting(
        None,
        parsers.optional_path,
        "PEM private key; set together with tls_cert_file.",
        restart=True,
        example="/etc/airflow-rest-bridge/key.pem",
    )
