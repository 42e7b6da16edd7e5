"""Create a throwaway SQLite Airflow home with the demo DAG (for `make run` and the tests).

    python tests/demo/make_home.py AIRFLOW_EXECUTABLE HOME [--port N] [--token T]

Writes HOME/airflow.cfg (examples off, SQLite in HOME, a [rest_api_plugin] section), copies
the demo DAG into HOME/dags, migrates the database and serializes the DAGs so that Airflow 3
lists them without a dag-processor. An existing home is reused (only the DAGs are refreshed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

DEMO_DAGS = Path(__file__).parent / "dags"


def airflow_cfg(home: Path, port: int, token: str | None, database: str | None = None) -> str:
    database = database or f"sqlite:///{home / 'airflow.db'}"
    lines = [
        "[core]",
        f"dags_folder = {home / 'dags'}",
        "load_examples = False",
        "dags_are_paused_at_creation = True",
        "",
        "[database]",
        f"sql_alchemy_conn = {database}",
        "",
        "[logging]",
        f"base_log_folder = {home / 'logs'}",
        "",
        "[rest_api_plugin]",
        f"listen_port = {port}",
        "command_timeout = 300",
    ]
    if token:
        lines.append(f"rest_api_plugin_expected_http_token = {token}")
    return "\n".join(lines) + "\n"


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW_CONFIG=str(home / "airflow.cfg"))
    return env


def make_home(
    airflow: str,
    home: Path,
    port: int = 8799,
    token: str | None = None,
    database: str | None = None,
) -> Path:
    """Build (or refresh) the home; returns the airflow.cfg path. ``database`` is a
    SQLAlchemy URL of an empty database to use instead of SQLite in the home."""
    home = home.resolve()
    (home / "dags").mkdir(parents=True, exist_ok=True)
    cfg = home / "airflow.cfg"
    fresh = database is not None or not (home / "airflow.db").exists()
    cfg.write_text(airflow_cfg(home, port, token, database), encoding="utf-8")
    for dag in DEMO_DAGS.glob("*.py"):
        shutil.copy2(dag, home / "dags" / dag.name)
    env = child_env(home)
    if fresh:
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, stdout=subprocess.DEVNULL)
    return cfg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("airflow")
    parser.add_argument("home", type=Path)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--token")
    args = parser.parse_args()
    print(make_home(args.airflow, args.home, args.port, args.token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
