"""deploy_dag and refresh_dag: the two APIs the bridge answers itself, by asking Airflow.

deploy_dag first imports the staged upload (see :mod:`bridge.uploads`) with Airflow's own
interpreter in a child process (bridge/dag_check.py); only a file that imports and defines
a DAG is installed, serialized into Airflow's database and paused or unpaused as asked.
refresh_dag re-serializes a known DAG's file.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge import envelope, uploads
from bridge.airflow_info import AirflowInfo
from bridge.catalogue import RequestError
from bridge.config import Settings
from bridge.noise import filter_text, parse_json_output
from bridge.runner import Captured, Launcher, capture

log = logging.getLogger(__name__)
DAG_CHECK = Path(__file__).with_name("dag_check.py")  # run by Airflow's interpreter


async def deploy(
    settings: Settings,
    info: AirflowInfo,
    locks: dict[str, Any],
    values: Mapping[str, Any],
    staged: uploads.StagedUpload | None,
    env: Mapping[str, str],
    base: dict[str, Any],
    launcher: Launcher | None = None,
) -> web.Response:
    """Install the uploaded DAG file; report its DAG ids and where a replaced file went."""
    if staged is None:
        raise RequestError("dag_file should be provided (POST multipart/form-data)")
    if values.get("pause") and values.get("unpause"):
        raise RequestError("give pause or unpause, not both")
    # Refused early when it would be refused anyway (checked again under the lock below).
    uploads.refuse_overwrite(staged, settings, force=bool(values.get("force")))
    dag_ids = await check_dag_file(info, env, settings, staged)
    async with uploads.upload_lock(locks, staged.name):
        installed = uploads.install(staged, settings, force=bool(values.get("force")))
    output: dict[str, Any] = {"file": str(installed.target), "dag_ids": dag_ids}
    if installed.backup is not None:
        output["backup"] = str(installed.backup)
    warnings: list[str] = []
    # Write the new DAGs to Airflow's database now, so that they are listed (Airflow 3 lists
    # from the database) and can be paused before a scheduler or dag-processor parses them.
    # The whole dags folder, on purpose: Airflow 2's 'reserialize --subdir FILE' first deletes
    # every serialized DAG, so every other DAG would vanish until the next parse.
    serialized = await _airflow(info, env, settings, "dags", "reserialize", launcher=launcher)
    if serialized.exit_code != 0:
        warnings.append(f"'dags reserialize' failed (exit code {serialized.exit_code})")
    action = "pause" if values.get("pause") else "unpause" if values.get("unpause") else ""
    for dag_id in dag_ids if action else []:
        result = await _airflow(
            info, env, settings, "dags", action, "--yes", "--", dag_id, launcher=launcher
        )
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
    launcher: Launcher | None = None,
) -> web.Response:
    """Re-parse a known DAG's file so that its changes show up in Airflow."""
    dag_id = values["dag_id"]
    fileloc = await dag_file_of(info, env, settings, dag_id, launcher)
    if fileloc is None:
        raise RequestError(f"The DAG ID '{dag_id}' does not exist", status=404)
    # Not limited to the DAG's file: see deploy() for why that would lose the other DAGs.
    result = await _airflow(info, env, settings, "dags", "reserialize", launcher=launcher)
    code = 200 if result.exit_code == 0 else 500
    output = f"DAG [{dag_id}] is now fresh as a daisy" if code == 200 else result.stderr[-2000:]
    return envelope.respond(
        envelope.finish(base, http_code=code, output=output, exit_code=result.exit_code)
    )


async def check_dag_file(
    info: AirflowInfo, env: Mapping[str, str], settings: Settings, staged: uploads.StagedUpload
) -> list[str]:
    """Import the upload with Airflow's own interpreter, in a child process, and return its
    DAG ids; an import error or a file without a DAG is a 400 carrying Airflow's message."""
    if info.python is None:
        raise RequestError(
            "cannot check DAG files: the Python interpreter of the configured airflow is "
            "unknown; set airflow_python in [rest_api_plugin]",
            status=500,
        )
    # A private copy under the file's own name: the check never touches the dags folder.
    with tempfile.TemporaryDirectory(prefix="airflow-rest-bridge-check-") as folder:
        copy = Path(folder) / staged.name
        shutil.copyfile(staged.path, copy)
        result = await capture(
            [info.python, str(DAG_CHECK), str(copy), str(settings.dags_folder)],
            env=env,
            timeout=settings.dag_check_timeout,
            grace=settings.kill_grace_period,
        )
    if result.timed_out:
        raise RequestError(
            f"importing {staged.name} took longer than dag_check_timeout "
            f"({settings.dag_check_timeout:g} s); nothing was deployed"
        )
    report = parse_json_output(result.stdout)
    if not isinstance(report, dict):
        raise RequestError(
            f"{staged.name} could not be checked (exit code {result.exit_code}): "
            f"{result.stderr[-2000:]}"
        )
    errors = report.get("import_errors") or {}
    if errors:
        text = "\n".join(str(error) for error in errors.values()).replace(str(copy), staged.name)
        raise RequestError(f"{staged.name} does not import; nothing was deployed:\n{text}")
    dag_ids = [str(dag_id) for dag_id in report.get("dag_ids") or []]
    if not dag_ids:
        raise RequestError(f"{staged.name} defines no DAG; nothing was deployed")
    return dag_ids


async def _airflow(
    info: AirflowInfo,
    env: Mapping[str, str],
    settings: Settings,
    *args: str,
    launcher: Launcher | None = None,
) -> Captured:
    return await capture(
        [info.executable, *args],
        env=env,
        timeout=settings.command_timeout,
        grace=settings.kill_grace_period,
        launcher=launcher,
    )


async def _listed_dags(
    info: AirflowInfo, env: Mapping[str, str], settings: Settings, launcher: Launcher | None
) -> list[Any]:
    listed = await _airflow(info, env, settings, "dags", "list", "--output=json", launcher=launcher)
    rows = parse_json_output(filter_text(listed.stdout))
    return rows if isinstance(rows, list) else []


async def dag_file_of(
    info: AirflowInfo,
    env: Mapping[str, str],
    settings: Settings,
    dag_id: str,
    launcher: Launcher | None = None,
) -> str | None:
    """Where Airflow says ``dag_id`` is defined, or None when it does not know the DAG."""
    for row in await _listed_dags(info, env, settings, launcher):
        if isinstance(row, dict) and row.get("dag_id") == dag_id:
            return str(row.get("fileloc") or "")
    return None
