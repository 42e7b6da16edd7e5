"""DAG file uploads: staging, checking names, installing atomically, keeping backups.

An upload is streamed under a size cap to a temp file inside the dags folder (same
filesystem, a name the DAG parser skips), fsync'd, and only then moved into place with
``os.replace``: Airflow never sees half a file. A file it replaces is first copied to the
backups folder, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import BodyPartReader

from bridge.catalogue import RequestError
from bridge.config import Settings

log = logging.getLogger(__name__)

STAGING_PREFIX = ".airflow-rest-bridge-upload-"
STAGING_SUFFIX = ".tmp"  # neither .py nor a complete zip while written: the parser skips it
ALLOWED_SUFFIXES = (".py", ".zip")
READ_CHUNK = 64 * 1024
_RAW_FILENAME = re.compile(r'filename="([^"]*)"|filename=([^";\s]+)')
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


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
    if not _SAFE_NAME.match(filename):
        raise RequestError(
            f"dag_file name {filename!r} may only contain letters, digits, '_', '-' and '.'"
        )
    return filename


async def stage_upload(part: BodyPartReader, settings: Settings) -> StagedUpload:
    """Stream one multipart file part to a temp file in the dags folder, under the size cap."""
    # aiohttp's parsed filename drops a leading '/', so the raw header is checked as well.
    raw_header = part.headers.get("Content-Disposition", "")
    for match in _RAW_FILENAME.finditer(raw_header):
        check_upload_name(match[1] if match[1] is not None else match[2])
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
            # mkstemp makes the file private; Airflow's other processes must read it.
            os.fchmod(out.fileno(), 0o666 & ~_UMASK)
            os.fsync(out.fileno())
        if size == 0:
            raise RequestError("dag_file is empty")
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return StagedUpload(temp, name, size)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask() can only be read by setting it, which must not race.
_UMASK = _current_umask()


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
    target = refuse_overwrite(staged, settings, force)
    backup = _back_up(target, settings) if target.exists() else None
    os.replace(staged.path, target)
    _fsync_dir(settings.dags_folder)
    return Installed(target, backup)


def refuse_overwrite(staged: StagedUpload, settings: Settings, force: bool) -> Path:
    """The upload's target; an existing file without ``force`` is the seed's 400."""
    target = settings.dags_folder / staged.name
    if target.exists() and not force:
        raise RequestError(
            f"The file '{target}' already exists on this host; send force=true to replace "
            "it (the current version is kept as a backup)"
        )
    return target


def _back_up(target: Path, settings: Settings) -> Path:
    folder = settings.backups_folder
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup = folder / f"{target.name}.{stamp}"
    shutil.copy2(target, backup)
    with open(backup, "rb") as saved:
        os.fsync(saved.fileno())
    if settings.backups_to_keep:
        kept = sorted(folder.glob(f"{target.name}.[0-9]*Z"))  # this file's backups only
        for old in kept[: -settings.backups_to_keep]:
            old.unlink(missing_ok=True)
    return backup


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def upload_lock(locks: dict[str, asyncio.Lock], name: str) -> asyncio.Lock:
    """One lock per target file name: two uploads of one name never interleave."""
    return locks.setdefault(name, asyncio.Lock())
