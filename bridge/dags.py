"""deploy_dag and refresh_dag: putting DAG files into the dags folder safely, re-parsing them.

An upload is streamed under a size cap to a temp file inside the dags folder (same
filesystem, a name the DAG parser skips), fsync'd, and only then moved into place with
``os.replace``: Airflow never sees half a file. A file it replaces is first copied to the
backups folder, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader

from bridge.catalogue import RequestError
from bridge.config import Settings
from bridge.noise import filter_text
from bridge.runner import capture

log = logging.getLogger(__name__)

STAGING_PREFIX = ".airflow-rest-bridge-upload-"
STAGING_SUFFIX = ".tmp"  # neither .py nor a complete zip while written: the parser skips it
ALLOWED_SUFFIXES = (".py", ".zip")
READ_CHUNK = 64 * 1024


@dataclass
class StagedUpload:
    """An uploaded file, complete and fsync'd, waiting in the dags folder under a temp name."""

    path: Path
    name: str
    size: int

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def check_upload_name(filename: str) -> str:
    """The client's filename, accepted only as a plain visible .py/.zip base name."""
    if not filename or filename in (".", ".."):
        raise RequestError("dag_file has no filename")
    if "/" in filename or "\\" in filename or "\x00" in filename:
        raise RequestError(f"dag_file name {filename!r} must be a base name, without a path")
    if filename.startswith("."):
        raise RequestError(f"dag_file name {filename!r} is hidden (starts with '.')")
    if not filename.endswith(ALLOWED_SUFFIXES):
        raise RequestError(f"dag_file name {filename!r} must end with .py or .zip")
    return filename


async def stage_upload(part: BodyPartReader, settings: Settings) -> StagedUpload:
    """Stream one multipart file part to a temp file in the dags folder, under the size cap."""
    name = check_upload_name(part.filename or "")
    folder = settings.dags_folder
    if not folder.is_dir():
        raise RequestError(f"the dags folder {folder} does not exist", status=500)
    handle, temp_name = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=STAGING_SUFFIX, dir=folder)
    temp = Path(temp_name)
    size = 0
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := await part.read_chunk(READ_CHUNK):
                size += len(chunk)
                if size > settings.max_upload_size:
                    raise RequestError(
                        f"dag_file is larger than max_upload_size ({settings.max_upload_size} "
                        "bytes)",
                        status=413,
                    )
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise RequestError("dag_file is empty")
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return StagedUpload(temp, name, size)


def clean_stale_uploads(folder: Path) -> int:
    """Remove temp files a crashed daemon left behind; returns how many."""
    removed = 0
    for stale in folder.glob(STAGING_PREFIX + "*" + STAGING_SUFFIX):
        stale.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.warning("removed %d stale upload temp file(s) from %s", removed, folder)
    return removed


@dataclass(frozen=True)
class Installed:
    target: Path
    backup: Path | None


def install(staged: StagedUpload, settings: Settings, force: bool) -> Installed:
    """Move the staged file into place; an existing file needs ``force`` and is backed up."""
    target = settings.dags_folder / staged.name
    backup = None
    if target.exists():
        if not force:
            raise RequestError(
                f"The file '{target}' already exists on this host; send force=true to replace "
                "it (the current version is kept as a backup)"
            )
        backup = _back_up(target, settings)
    os.replace(staged.path, target)
    _fsync_dir(settings.dags_folder)
    return Installed(target, backup)


def _back_up(target: Path, settings: Settings) -> Path:
    folder = settings.backups_folder
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup = folder / f"{target.name}.{stamp}"
    shutil.copy2(target, backup)
    with open(backup, "rb") as saved:
        os.fsync(saved.fileno())
    if settings.backups_to_keep:
        kept = sorted(folder.glob(f"{target.name}.*"))
        for old in kept[: -settings.backups_to_keep]:
            old.unlink(missing_ok=True)
    return backup


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- asking Airflow about DAG files -----------------------------------------------------------


async def dags_in_file(
    airflow: str, env: Mapping[str, str], settings: Settings, target: Path, major: int
) -> list[str]:
    """The DAG ids Airflow lists for ``target`` (after making Airflow 3 serialize them)."""
    grace = settings.kill_grace_period
    timeout = settings.command_timeout
    if major >= 3:
        await capture([airflow, "dags", "reserialize"], env=env, timeout=timeout, grace=grace)
    listed = await capture(
        [airflow, "dags", "list", "--output=json"], env=env, timeout=timeout, grace=grace
    )
    rows = parse_json_output(filter_text(listed.stdout))
    if not isinstance(rows, list):
        return []
    resolved = str(target.resolve())
    return [
        str(row["dag_id"])
        for row in rows
        if isinstance(row, dict) and str(Path(str(row.get("fileloc", ""))).resolve()) == resolved
    ]


async def dag_file_of(
    airflow: str, env: Mapping[str, str], settings: Settings, dag_id: str
) -> str | None:
    """Where Airflow says ``dag_id`` is defined, or None when it does not know the DAG."""
    listed = await capture(
        [airflow, "dags", "list", "--output=json"],
        env=env,
        timeout=settings.command_timeout,
        grace=settings.kill_grace_period,
    )
    rows = parse_json_output(filter_text(listed.stdout))
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("dag_id") == dag_id:
            return str(row.get("fileloc") or "")
    return None


def parse_json_output(stdout: str) -> Any:
    """The JSON the CLI printed with ``-o json``; stray lines around it are skipped."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        stripped = line.strip()
        if stripped[:1] in "[{":
            try:
                return json.loads(stripped)
            except ValueError:
                continue
    return None


def upload_lock(locks: dict[str, asyncio.Lock], name: str) -> asyncio.Lock:
    """One lock per target file name: two uploads of one name never interleave."""
    return locks.setdefault(name, asyncio.Lock())
