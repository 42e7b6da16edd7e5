"""End the DAG run a stopped `airflow tasks test` left behind, and print what was ended.

    <airflow's python> end_test_runs.py '{"dag_id": ..., "since": ..., "until": ...,
                                          "pid": ..., "run_ids": [...]}'

`tasks test` makes a run of its own in the database (run_id ``__airflow_temporary_run_<its
UTC creation time>__``: Airflow 2 queued, Airflow 3 running) and deletes it in a
``finally:``, which a command killed by a signal never reaches: the run stays, and a
scheduler runs it later. This marks such runs failed, and their task instances that were
under way, through Airflow's own models.

Which runs are the stopped command's: temporary runs of ``dag_id``, not finished, created
between ``since`` and ``until`` (Unix times: the command's lifetime), and of those

- the ones the command named in its output (``run_ids``: Airflow logs the run it makes), or
  whose task instance carries the command's ``pid`` on this host (Airflow 3 records it once
  the task runs); when the command named none and no pid matches,
- the ones no other live process on this host holds (a task instance's pid): another test
  of the same DAG still running keeps its run.

Run by the Airflow installation's own interpreter in a child process, never imported by the
daemon. Output on stdout is exactly one line, ``{"ended": [{"dag_id", "run_id", "was",
"failed_tasks"}], "left": [{"run_id", "why"}]}``; anything Airflow prints goes to stderr.
Uses only the standard library and Airflow (and Python 3.8's: Airflow 2.7 runs on it).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from typing import Any

PREFIX = "__airflow_temporary_run_"


def created_at(run_id: str) -> float | None:
    """The Unix time in a temporary run's id, or None for another id."""
    if not (run_id.startswith(PREFIX) and run_id.endswith("__")):
        return None
    try:
        return datetime.datetime.fromisoformat(run_id[len(PREFIX) : -2]).timestamp()
    except ValueError:
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive all the same
    return True


def value(state: Any) -> Any:
    return getattr(state, "value", state)


def end(session: Any, run: Any, instances: list[Any]) -> dict[str, Any]:
    """Fail the run, and its task instances that were under way, with Airflow's own setters
    (end dates, durations)."""
    from airflow.utils.state import (  # type: ignore[import-not-found]
        DagRunState,
        State,
        TaskInstanceState,
    )

    failed = []
    for ti in instances:
        if ti.state is not None and ti.state in State.unfinished:
            ti.set_state(TaskInstanceState.FAILED, session=session)
            failed.append(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]")
    was = value(run.state)
    run.set_state(DagRunState.FAILED)
    session.merge(run)
    return {"dag_id": run.dag_id, "run_id": run.run_id, "was": was, "failed_tasks": failed}


def main(request: dict[str, Any]) -> int:
    report = sys.stdout
    sys.stdout = sys.stderr  # keep Airflow's own prints out of the report
    from airflow.models.dagrun import DagRun  # type: ignore[import-not-found]
    from airflow.models.taskinstance import TaskInstance  # type: ignore[import-not-found]
    from airflow.utils.net import get_hostname  # type: ignore[import-not-found]
    from airflow.utils.session import create_session  # type: ignore[import-not-found]
    from airflow.utils.state import State

    dag_id, pid = request["dag_id"], request["pid"]
    named = set(request["run_ids"])
    host = get_hostname()
    ended: list[dict[str, Any]] = []
    left: list[dict[str, str]] = []
    with create_session() as session:
        found = session.query(DagRun).filter(
            DagRun.dag_id == dag_id, DagRun.run_id.like(PREFIX + "%")
        )
        candidates = []
        for run in found:
            created = created_at(run.run_id)
            if created is None or run.state in State.finished_dr_states:
                continue
            if not request["since"] <= created <= request["until"]:
                continue
            instances = (
                session.query(TaskInstance)
                .filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
                .all()
            )
            here = [ti for ti in instances if ti.pid and ti.hostname == host]
            ours = run.run_id in named or any(ti.pid == pid for ti in here)
            holders = sorted({ti.pid for ti in here if ti.pid != pid and alive(ti.pid)})
            candidates.append((run, instances, ours, holders))
        # A run it named that is gone already (its own clean-up got that far) ends nothing
        # else: the fallback is for a command that named none.
        claimed = bool(named) or any(ours for _, _, ours, _ in candidates)
        for run, instances, ours, holders in candidates:
            if claimed and not ours:
                left.append({"run_id": run.run_id, "why": "the stopped command named another"})
            elif not claimed and holders:
                why = f"process {holders[0]} on this host runs its task"
                left.append({"run_id": run.run_id, "why": why})
            else:
                ended.append(end(session, run, instances))
    report.write(json.dumps({"ended": ended, "left": left}) + "\n")
    report.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
