"""Reading the settings: airflow.cfg's ``[rest_api_plugin]`` section plus Airflow's
environment overrides. This module is the only user of configparser.

``load()`` never crashes on a missing file or section (defaults apply); a malformed value
raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import configparser
import ipaddress
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from bridge.config import bundles
from bridge.config.settings import (
    KNOWN_KEYS,
    LOOPBACK_HOSTS,
    RESTART_KEYS,
    SECTION,
    Settings,
    keys,
)
from bridge.config.tokens import TokensError, TokenTable, read_tokens

log = logging.getLogger(__name__)
ENV_PREFIX = f"AIRFLOW__{SECTION.upper()}__"
# Airflow's own listening ports, each read from this airflow.cfg (or its environment), with
# Airflow's default: the bridge must not take one of them.
AIRFLOW_PORTS = (
    ("webserver", "web_server_port", 8080, "Airflow 2's webserver"),
    ("api", "port", 8080, "Airflow 3's API server"),
    ("logging", "worker_log_server_port", 8793, "the workers' log server"),
    ("logging", "trigger_log_server_port", 8794, "the triggerer's log server"),
    ("celery", "flower_port", 5555, "Celery's Flower"),
)


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def find_airflow_cfg(environ: Mapping[str, str]) -> Path:
    """Locate airflow.cfg the way Airflow does: $AIRFLOW_CONFIG, $AIRFLOW_HOME, ~/airflow."""
    if environ.get("AIRFLOW_CONFIG"):
        return Path(environ["AIRFLOW_CONFIG"]).expanduser()
    return Path(environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "airflow.cfg"


def default_airflow_executable() -> str:
    """The ``airflow`` next to our own interpreter (same virtualenv), else the one on PATH."""
    beside_us = Path(sys.executable).parent / "airflow"
    if beside_us.is_file() and os.access(beside_us, os.X_OK):
        return str(beside_us)
    return shutil.which("airflow") or "airflow"


def load(path: Path | None, environ: Mapping[str, str], *, with_tokens: bool = True) -> Settings:
    """Read settings from ``path`` (or airflow.cfg found as Airflow finds it) and ``environ``.

    Environment variables ``AIRFLOW__REST_API_PLUGIN__<KEY>`` beat the file, as in Airflow.
    Blocking file I/O: call it from a thread once the event loop runs. ``with_tokens=False``
    leaves ``tokens_file`` unread (the token commands read it themselves, as its editor).
    """
    explicit = path is not None
    cfg_path = path if path is not None else find_airflow_cfg(environ)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    if cfg_path.is_file():
        try:
            parser.read(cfg_path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_path}: cannot be parsed: {exc}") from exc
    elif explicit:
        raise ConfigError(f"--config {cfg_path}: no such file")

    airflow_home = (
        Path(environ["AIRFLOW_HOME"]).expanduser()
        if environ.get("AIRFLOW_HOME")
        else cfg_path.parent
    )

    def raw(section: str, key: str) -> str | None:
        env_value = environ.get(f"AIRFLOW__{section.upper()}__{key.upper()}")
        if env_value is not None:
            return env_value
        if parser.has_option(section, key):
            return parser.get(section, key)
        return None

    _warn_unknown_keys(parser, environ, set(KNOWN_KEYS))
    values: dict[str, Any] = {}
    for item, key in keys():
        text = raw(SECTION, item.name)
        if text is None:
            continue
        try:
            values[item.name] = key.parse(text)
        except ValueError as exc:
            raise ConfigError(f"[{SECTION}] {item.name} = {text!r}: {exc}") from exc

    dags_text = raw("core", "dags_folder")
    dags_folder = (
        Path(dags_text.replace("{AIRFLOW_HOME}", str(airflow_home))).expanduser()
        if dags_text and dags_text.strip()
        else airflow_home / "dags"
    )
    if not values.get("airflow_executable"):
        values["airflow_executable"] = default_airflow_executable()
    values.setdefault("backups_folder", airflow_home / "dag_backups")
    # A folder of the bridge's own: never airflow.cfg, the database or the tokens beside it.
    values.setdefault("allowed_paths", (own_files_folder(airflow_home),))
    if values.get("job_webhooks") and not values.get("job_webhook_secret"):
        raise ConfigError(f"[{SECTION}] job_webhooks needs job_webhook_secret to sign with")
    if values.get("deploy_bundle"):
        config_list = raw("dag_processor", "dag_bundle_config_list")
        try:
            values.update(bundles.git_settings(values["deploy_bundle"], config_list, values))
        except bundles.BundleError as exc:
            raise ConfigError(f"[{SECTION}] deploy_bundle: {exc}") from None
    elif values.get("deploy_target") == "git" and not values.get("deploy_git_url"):
        raise ConfigError(f"[{SECTION}] deploy_target = git needs deploy_git_url")
    if (values.get("tls_cert_file") is None) != (values.get("tls_key_file") is None):
        raise ConfigError(f"[{SECTION}] tls_cert_file and tls_key_file must be set together")

    tokens_file = values.get("tokens_file")
    try:
        named_tokens = read_tokens(tokens_file) if tokens_file and with_tokens else TokenTable()
    except TokensError as exc:
        raise ConfigError(f"[{SECTION}] tokens_file: {exc}") from None
    ports: dict[int, str] = {}
    for section, option, default, whose in AIRFLOW_PORTS:
        text = raw(section, option)
        try:
            number = int(text) if text and text.strip() else default
        except ValueError:  # Airflow's to refuse, not the bridge's
            continue
        ports[number] = f"{ports[number]} and {whose}" if number in ports else whose
    settings = Settings(
        config_path=cfg_path if cfg_path.is_file() else None,
        airflow_home=airflow_home,
        dags_folder=dags_folder,
        named_tokens=named_tokens,
        airflow_ports=tuple(sorted(ports.items())),
        **values,
    )
    _check_exposure(settings)
    return settings


def _warn_unknown_keys(
    parser: configparser.ConfigParser, environ: Mapping[str, str], known: set[str]
) -> None:
    """A key of the section that no setting reads (a typo, or a newer version's setting)
    would otherwise do nothing without a word."""
    in_file = set(parser.options(SECTION)) if parser.has_section(SECTION) else set()
    in_environ = {
        name.removeprefix(ENV_PREFIX).lower() for name in environ if name.startswith(ENV_PREFIX)
    }
    for name in sorted((in_file | in_environ) - known):
        where = "the environment" if name in in_environ - in_file else "airflow.cfg"
        log.warning("[%s] %s (in %s) is no setting of this bridge: ignored", SECTION, name, where)


def is_loopback(host: str) -> bool:
    """localhost, or an address of the loopback network (127.0.0.0/8, ::1)."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: it may resolve to anything
        return False


def _check_exposure(settings: Settings) -> None:
    for port, whose in settings.airflow_ports:
        if settings.listen_port == port:
            raise ConfigError(
                f"[{SECTION}] listen_port {port} is the port of {whose} in this "
                "configuration: choose another"
            )
    if (
        not is_loopback(settings.listen_host)
        and not settings.auth_enabled
        and not settings.allow_unauthenticated_remote_access
    ):
        raise ConfigError(
            f"refusing to listen on {settings.listen_host} without a token: set "
            f"[{SECTION}] rest_api_plugin_expected_http_token (or tokens_file), or "
            "allow_unauthenticated_remote_access = true to accept the risk"
        )


def with_listen(settings: Settings, host: str | None, port: int | None) -> Settings:
    """Apply --host/--port from the command line, then re-check the exposure rule."""
    updated = replace(
        settings,
        listen_host=host if host is not None else settings.listen_host,
        listen_port=port if port is not None else settings.listen_port,
    )
    _check_exposure(updated)
    return updated


def for_reload(running: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """The settings a reload puts in force: ``new``, except the keys read only at startup,
    which keep their running values; also the names of those that differ (for the log)."""
    changed = [name for name in RESTART_KEYS if getattr(new, name) != getattr(running, name)]
    kept = replace(new, **{name: getattr(running, name) for name in RESTART_KEYS})
    return kept, changed


def own_files_folder(airflow_home: Path) -> Path:
    """The folder of the bridge's own that allowed_paths names by default: where a call's
    file arguments (a service's pid and log files, an export's output) may go."""
    return airflow_home / ".airflow-rest-bridge-files"
