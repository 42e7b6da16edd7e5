"""Settings: every key of airflow.cfg's ``[rest_api_plugin]`` section, each declared once.

A key is a field of :class:`Settings` made by :func:`setting`: its name, its parser, its default
and its help live together, in the group of keys it belongs to (:mod:`bridge.config.groups`:
access, commands, files, jobs), and everything else is derived from them: reading the file
and the environment (:mod:`bridge.config.load`), the sample cfg and the settings reference
(:mod:`bridge.config.reference`), and which keys a reload cannot change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.config.environment import for_child
from bridge.config.groups.access import AccessKeys
from bridge.config.groups.commands import CommandKeys
from bridge.config.groups.defaults import HOME
from bridge.config.groups.files import FileKeys
from bridge.config.groups.jobs import JobKeys
from bridge.config.keys import Key
from bridge.config.tokens import TokenTable

SECTION = "rest_api_plugin"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class Settings(JobKeys, FileKeys, CommandKeys, AccessKeys):
    """Everything the daemon needs to know, resolved at startup and again on reload."""

    # Where Airflow lives: from airflow.cfg's location, $AIRFLOW_HOME and [core] dags_folder.
    config_path: Path | None = None
    airflow_home: Path = HOME
    dags_folder: Path = HOME / "dags"
    named_tokens: TokenTable = dataclasses.field(default_factory=TokenTable)
    # Airflow's own listening ports in this configuration, and whose (listen_port is not one)
    airflow_ports: tuple[tuple[int, str], ...] = ()
    # deploy_bundle's git connection, when the bundle names no repo_url: the connection's
    # host is the URL, asked of Airflow at each deploy (it may live in Airflow's database).
    deploy_git_connection: str | None = None

    @property
    def auth_enabled(self) -> bool:
        """True when requests must carry the token header."""
        return bool(self.rest_api_plugin_expected_http_token) or self.tokens_file is not None

    @property
    def instance_name(self) -> str:
        """bridge_instance, or the host's name and the port it listens on."""
        return self.bridge_instance or f"{socket.gethostname()}:{self.listen_port}"

    @property
    def jobs_path(self) -> Path:
        """jobs_folder, or its place in the Airflow home."""
        return self.jobs_folder or self.airflow_home / ".airflow-rest-bridge-jobs"

    @property
    def git_clone_path(self) -> Path:
        """The bridge's own clone of deploy_git_url: one per repository and branch, so a
        changed URL never pushes an old clone's commits anywhere."""
        key = hashlib.sha256(f"{self.deploy_git_url}\n{self.deploy_git_branch}".encode())
        return self.airflow_home / ".airflow-rest-bridge-git" / key.hexdigest()[:16]

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The set values of the keys declared secret (the seed's token, metrics_token):
        masked in every output, echo and log line."""
        values = (getattr(self, item.name) for item, key in keys() if key.secret)
        return tuple(value for value in values if value)

    def child_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """The environment an Airflow CLI child gets (:func:`.environment.for_child`)."""
        return for_child(self, base)


def keys() -> Iterator[tuple[dataclasses.Field[Any], Key]]:
    """Every key of the section, in declaration order, with what is declared about it."""
    for item in dataclasses.fields(Settings):
        key = item.metadata.get("key")
        if key is not None:
            yield item, key


KNOWN_KEYS = tuple(item.name for item, _ in keys())
RESTART_KEYS = tuple(item.name for item, key in keys() if key.restart)


class CurrentSettings:
    """The settings in force: replaced as a whole by a reload (SIGHUP); a call reads them
    once, at its start, and keeps what it read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self) -> Settings:
        return self.settings
