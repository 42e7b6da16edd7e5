"""Where a task try's log is, and reading it as it grows.

The file's name comes from ``[logging] log_filename_template``, rendered as Airflow renders
it (Jinja when it holds ``{{``, else ``str.format``) with the task instance's ids, the run's
logical date and the try number; the template in force now is used, also for runs made under
an older one. Whatever the template and the ids make of it, the path is resolved and must
stay inside ``base_log_folder``. Airflow 3 writes JSON lines; they are shown as text lines
unless the caller asks for the file as it is. Everything here touches the disk: call it from
a worker thread.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from jinja2.sandbox import SandboxedEnvironment

from bridge.catalogue.installed_cli import TaskLogSettings
from bridge.errors import RequestError

# A try has ended in these states (a retry or a reschedule starts a new try, a new file).
ENDED_STATES = frozenset(
    {
        "success",
        "failed",
        "skipped",
        "upstream_failed",
        "removed",
        "up_for_retry",
        "up_for_reschedule",
    }
)
MAX_TRIES = 1000  # probed for "the latest try"; no task is retried more often
READ_SIZE = 1024 * 1024  # bytes read at a time while following
_TEMPLATES = SandboxedEnvironment(autoescape=False)


@dataclass(frozen=True)
class TaskTry:
    """The task instance whose log is asked for (the try number comes separately)."""

    dag_id: str
    task_id: str
    run_id: str
    logical_date: str  # ISO, "" for a run without one (Airflow 3)
    map_index: int = -1


def relative_name(template: str, task: TaskTry, try_number: int) -> str:
    """The log file's name under the logs folder, as Airflow's file task handler makes it."""
    if "{{" in template or "{%" in template:
        ti = SimpleNamespace(
            dag_id=task.dag_id,
            task_id=task.task_id,
            run_id=task.run_id,
            map_index=task.map_index,
            try_number=try_number,
        )
        context = {"ti": ti, "ts": task.logical_date, "try_number": try_number}
        return _TEMPLATES.from_string(template).render(context)
    return template.format(
        dag_id=task.dag_id,
        task_id=task.task_id,
        run_id=task.run_id,
        data_interval_start="",
        data_interval_end="",
        execution_date=task.logical_date,
        logical_date=task.logical_date,
        try_number=try_number,
    )


def log_path(settings: TaskLogSettings, task: TaskTry, try_number: int) -> Path:
    """The try's log file, resolved; a 400 when it would lie outside the logs folder."""
    base = Path(settings.base_folder).resolve()
    try:
        name = relative_name(settings.filename_template, task, try_number)
    except Exception as exc:  # the operator's template: say what it made of this task
        raise RequestError(
            f"[logging] log_filename_template could not be rendered: {exc}", status=500
        ) from None
    path = (base / name).resolve()
    if not path.is_relative_to(base) or path == base:
        raise RequestError(
            f"the log of this task try would be {name!r}, outside the logs folder "
            "([logging] base_log_folder): refused"
        )
    return path


def latest_try(settings: TaskLogSettings, task: TaskTry) -> tuple[int, Path] | None:
    """The highest try whose log file is there (tries write 1, 2, ... in turn); None when
    there is none yet."""
    found: tuple[int, Path] | None = None
    for try_number in range(1, MAX_TRIES + 1):
        path = log_path(settings, task, try_number)
        if found is not None and path == found[1]:
            break  # a template without the try number: one file for all tries
        if not path.is_file():
            break
        found = (try_number, path)
    return found


def readable(line: str) -> str:
    """One line of Airflow 3's JSON log as a text line (timestamp, logger, level, event,
    then the other fields as key=value); any other line as it is."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "event" not in record:
        return line
    stamp = record.pop("timestamp", None)
    level = str(record.pop("level", "") or "").upper()
    event = record.pop("event")
    logger = record.pop("logger", None)
    parts = [f"[{stamp}]" if stamp else "", f"{{{logger}}}" if logger else "", level, "-"]
    text = " ".join(part for part in parts if part) + f" {event}"
    rest = " ".join(f"{key}={_shown(value)}" for key, value in record.items())
    return f"{text} {rest}" if rest else text


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


@dataclass
class LogReader:
    """Reads one log file from where it was last read; only whole lines until ``final``."""

    path: Path
    raw: bool = False
    offset: int = 0
    _partial: bytes = field(default=b"", repr=False)

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, final: bool = False, limit: int = READ_SIZE) -> str:
        """What was written since the last read (at most ``limit`` bytes of it), as text."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return ""
        with os.fdopen(descriptor, "rb") as file:
            file.seek(self.offset)
            data = file.read(limit)
        self.offset += len(data)
        data = self._partial + data
        self._partial = b""
        if not final:
            whole = data.rfind(b"\n") + 1
            data, self._partial = data[:whole], data[whole:]
        return self._text(data.decode("utf-8", "replace"))

    def _text(self, text: str) -> str:
        if self.raw or not text:
            return text
        lines = text.split("\n")
        return "\n".join(readable(line) if line else line for line in lines)
