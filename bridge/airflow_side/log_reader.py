"""Read a task try's log with Airflow's own log reader (``TaskLogReader``), wherever this
installation keeps it: the local file, the log server of the worker that ran the try
(``serve_logs``, signed with the secret key) or remote logging.

    <airflow's python> log_reader.py read|follow POLL_SECONDS -- DAG_ID TASK_ID RUN_ID
        MAP_INDEX TRY_NUMBER|latest

Run by the Airflow installation's own interpreter in a child process, never imported by the
daemon. ``read`` reads the try once; ``follow`` reads it again every POLL_SECONDS with the
reader's own continuation (the ``log_pos`` of its metadata: only what is new comes back)
until Airflow says the log ended (``end_of_log``, the try no longer running); a try that has
not begun is waited for. The daemon bounds, cancels and stops it.

Stdout carries JSON lines only: ``{"log": TEXT}`` (whole lines as Airflow has them: text on
Airflow 2, JSON lines on Airflow 3) and ``{"about": {...}}`` (the try, its state, where the
log was found, what the reader said; ``done`` last). Anything Airflow prints or logs goes to
stderr. Uses only the standard library and Airflow.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO
from urllib.parse import urlsplit

GOING = frozenset({"running", "deferred"})  # the try runs: its log grows
ENDED = frozenset(
    {"success", "failed", "skipped", "upstream_failed", "removed"}
    | {"up_for_retry", "up_for_reschedule"}
)
GROUP, END_GROUP = "::group::Log message source details", "::endgroup::"
PIECE = 64 * 1024  # characters of log per JSON line at most


class Report:
    """The JSON lines the daemon reads, on the stdout the child started with."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.carry = ""  # the end of the text read so far, when it is not a whole line

    def log(self, text: str, final: bool = False) -> bool:
        """Send the whole lines of ``text`` (all of it when ``final``); True when any."""
        text = self.carry + text
        cut = len(text) if final else text.rfind("\n") + 1
        text, self.carry = text[:cut], text[cut:]
        if final and text and not text.endswith("\n"):
            text += "\n"
        for start in range(0, len(text), PIECE):
            self.send({"log": text[start : start + PIECE]})
        return bool(text)

    def about(self, **facts: Any) -> None:
        self.send({"about": facts})

    def send(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, default=str) + "\n")
        self.out.flush()


class Airflow:
    """What the installation offers, imported once the report's stdout is set aside."""

    def __init__(self) -> None:
        import airflow  # type: ignore[import-not-found]
        from airflow.configuration import conf  # type: ignore[import-not-found]
        from airflow.models.taskinstance import TaskInstance  # type: ignore[import-not-found]
        from airflow.utils.log.log_reader import TaskLogReader  # type: ignore[import-not-found]
        from airflow.utils.session import create_session  # type: ignore[import-not-found]

        self.major = int(str(airflow.__version__).split(".")[0])
        self.conf = conf
        self.TaskInstance = TaskInstance
        self.create_session = create_session
        self.reader = TaskLogReader()
        self.history: Any = None
        if self.major >= 3:  # an earlier try's host and state are kept in its history
            from airflow.models.taskinstancehistory import (  # type: ignore[import-not-found]
                TaskInstanceHistory,
            )

            self.history = TaskInstanceHistory
        self.remote = conf.getboolean("logging", "remote_logging", fallback=False)
        self.ports = {
            conf.get("logging", "worker_log_server_port", fallback="8793"),
            conf.get("logging", "trigger_log_server_port", fallback="8794"),
        }


def state_of(ti: Any) -> str:
    state = getattr(ti.state, "value", ti.state)
    return str(state).lower() if state is not None else "none"


def latest_try(ti: Any) -> int:
    """The try the task instance is on (Airflow 2.7 to 2.9 count a finished try's next)."""
    if hasattr(type(ti), "next_try_number"):
        return int(ti.next_try_number) - 1
    return int(ti.try_number or 0)


def classify(airflow: Airflow, entry: str) -> tuple[str, str]:
    """What one line of the reader's "source details" says: ("file" | "log server" |
    "remote", where) for a place the log was read from, ("note", text) otherwise."""
    text = entry.strip()
    text = text[2:].strip() if text.startswith("* ") else text
    if text.startswith("Found logs served from host "):  # Airflow 2
        text = text.rsplit(" ", 1)[-1]
    if text.startswith(("http://", "https://")):
        parts = urlsplit(text)
        if parts.path.startswith("/log/") and str(parts.port) in airflow.ports:
            return "log server", text
    if os.path.isabs(text) and not text.endswith(":"):
        return "file", text
    if airflow.remote and "://" in text and " " not in text:
        return "remote", text
    return "note", text


