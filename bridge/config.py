"""Settings: airflow.cfg's ``[rest_api_plugin]`` section plus Airflow's environment overrides.

This module is the only user of configparser. ``load()`` never crashes on a missing file or
section (defaults apply); a malformed value raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import configparser
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTION = "rest_api_plugin"
ENV_PREFIX = "AIRFLOW__REST_API_PLUGIN__"
DEFAULT_PORT = 8799  # not one of Airflow's own ports (8080, 8793, 8794, 5555)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _home_path(text: str) -> Path:
    return Path(text).expanduser()


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """Everything the daemon needs to know, resolved once at startup (and on reload)."""

    config_path: Path | None = None
    airflow_home: Path = field(default_factory=lambda: _home_path("~/airflow"))
    dags_folder: Path = field(default_factory=lambda: _home_path("~/airflow/dags"))
    # Seed plugin keys, same names and meaning.
    log_loading: bool = False
    filter_loading_messages_in_cli_response: bool = True
    rest_api_plugin_http_token_header_name: str = "rest_api_plugin_http_token"
    rest_api_plugin_expected_http_token: str | None = field(default=None, repr=False)
    # Keys new in the bridge.
    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_PORT
    allow_unauthenticated_remote_access: bool = False
    airflow_executable: str = "airflow"
    airflow_python: str | None = None  # default: the interpreter in the executable's #! line
    dag_check_timeout: float = 120.0
    command_timeout: float = 600.0
    kill_grace_period: float = 5.0
    max_concurrent_commands: int = 4
    max_upload_size: int = 10 * 1024 * 1024
    max_output_size: int = 16 * 1024 * 1024
    kill_on_disconnect: bool = True
    warm_helper: bool = True  # fork commands from a pre-imported Airflow (bridge/warm.py)
    disabled_apis: frozenset[str] = frozenset()
    allowed_paths: tuple[Path, ...] = ()
    backups_folder: Path = field(default_factory=lambda: _home_path("~/airflow/dag_backups"))
    backups_to_keep: int = 10
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @property
    def auth_enabled(self) -> bool:
        """True when requests must carry the token header."""
        return bool(self.rest_api_plugin_expected_http_token)

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    def child_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment an Airflow CLI child gets: ours, pointed at the same airflow.cfg."""
        env = dict(base)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        env["AIRFLOW_HOME"] = str(self.airflow_home)
        if self.config_path is not None:
            env["AIRFLOW_CONFIG"] = str(self.config_path)
        # Airflow's executors start task processes as plain "airflow" (backfill on 2.x does),
        # so the configured installation must come first on PATH.
        executable = Path(self.airflow_executable)
        if executable.is_absolute():
            path = env.get("PATH", os.defpath)
            env["PATH"] = os.pathsep.join([str(executable.parent), path])
        return env


def find_airflow_cfg(environ: Mapping[str, str]) -> Path:
    """Locate airflow.cfg the way Airflow does: $AIRFLOW_CONFIG, $AIRFLOW_HOME, ~/airflow."""
    if environ.get("AIRFLOW_CONFIG"):
        return Path(environ["AIRFLOW_CONFIG"]).expanduser()
    return airflow_home_from(environ) / "airflow.cfg"


def airflow_home_from(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("AIRFLOW_HOME") or "~/airflow").expanduser()


def default_airflow_executable() -> str:
    """The ``airflow`` next to our own interpreter (same virtualenv), else the one on PATH."""
    beside_us = Path(sys.executable).parent / "airflow"
    if beside_us.is_file() and os.access(beside_us, os.X_OK):
        return str(beside_us)
    return shutil.which("airflow") or "airflow"


# --- value parsers: each raises ValueError with a short reason -------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected one of true/false, yes/no, on/off, 1/0")


def _positive_int(text: str) -> int:
    value = int(text.strip())
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive_float(text: str) -> float:
    value = float(text.strip())
    if not value > 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _port(text: str) -> int:
    value = int(text.strip())
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def _size(text: str) -> int:
    """Bytes, with an optional K/M/G suffix (powers of 1024)."""
    cleaned = text.strip().upper().removesuffix("B")
    factor = 1
    for suffix, multiplier in (("K", 1024), ("M", 1024**2), ("G", 1024**3)):
        if cleaned.endswith(suffix):
            cleaned, factor = cleaned[:-1], multiplier
            break
    value = int(cleaned) * factor
    if value <= 0:
        raise ValueError("must be a positive size such as 10485760, 512K or 10M")
    return value


