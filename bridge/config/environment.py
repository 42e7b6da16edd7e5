"""The environment of an Airflow child: the daemon's own, pointed at the same Airflow home and
airflow.cfg, without anything that belongs to the bridge.

A child runs whatever the caller's command does (``config get-value``, ``config list``, a
task's code under ``tasks test``): what it inherits it can print. So the bridge's settings
(``AIRFLOW__REST_API_PLUGIN__*``: the seed's token, metrics_token and every other key, with
their ``_CMD`` and ``_SECRET`` forms), any variable that holds a secret's value under another
name, and systemd's notify socket and watchdog (they speak for the bridge's unit) stay out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings.py imports this module
    from bridge.config.settings import Settings

OWN_PREFIX = "AIRFLOW__REST_API_PLUGIN__"  # the [rest_api_plugin] section, as Airflow spells it
OWN_VARIABLES = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})


def for_child(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` (the daemon's environment) as an Airflow CLI child gets it."""
    secrets = set(settings.secret_values)
    env = {
        name: value
        for name, value in base.items()
        if not name.upper().startswith(OWN_PREFIX)
        and name not in OWN_VARIABLES
        and value not in secrets
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["AIRFLOW_HOME"] = str(settings.airflow_home)
    if settings.config_path is not None:
        env["AIRFLOW_CONFIG"] = str(settings.config_path)
    # Airflow's executors start task processes as plain "airflow" (backfill on 2.x does),
    # so the configured installation must come first on PATH.
    executable = Path(settings.airflow_executable)
    if executable.is_absolute():
        path = env.get("PATH", os.defpath)
        env["PATH"] = os.pathsep.join([str(executable.parent), path])
    return env