def read_once(
    airflow: Airflow, ti: Any, try_number: int, metadata: dict[str, Any]
) -> tuple[list[str], list[str], dict[str, Any]]:
    """One read: the log's new lines (strings ending in a newline, except perhaps the last
    on Airflow 2), the source details (first read only) and the metadata to go on with."""
    previous = metadata.get("log_pos")
    logs, out = airflow.reader.read_log_chunks(ti, try_number, dict(metadata))
    details: list[str] = []
    if airflow.major < 3:
        text = "".join(str(part) for _, part in (logs[0] if logs else []))
        # Airflow 2 joins whole lines with newlines and cuts the next read at log_pos, so a
        # read ends without its last newline and the next one begins with it.
        if previous is not None and text.startswith("\n"):
            text = text[1:]
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        if lines and lines[0].rstrip("\n").endswith(GROUP):
            end = next((i for i, line in enumerate(lines) if line.rstrip().endswith(END_GROUP)), 0)
            for line in lines[1:end]:
                if line.startswith("*** ") or not details:
                    details.append(line[4:].rstrip("\n") if line.startswith("*** ") else line)
                else:  # a message of several lines
                    details[-1] += "\n" + line.rstrip("\n")
            lines = lines[end + 1 :]
        return lines, details, dict(out or {})
    records = list(logs or [])
    if records and getattr(records[0], "event", None) == GROUP:
        group = records.pop(0)
        details.extend(str(s) for s in (getattr(group, "sources", None) or []))  # 3.0, 3.1
        while records and getattr(records[0], "event", None) != END_GROUP:
            details.append(str(records.pop(0).event))  # 3.2 on
        records = records[1:]
    elif previous and len(records) == out.get("log_pos", -1) >= previous:
        # Airflow 3.0 and 3.1 drop the islice that skips what was read before: skip it here.
        records = records[previous:]
    lines = [record.model_dump_json(exclude_none=True) + "\n" for record in records]
    return lines, details, dict(out or {})


def find(airflow: Airflow, session: Any, task: dict[str, Any]) -> Any:
    model = airflow.TaskInstance
    ti = (
        session.query(model)
        .filter(
            model.dag_id == task["dag_id"],
            model.task_id == task["task_id"],
            model.run_id == task["run_id"],
            model.map_index == task["map_index"],
        )
        .one_or_none()
    )
    return loaded(ti)


def for_try(airflow: Airflow, session: Any, ti: Any, try_number: int) -> Any:
    """The record of ``try_number`` (Airflow 3 keeps earlier tries in their history)."""
    if airflow.history is None or try_number >= int(ti.try_number or 0):
        return ti
    model = airflow.history
    earlier = (
        session.query(model)
        .filter(
            model.dag_id == ti.dag_id,
            model.task_id == ti.task_id,
            model.run_id == ti.run_id,
            model.map_index == ti.map_index,
            model.try_number == try_number,
        )
        .one_or_none()
    )
    return loaded(earlier) if earlier is not None else ti


def loaded(ti: Any) -> Any:
    """``ti`` with what the reader looks at loaded while its session is open (Airflow's own
    log endpoints load it with the instance): on Airflow 2 the reader's own session ends the
    one ``ti`` came from, and Airflow's sessions keep what they loaded past their commit."""
    if ti is not None:
        _ = ti.dag_run
        if (trigger := getattr(ti, "trigger", None)) is not None:
            _ = trigger.triggerer_job
    return ti


def run(report: Report, follow: bool, poll: float, task: dict[str, Any], wanted: int | None) -> int:
    airflow = Airflow()
    metadata: dict[str, Any] = {}
    said: dict[str, Any] = {}
    kinds: list[str] = []
    sources: list[str] = []
    notes: list[str] = []
    found = False
    try_number = wanted
    while True:
        with airflow.create_session() as session:
            ti = find(airflow, session, task)
            if ti is None:
                report.about(missing="Airflow has no such task instance", done=True, found=False)
                return 0
            state, latest = state_of(ti), latest_try(ti)
            if try_number is None and (state in GOING or state in ENDED or not follow):
                try_number = latest  # the latest try, fixed once it has begun
            number = try_number if try_number is not None else latest
            now = {"try_number": number or None, "state": state, "hostname": ti.hostname}
            if now != said:
                report.about(**now)
                said = now
            waiting = not number or number > latest
            waiting = waiting or (number == latest and state not in GOING | ENDED)
            if waiting and not follow:
                report.about(notes=["the try has not begun"], done=True, found=False)
                return 0
            ended = True
            if not waiting:
                record = for_try(airflow, session, ti, number)
                lines, details, metadata = read_once(airflow, record, number, metadata)
                for entry in details:
                    kind, where = classify(airflow, entry)
                    if kind == "note":
                        notes.append(where)
                        continue
                    sources.append(where)
                    if kind not in kinds:
                        kinds.append(kind)
                if details:  # before the lines: where they come from
                    report.about(source=", ".join(kinds) or None, sources=sources, notes=notes)
                found = report.log("".join(lines)) or found or bool(sources)
                going = number == latest and state in GOING
                ended = bool(metadata.get("end_of_log", not going)) and not going
        if not follow or ended:
            report.log("", final=True)
            source = ", ".join(kinds) or None
            report.about(source=source, sources=sources, notes=notes, done=True, found=found)
            return 0
        time.sleep(poll)


def main(argv: list[str]) -> int:
    # The report keeps the stdout the daemon reads; Airflow's own prints and log lines
    # (its console handler writes to stdout) go to stderr from here on.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if len(argv) != 8 or argv[0] not in ("read", "follow") or argv[2] != "--":
        sys.stderr.write(__doc__ or "")
        return 2
    mode, poll, _, dag_id, task_id, run_id, map_index, wanted = argv
    # The reader reads as Airflow's API server does, with the metadata database at hand: on
    # Airflow 3 only a process that says so finds connections there (the remote log store's).
    os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "server"
    task = {"dag_id": dag_id, "task_id": task_id, "run_id": run_id, "map_index": int(map_index)}
    number = None if wanted == "latest" else int(wanted)
    return run(Report(out), mode == "follow", float(poll), task, number)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
