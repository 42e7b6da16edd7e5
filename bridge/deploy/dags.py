"""deploy_dag and refresh_dag: what the bridge does itself, by asking Airflow.

deploy_dag imports the staged upload with Airflow's own interpreter in a child process
(bridge/airflow_side/dag_check.py); only a file that imports and defines a DAG is installed,
serialized into Airflow's database and paused or unpaused as asked. refresh_dag re-serializes
a known DAG. Every process here goes through the command path, like any API call's.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from bridge.deploy import install
from bridge.deploy.staging import StagedUpload
from bridge.errors import RequestError
from bridge.offload import in_thread
from bridge.process.path import Captured, CommandPath, CommandSpec
from bridge.text.noise import filter_text, parse_json_output

log = logging.getLogger(__name__)
DAG_CHECK = Path(__file__).parents[1] / "airflow_side" / "dag_check.py"


@dataclass
class Deployed:
    """What deploy_dag did."""

    file: Path
    dag_ids: list[str]
    backup: Path | None
    warnings: list[str] = field(default_factory=list)

    def output(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"file": str(self.file), "dag_ids": self.dag_ids}
        if self.backup is not None:
            shown["backup"] = str(self.backup)
        return shown


@dataclass(frozen=True)
class Deployer:
    """deploy_dag and refresh_dag for one call: its settings, Airflow and client."""

    commands: CommandPath
    settings: Settings
    airflow: AirflowInfo
    peer: str

    async def deploy(
        self,
        staged: StagedUpload,
        locks: dict[str, asyncio.Lock],
        force: bool,
        pause: bool | None,
    ) -> Deployed:
        """Install the uploaded DAG file: checked, atomically, the file it replaces kept;
        then serialized and, with ``pause`` True/False, paused or unpaused."""
        settings = self.settings
        # Refused early when it would be refused anyway (checked again under the lock below).
        await in_thread(install.refuse_overwrite, staged, settings.dags_folder, force)
        dag_ids = await self.check(staged)
        async with install.upload_lock(locks, staged.name):
            installed = await in_thread(
                install.install,
                staged,
                settings.dags_folder,
                settings.backups_folder,
                settings.backups_to_keep,
                force,
            )
        deployed = Deployed(installed.target, dag_ids, installed.backup)
        # Write the new DAGs to Airflow's database now, so that they are listed (Airflow 3 lists
        # from the database) and can be paused before a scheduler or dag-processor parses them.
        # The whole dags folder, on purpose: Airflow 2's 'reserialize --subdir FILE' first
        # deletes every serialized DAG, so every other DAG would vanish until the next parse.
        serialized = await self._airflow("serialize", "dags", "reserialize")
        if serialized.exit_code != 0:
            deployed.warnings.append(
                f"'dags reserialize' failed (exit code {serialized.exit_code})"
            )
        if pause is not None:
            action = "pause" if pause else "unpause"
            for dag_id in dag_ids:
                result = await self._airflow(action, "dags", action, "--yes", "--", dag_id)
                if result.exit_code != 0:
                    deployed.warnings.append(
                        f"could not {action} {dag_id}: exit code {result.exit_code}"
                    )
        log.info("deployed %s (%d bytes) dags=%s", installed.target, staged.size, dag_ids)
        return deployed

    async def check(self, staged: StagedUpload) -> list[str]:
        """Import the upload with Airflow's own interpreter, in a child process, and return
        its DAG ids; an import error or a file without a DAG is a 400 with Airflow's message."""
        python = self.airflow.python
        if python is None:
            raise RequestError(
                "cannot check DAG files: the Python interpreter of the configured airflow is "
                "unknown; set airflow_python in [rest_api_plugin]",
                status=500,
            )
        timeout = self.settings.dag_check_timeout
        # A private copy under the file's own name: the check never touches the dags folder.
        folder = Path(await in_thread(tempfile.mkdtemp, prefix="airflow-rest-bridge-"))
        try:
            copy = folder / staged.name
            await in_thread(shutil.copyfile, staged.path, copy)
            argv = [python, str(DAG_CHECK), str(copy), str(self.settings.dags_folder)]
            result = await self.commands.capture(
                CommandSpec(argv, "deploy_dag", "import check", self.peer, timeout, warm=False)
            )
        finally:
            await in_thread(shutil.rmtree, folder, ignore_errors=True)
        if self.commands.stopping:
            raise RequestError("the daemon is stopping: nothing was deployed", status=503)
        if result.timed_out:
            raise RequestError(
                f"importing {staged.name} took longer than dag_check_timeout ({timeout:g} s); "
                "nothing was deployed"
            )
        report = parse_json_output(result.stdout)
        if not isinstance(report, dict):
            raise RequestError(
                f"{staged.name} could not be checked (exit code {result.exit_code}): "
                f"{result.stderr[-2000:]}"
            )
        errors = report.get("import_errors") or {}
        if errors:
            text = "\n".join(str(e) for e in errors.values()).replace(str(copy), staged.name)
            raise RequestError(f"{staged.name} does not import; nothing was deployed:\n{text}")
        dag_ids = [str(dag_id) for dag_id in report.get("dag_ids") or []]
        if not dag_ids:
            raise RequestError(f"{staged.name} defines no DAG; nothing was deployed")
        return dag_ids

    async def refresh(self, dag_id: str) -> Captured:
        """Re-serialize the DAGs so that a known DAG's changes show up in Airflow; a DAG
        Airflow does not know is a 404."""
        if await self.dag_file_of(dag_id) is None:
            raise RequestError(f"The DAG ID '{dag_id}' does not exist", status=404)
        # Not limited to the DAG's file: see deploy() for why that would lose the other DAGs.
        return await self._airflow("serialize", "dags", "reserialize", api="refresh_dag")

    async def dag_file_of(self, dag_id: str) -> str | None:
        """Where Airflow says ``dag_id`` is defined, or None when it does not know the DAG."""
        listed = await self._airflow("look up", "dags", "list", "--output=json", api="refresh_dag")
        rows = parse_json_output(filter_text(listed.stdout))
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("dag_id") == dag_id:
                return str(row.get("fileloc") or "")
        return None

    async def _airflow(self, purpose: str, *args: str, api: str = "deploy_dag") -> Captured:
        argv = [self.airflow.executable, *args]
        return await self.commands.capture(CommandSpec(argv, api, purpose, self.peer))
