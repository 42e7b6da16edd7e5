"""Installing a staged upload: one ``os.replace`` into the dags folder, so Airflow never sees
half a file; a file it replaces is first copied to the backups folder (and old backups beyond
``backups_to_keep`` removed), so nothing is lost. Blocking: called from a thread."""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bridge.deploy.staging import StagedUpload
from bridge.errors import RequestError


@dataclass(frozen=True)
class Installed:
    target: Path
    backup: Path | None


def install(
    staged: StagedUpload,
    dags_folder: Path,
    backups_folder: Path,
    backups_to_keep: int,
    force: bool,
) -> Installed:
    """Move the staged file into place; an existing file needs ``force`` and is backed up."""
    target = refuse_overwrite(staged, dags_folder, force)
    backup = back_up(target, backups_folder, backups_to_keep) if target.exists() else None
    os.replace(staged.path, target)
    _fsync_dir(dags_folder)
    return Installed(target, backup)


def refuse_overwrite(staged: StagedUpload, dags_folder: Path, force: bool) -> Path:
    """The upload's target; an existing file without ``force`` is the seed's 400."""
    target = dags_folder / staged.name
    if target.exists() and not force:
        raise RequestError(
            f"The file '{target}' already exists on this host; send force=true to replace "
            "it (the current version is kept as a backup)"
        )
    return target


def back_up(target: Path, folder: Path, keep: int) -> Path:
    """Copy ``target`` into ``folder`` under a timestamped name, fsync'd; keep only the
    newest ``keep`` backups of that file name (0: all)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup = folder / f"{target.name}.{stamp}"
    shutil.copy2(target, backup)
    with open(backup, "rb") as saved:
        os.fsync(saved.fileno())
    if keep:
        kept = sorted(folder.glob(f"{target.name}.[0-9]*Z"))  # this file's backups only
        for old in kept[:-keep]:
            old.unlink(missing_ok=True)
    return backup


def place_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` whole: written beside it under a temp name, fsync'd, then
    one ``os.replace`` (a git deploy's clone; the staged upload stays where it is)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.airflow-rest-bridge.tmp")
    try:
        shutil.copyfile(source, temp)
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def file_within(root: Path, relative: Path) -> Path | None:
    """The file ``relative`` names inside ``root`` (for a DAG inside a zip, the zip), or None;
    never a path that leaves ``root``, whatever Airflow recorded."""
    base = root.resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base):
        return None
    for path in (candidate, *candidate.parents):
        if path == base or not path.is_relative_to(base):
            return None
        if path.is_file():
            return path
    return None


def remove(
    dags_folder: Path, relative: Path, backups_folder: Path, backups_to_keep: int
) -> tuple[Path, Path]:
    """delete_dag on the folder target: the DAG's file is backed up, then unlinked."""
    target = file_within(dags_folder, relative)
    if target is None:
        raise RequestError(
            f"{relative} is not a file in the dags folder {dags_folder}; nothing was deleted",
            status=409,
        )
    backup = back_up(target, backups_folder, backups_to_keep)
    target.unlink()
    _fsync_dir(target.parent)
    return target, backup


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def upload_lock(locks: dict[str, asyncio.Lock], name: str) -> asyncio.Lock:
    """One lock per target file name: two uploads of one name never interleave."""
    return locks.setdefault(name, asyncio.Lock())
