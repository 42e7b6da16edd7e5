"""deploy_dag and refresh_dag: the two APIs the bridge answers itself, by asking Airflow.

deploy_dag installs the staged upload (see :mod:`bridge.uploads`), then asks Airflow which
DAGs the file defines (serializing them first on Airflow 3, which lists DAGs from its
database) and pauses or unpauses them. refresh_dag re-serializes a known DAG's file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge import envelope, uploads
from bridge.airflow_info import AirflowInfo
from bridge.catalogue import RequestError
from bridge.config import Settings
from bridge.noise import filter_text, parse_json_output
from bridge.runner import Captured, capture

log = logging.getLogger(__name__)


async def deploy(
    settings: Settings,
    info: AirflowInfo,
    locks: dict[str, Any],
    values: Mapping[str, Any],
    staged: uploads.StagedUpload | None,
    env: Mapping[str, str],
    base: dict[str, Any],
) -> web.Response:
    """Install the uploaded DAG file; report its DAG ids and where a replaced file went."""
    if staged is None:
        raise RequestError("dag_file should be provided (POST multipart/form-data)")
    if values.get("pause") and values.get("unpause"):
        raise RequestError("give pause or unpause, not both")
    async with uploads.upload_lock(locks, staged.name):
        installed = uploads.install(staged, settings, force=bool(values.get("force")))
    output: dict[str, Any] = {"file": str(installed.target), "dag_ids": []}
    if installed.backup is not None:
        output["backup"] = str(installed.backup)
    warnings: list[str] = []
    dag_ids = await dags_in_file(info, env, settings, installed.target)
    output["dag_ids"] = dag_ids
    if not dag_ids:
        warnings.append("Airflow lists no DAG from this file yet")
    action = "pause" if values.get("pause") else "unpause" if values.get("unpause") else ""
    for dag_id in dag_ids if action else []:
        result = await _airflow(info, env, settings, "dags", action, "--yes", "--", dag_id)
        if result.exit_code != 0:
            warnings.append(f"could not {action} {dag_id}: exit code {result.exit_code}")
    log.info("deployed %s (%d bytes) dags=%s", installed.target, staged.size, dag_ids)
    return envelope.respond(envelope.finish(base, http_code=200, output=output, warnings=warnings))


async def refresh(
    settings: Settings,
    info: AirflowInfo,
    values: Mapping[str, Any],
    env: Mapping[str, str],
    base: dict[str, Any],
) -> web.Response:
    """Re-parse a known DAG's file so that its changes show up in Airflow."""
    dag_id = values["dag_id"]
    fileloc = await dag_file_of(info, env, settings, dag_id)
    if fileloc is None:
        raise RequestError(f"The DAG ID '{dag_id}' does not exist", status=404)
    subdir = [f"--subdir={fileloc}"] if info.major == 2 and fileloc else []
    result = await _airflow(info, env, settings, "dags", "reserialize", *subdir)
    code = 200 if result.exit_code == 0 else 500
    output = f"DAG [{dag_id}] is now fresh as a daisy" if code == 200 else result.stderr[-2000:]
    return envelope.respond(
        envelope.finish(base, http_code=code, output=output, exit_code=result.exit_code)
    )


async def _airflow(
    info: AirflowInfo, env: Mapping[str, str], settings: Settings, *args: str
) -> Captured:
    return await capture(
        [info.executable, *args],
        env=env,
        timeout=settings.command_timeout,
        grace=settings.kill_grace_period,
    )


async def _listed_dags(info: AirflowInfo, env: Mapping[str, str], settings: Settings) -> list[Any]:
    listed = await _airflow(info, env, settings, "dags", "list", "--output=json")
    rows = parse_json_output(filter_text(listed.stdout))
    return rows if isinstance(rows, list) else []


async def dags_in_file(
    info: AirflowInfo, env: Mapping[str, str], settings: Settings, target: Path
) -> list[str]:
    """The DAG ids Airflow lists for ``target``, after writing them to Airflow's database so
    that they exist (and can be paused) before any scheduler or dag-processor parses them.
    Airflow 2 can serialize just this file; Airflow 3 serializes the dags-folder bundle."""
    only_this_file = [f"--subdir={target}"] if info.major == 2 else []
    await _airflow(info, env, settings, "dags", "reserialize", *only_this_file)
    resolved = str(target.resolve())
    return [
        str(row["dag_id"])
        for row in await _listed_dags(info, env, settings)
        if isinstance(row, dict) and str(Path(str(row.get("fileloc", ""))).resolve()) == resolved
    ]


async def dag_file_of(
    info: AirflowInfo, env: Mapping[str, str], settings: Settings, dag_id: str
) -> str | None:
    """Where Airflow says ``dag_id`` is defined, or None when it does not know the DAG."""
    for row in await _listed_dags(info, env, settings):
        if isinstance(row, dict) and row.get("dag_id") == dag_id:
            return str(row.get("fileloc") or "")
    return None