def _optional_text(text: str) -> str | None:
    return text.strip() or None


def _header_name(text: str) -> str:
    name = text.strip()
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError("must be a non-empty HTTP header name (letters, digits, - and _)")
    return name


def _path_list(text: str) -> tuple[Path, ...]:
    return tuple(Path(p.strip()).expanduser() for p in text.split(",") if p.strip())


def _name_set(text: str) -> frozenset[str]:
    return frozenset(n.strip().lower() for n in text.split(",") if n.strip())


def _optional_path(text: str) -> Path | None:
    return Path(text.strip()).expanduser() if text.strip() else None


# Every key of the section: name -> parser. Names are the lower-case config keys.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "log_loading": parse_bool,
    "filter_loading_messages_in_cli_response": parse_bool,
    "rest_api_plugin_http_token_header_name": _header_name,
    "rest_api_plugin_expected_http_token": _optional_text,
    "listen_host": lambda t: t.strip() or "127.0.0.1",
    "listen_port": _port,
    "allow_unauthenticated_remote_access": parse_bool,
    "airflow_executable": lambda t: t.strip(),
    "airflow_python": _optional_text,
    "dag_check_timeout": _positive_float,
    "command_timeout": _positive_float,
    "kill_grace_period": _positive_float,
    "max_concurrent_commands": _positive_int,
    "max_upload_size": _size,
    "max_output_size": _size,
    "kill_on_disconnect": parse_bool,
    "warm_helper": parse_bool,
    "disabled_apis": _name_set,
    "allowed_paths": _path_list,
    "backups_folder": lambda t: Path(t.strip()).expanduser(),
    "backups_to_keep": _non_negative_int,
    "tls_cert_file": _optional_path,
    "tls_key_file": _optional_path,
}
KNOWN_KEYS = tuple(_PARSERS)


def load(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Read settings from ``path`` (or airflow.cfg found as Airflow finds it) and ``environ``.

    Environment variables ``AIRFLOW__REST_API_PLUGIN__<KEY>`` beat the file, as in Airflow.
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

    values: dict[str, Any] = {}
    for key, parse in _PARSERS.items():
        text = raw(SECTION, key)
        if text is None:
            continue
        try:
            values[key] = parse(text)
        except ValueError as exc:
            raise ConfigError(f"[{SECTION}] {key} = {text!r}: {exc}") from exc

    dags_text = raw("core", "dags_folder")
    dags_folder = (
        Path(dags_text.replace("{AIRFLOW_HOME}", str(airflow_home))).expanduser()
        if dags_text and dags_text.strip()
        else airflow_home / "dags"
    )
    values.setdefault("airflow_executable", "")
    if not values["airflow_executable"]:
        values["airflow_executable"] = default_airflow_executable()
    values.setdefault("backups_folder", airflow_home / "dag_backups")
    values.setdefault("allowed_paths", (airflow_home,))
    if ("tls_cert_file" in values) != ("tls_key_file" in values) or (
        values.get("tls_cert_file") is None
    ) != (values.get("tls_key_file") is None):
        raise ConfigError(f"[{SECTION}] tls_cert_file and tls_key_file must be set together")

    settings = Settings(
        config_path=cfg_path if cfg_path.is_file() else None,
        airflow_home=airflow_home,
        dags_folder=dags_folder,
        **values,
    )
    _check_exposure(settings)
    return settings


def _check_exposure(settings: Settings) -> None:
    if (
        settings.listen_host not in LOOPBACK_HOSTS
        and not settings.auth_enabled
        and not settings.allow_unauthenticated_remote_access
    ):
        raise ConfigError(
            f"refusing to listen on {settings.listen_host} without a token: set "
            f"[{SECTION}] rest_api_plugin_expected_http_token, or "
            "allow_unauthenticated_remote_access = true to accept the risk"
        )


def with_listen(settings: Settings, host: str | None, port: int | None) -> Settings:
    """Apply --host/--port from the command line, then re-check the exposure rule."""
    from dataclasses import replace

    updated = replace(
        settings,
        listen_host=host if host is not None else settings.listen_host,
        listen_port=port if port is not None else settings.listen_port,
    )
    _check_exposure(updated)
    return updated
