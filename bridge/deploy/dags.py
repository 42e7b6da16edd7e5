"""deploy_dag, delete_dag and refresh_dag: what the bridge does itself, by asking Airflow.

deploy_dag imports the staged upload with Airflow's own interpreter in a child process
(bridge/airflow_side/dag_check.py); only a file that imports and defines a DAG is installed
through the deploy target (``deploy_target``: this host's dags folder, or a commit pushed to
a git branch that every host syncs from), and paused or unpaused as asked. delete_dag removes
a DAG's file through the same target (and, asked to, its records). refresh_dag re-serializes a
known DAG. Every process here, git's included, goes through the command path.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import Settings
from bridge.deploy import git, install
from bridge.deploy.git import Author, GitRepository, Pushed
from bridge.deploy.git_connection import connection_url
from bridge.deploy.staging import StagedUpload
from bridge.errors import RequestError
from bridge.offload import in_thread
from bridge.process.path import Captured, CommandPath, CommandSpec
from bridge.text.noise import filter_text, parse_json_output

log = logging.getLogger(__name__)
DAG_CHECK = Path(__file__).parents[1] / "airflow_side" / "dag_check.py"


@dataclass
class Deployed:
    """What deploy_dag or delete_dag did, and where (the ``deploy`` field of the answer)."""

    file: Path | str  # the file in the dags folder, or its path in the repository
    dag_ids: list[str]
    backup: Path | None
    target: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    placed_at: float = 0.0  # when the file was put in place (POSIX time): a parse after it
    source_hash: str = ""  # the file's text as Airflow reads and keeps it (source_hash())

    def output(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"file": str(self.file), "dag_ids": self.dag_ids}
        if self.backup is not None:
            shown["backup"] = str(self.backup)
        return shown


@dataclass(frozen=True)
class Deployer:
    """deploy_dag, delete_dag and refresh_dag for one call: its settings, Airflow and client."""

    commands: CommandPath
    settings: Settings
    airflow: AirflowInfo
    peer: str
    author: str = "-"  # the caller's token name: a git commit's author

    async def deploy(
        self,
        staged: StagedUpload,
        locks: dict[str, asyncio.Lock],
        force: bool,
        pause: bool | None,
    ) -> Deployed:
        """Install the uploaded DAG file through the deploy target: checked, the version it
        replaces kept; then, with ``pause`` True/False, paused or unpaused."""
        # Before the install moves the staged file into the dags folder.
        uploaded_hash = await in_thread(source_hash, staged.path)
        if self.settings.deploy_target == "git":
            deployed = await self._deploy_to_git(staged, locks, force)
        else:
            deployed = await self._deploy_to_folder(staged, locks, force)
        deployed.source_hash = uploaded_hash
        if pause is not None:
            action = "pause" if pause else "unpause"
            for dag_id in deployed.dag_ids:
                result = await self._airflow(action, "dags", action, "--yes", "--", dag_id)
                if result.exit_code != 0:
                    deployed.warnings.append(
                        f"could not {action} {dag_id}: exit code {result.exit_code}"
                        + (
                            " (Airflow has not parsed it yet)"
                            if deployed.target["target"] == "git"
                            else ""
                        )
                    )
        return deployed

    async def _deploy_to_folder(
        self, staged: StagedUpload, locks: dict[str, asyncio.Lock], force: bool
    ) -> Deployed:
        settings = self.settings
        # Refused early when it would be refused anyway (checked again under the lock below).
        await in_thread(install.refuse_overwrite, staged, settings.dags_folder, force)
        dag_ids = await self.check(staged, settings.dags_folder)
        async with install.upload_lock(locks, staged.name):
            placed_at = time.time()
            installed = await in_thread(
                install.install,
                staged,
                settings.dags_folder,
                settings.backups_folder,
                settings.backups_to_keep,
                force,
            )
        target = {"target": "folder", "path": str(installed.target)}
        deployed = Deployed(installed.target, dag_ids, installed.backup, target)
        deployed.placed_at = placed_at
        await self._reserialize(deployed.warnings)
        log.info("deployed %s (%d bytes) dags=%s", installed.target, staged.size, dag_ids)
        return deployed

    async def _deploy_to_git(
        self, staged: StagedUpload, locks: dict[str, asyncio.Lock], force: bool
    ) -> Deployed:
        """Commit the file to the deploy branch, checked against the branch's own tree."""
        repo, notes = await self._repository("deploy_dag")
        path = repo.relative(staged.name)
        async with git.locked(locks, repo.settings):
            await repo.sync()
            target = repo.dags_root / staged.name
            if await in_thread(target.exists) and not force:
                raise RequestError(
                    f"The file '{path}' already exists on {repo.branch}; send force=true to "
                    "replace it (the git history keeps the current version)"
                )
            dag_ids = await self.check(staged, repo.dags_root)
            await in_thread(install.place_copy, staged.path, target)
            message = (
                f"Deploy {path} ({', '.join(dag_ids)})\n\n"
                f"Deployed through airflow-rest-bridge by token {self.author} ({self.peer})."
            )
            placed_at = time.time()
            pushed = await repo.commit_and_push([path], message, Author(self.author, self.peer))
        deployed = Deployed(path, dag_ids, None, _git_target(pushed), notes, placed_at)
        if not pushed.changed:
            deployed.warnings.append(
                f"{repo.branch} holds this file exactly as uploaded: nothing was committed"
            )
        log.info("deployed %s to %s at %s dags=%s", path, repo.branch, pushed.commit, dag_ids)
        return deployed

    async def delete(self, dag_id: str, locks: dict[str, asyncio.Lock], metadata: bool) -> Deployed:
        """Remove the file that defines ``dag_id`` through the deploy target (kept in the
        backups, or a git commit), then, with ``metadata``, its records ('dags delete')."""
        rows = await self._dags_listed("delete_dag")
        row = next((r for r in rows if r.get("dag_id") == dag_id), None)
        if row is None:
            raise RequestError(f"The DAG ID '{dag_id}' does not exist", status=404)
        fileloc = str(row.get("fileloc") or "")
        others = sorted(
            str(r.get("dag_id"))
            for r in rows
            if str(r.get("fileloc") or "") == fileloc and r.get("dag_id") != dag_id
        )
        if others:
            raise RequestError(
                f"{fileloc} defines other DAGs besides {dag_id}: {', '.join(others)}; "
                "nothing was deleted (deploy a version of the file without it instead)",
                status=409,
            )
        relative = self._relative_file(row, fileloc, dag_id)
        if self.settings.deploy_target == "git":
            deleted = await self._delete_from_git(relative, dag_id, locks)
        else:
            deleted = await self._delete_from_folder(relative, dag_id, locks)
        if metadata:
            result = await self._airflow(
                "delete records", "dags", "delete", "--yes", "--", dag_id, api="delete_dag"
            )
            deleted.target["metadata_exit_code"] = result.exit_code
            if result.exit_code != 0:
                deleted.warnings.append(
                    f"the file is gone, but 'dags delete' failed (exit code "
                    f"{result.exit_code}): {result.stderr.strip()[-500:]}"
                )
        return deleted

    def _relative_file(self, row: dict[str, Any], fileloc: str, dag_id: str) -> Path:
        """The DAG's file relative to the dags folder (or the bundle's root on Airflow 3)."""
        relative = row.get("relative_fileloc")
        if relative:
            return Path(str(relative))
        try:
            return Path(fileloc).relative_to(self.settings.dags_folder)
        except ValueError:
            raise RequestError(
                f"{dag_id} is defined in {fileloc}, outside the dags folder: only a DAG "
                "file the bridge could have deployed is deleted",
                status=409,
            ) from None

    async def _delete_from_folder(
        self, relative: Path, dag_id: str, locks: dict[str, asyncio.Lock]
    ) -> Deployed:
        settings = self.settings
        async with install.upload_lock(locks, relative.name):
            file, backup = await in_thread(
                install.remove,
                settings.dags_folder,
                relative,
                settings.backups_folder,
                settings.backups_to_keep,
            )
        deleted = Deployed(file, [dag_id], backup, {"target": "folder", "path": str(file)})
        # So that Airflow stops listing it now, not at its next parse of the folder.
        await self._reserialize(deleted.warnings, api="delete_dag")
        log.info("deleted %s (dag %s); kept as %s", file, dag_id, backup)
        return deleted

    async def _delete_from_git(
        self, relative: Path, dag_id: str, locks: dict[str, asyncio.Lock]
    ) -> Deployed:
        repo, notes = await self._repository("delete_dag")
        async with git.locked(locks, repo.settings):
            await repo.sync()
            file = await in_thread(install.file_within, repo.dags_root, relative)
            if file is None:
                raise RequestError(
                    f"{dag_id}'s file {relative} is not on {repo.branch} of the deploy "
                    "repository; nothing was deleted",
                    status=404,
                )
            path = repo.relative(str(file.relative_to(repo.dags_root)))
            await in_thread(file.unlink)
            message = (
                f"Delete {path} ({dag_id})\n\n"
                f"Deleted through airflow-rest-bridge by token {self.author} ({self.peer})."
            )
            pushed = await repo.commit_and_push([path], message, Author(self.author, self.peer))
        log.info("deleted %s (dag %s) from %s at %s", path, dag_id, repo.branch, pushed.commit)
        return Deployed(path, [dag_id], None, _git_target(pushed), notes)

    async def _repository(self, api: str) -> tuple[GitRepository, list[str]]:
        """The deploy repository for this call, and what to say about it: with
        deploy_bundle's git connection, its URL asked of Airflow now (the connection may be
        in Airflow's database or a secrets backend, and may change)."""
        settings, notes = self.settings, list[str]()
        if not settings.deploy_git_url and settings.deploy_git_connection:
            argv = [self.airflow.executable, "connections", "get", "--output=json", "--"]
            spec = CommandSpec(
                [*argv, settings.deploy_git_connection],
                api,
                "deploy_bundle's connection",
                self.peer,
            )
            url, notes = connection_url(
                await self.commands.capture(spec), settings.deploy_git_connection, settings
            )
            settings = replace(settings, deploy_git_url=url)
        return GitRepository(self.commands, settings, api, self.peer), notes

    async def _reserialize(self, warnings: list[str], api: str = "deploy_dag") -> None:
        """Write the folder's DAGs to Airflow's database now, so that a new DAG is listed
        (Airflow 3 lists from the database) and can be paused before a scheduler or
        dag-processor parses it. The whole dags folder, on purpose: Airflow 2's
        'reserialize --subdir FILE' first deletes every serialized DAG, so every other DAG
        would vanish until the next parse."""
        serialized = await self._airflow("serialize", "dags", "reserialize", api=api)
        if serialized.exit_code != 0:
            warnings.append(f"'dags reserialize' failed (exit code {serialized.exit_code})")

    async def check(self, staged: StagedUpload, dags_folder: Path) -> list[str]:
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
            argv = [python, str(DAG_CHECK), str(copy), str(dags_folder)]
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
        if not any(r.get("dag_id") == dag_id for r in await self._dags_listed("refresh_dag")):
            raise RequestError(f"The DAG ID '{dag_id}' does not exist", status=404)
        # Not limited to the DAG's file: see deploy() for why that would lose the other DAGs.
        return await self._airflow("serialize", "dags", "reserialize", api="refresh_dag")

    async def _dags_listed(self, api: str) -> list[dict[str, Any]]:
        """The DAGs Airflow knows, each with the file that defines it."""
        listed = await self._airflow("look up", "dags", "list", "--output=json", api=api)
        rows = parse_json_output(filter_text(listed.stdout))
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    async def _airflow(self, purpose: str, *args: str, api: str = "deploy_dag") -> Captured:
        argv = [self.airflow.executable, *args]
        return await self.commands.capture(CommandSpec(argv, api, purpose, self.peer))


def source_hash(path: Path) -> str:
    """SHA-256 of a DAG file's text as Airflow reads it (universal newlines) and keeps it in
    its database; bridge/airflow_side/parsed_check.py hashes the kept text the same way."""
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _git_target(pushed: Pushed) -> dict[str, Any]:
    return {
        "target": "git",
        "commit": pushed.commit,
        "branch": pushed.branch,
        "path": pushed.path,
    }
