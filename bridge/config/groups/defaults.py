"""Defaults the keys and the code around them share (the CLI's --port, the Airflow home)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_PORT = 8799  # not one of Airflow's own ports (8080, 8793, 8794, 5555)
HOME = Path("~/airflow").expanduser()  # Airflow's own default home
