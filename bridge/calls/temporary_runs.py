"""The DAG run a stopped `airflow tasks test` leaves behind, ended.

`tasks test` (Airflow 2 and 3 alike) makes a DAG run of its own in the database,
``__airflow_temporary_run_<its UTC creation time>__`` (queued on 2, running on 3), and deletes
it in a ``finally:`` once the task is done. A command ended by a signal never gets there: a
cancel, ``command_timeout``, a client that left, the daemon stopping (Airflow 3.3's `tasks
test` ignores SIGTERM once its task runs, so each of those ends with SIGKILL). The run stays,
and a scheduler runs it later.

So once such a command ended by a signal, the bridge runs bridge/airflow_side/end_test_runs.py
with Airflow's own interpreter, through the command path like any command (audit line,
ledger, stopped with the daemon), while the call still holds its slot. It marks the run and
its task instances under way failed; the call's result names what it ended
(:data:`FIELD`). Which runs were the command's: the one it named in its output (Airflow logs
the run it makes), else the script's rules (a task instance with the command's pid, then
runs made while it ran that no live process holds). Whether a command makes such a run is
a fact of the command (:data:`MAKE_A_TEMPORARY_RUN`), not of the version: where it made
none, nothing is found and nothing is said.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.calls.result import Prepared
from bridge.process.command import Outcome
from bridge.process.path import CommandSpec
from bridge.text.noise import parse_json_output
from bridge.text.redact import mask_uri

log = logging.getLogger(__name__)

# The CLI commands that make a temporary run (airflow/cli/commands/task_command.py's
# task_test, reviewed from 2.7 to 3.3), by their words.
MAKE_A_TEMPORARY_RUN = frozenset({("tasks", "test")})
END_TEST_RUNS = Path(__file__).parents[1] / "airflow_side" / "end_test_runs.py"
FIELD = "ended_test_runs"  # the result's field: the runs ended, as the script says
# As Airflow names it: the prefix, then datetime.isoformat() of its creation, then "__".
TEMPORARY_RUN = re.compile(rb"__airflow_temporary_run_[0-9T:.+-]{10,40}__")
_TAIL = 80  # bytes of a stream kept between reads: a run id split by a read is still seen
_SLACK = 1.0  # seconds before the command started: the clocks are one, their readings not


@dataclass
class TaskTest:
    """A running `tasks test` as the bridge sees it: its DAG, when it started, its pid, and
    the temporary run it named in its output."""

    dag_id: str
    since: float = field(default_factory=time.time)
    pid: int | None = None
    named: str | None = None
    _tails: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, prepared: Prepared) -> TaskTest | None:
        """For a command that makes a temporary run; None for any other."""
        if tuple(prepared.plan.argv[:2]) not in MAKE_A_TEMPORARY_RUN:
            return None
        dag_id = prepared.call.values.get("dag_id")
        return cls(dag_id) if isinstance(dag_id, str) else None

    def feed(self, stream: str, data: bytes) -> None:
        """Look for the run's id in the command's output (the first one: Airflow logs the
        run it makes before the task's own code runs)."""
        if self.named is not None:
            return
        seen = self._tails.get(stream, b"") + data
        found = TEMPORARY_RUN.search(seen)
        if found is not None:
            self.named = found.group().decode("ascii")
        self._tails[stream] = seen[-_TAIL:]

    def left_behind(self, outcome: Outcome | None) -> bool:
        """Ended by a signal (or not seen to end): its own ``finally``, which deletes the
        run, did not run. A command that ran on after its client left has no outcome yet."""
        return outcome is not None and (outcome.exit_code is None or outcome.exit_code < 0)

    def described(self) -> str:
        named = f" ({self.named})" if self.named else ""
        return f"the DAG run{named} that `tasks test` made for {self.dag_id}"


async def end_left_runs(prepared: Prepared, test: TaskTest) -> tuple[list[Any], list[str]]:
    """End the temporary run(s) the stopped test left: what was ended (the script's report),
    and warnings (a failure to end them is one, never an error of the call)."""
    call = prepared.call
    what = test.described()
    if call.commands.closing.is_set():
        return [], [
            f"{what} was left as it was: the daemon is stopping, and no Airflow process "
            "starts then (a scheduler would run it: pause the DAG, or end the run)"
        ]
    python = call.airflow.python
    if python is None:
        return [], [f"{what} was not ended: Airflow's interpreter is unknown (airflow_python)"]
    request = {
        "dag_id": test.dag_id,
        "since": test.since - _SLACK,
        "until": time.time(),
        "pid": test.pid or 0,
        "run_ids": [test.named] if test.named else [],
    }
    argv = [python, str(END_TEST_RUNS), json.dumps(request)]
    spec = CommandSpec(argv, call.api.name, "end the stopped test's run", call.peer, warm=False)
    try:
        found = await call.commands.capture(spec)
    except Exception as exc:  # the daemon began to stop, the interpreter is gone, ...
        log.warning("ending %s failed: %s", what, exc)
        return [], [f"{what} could not be ended: {exc}"]
    report = parse_json_output(found.stdout) if found.exit_code == 0 else None
    if not isinstance(report, dict) or not isinstance(report.get("ended"), list):
        last = (found.stderr.strip().splitlines() or ["no output"])[-1]
        log.warning("ending %s failed (exit code %s): %s", what, found.exit_code, found.stderr)
        return [], [f"{what} could not be ended (exit code {found.exit_code}): {mask_uri(last)}"]
    for left in report.get("left") or []:
        log.info("a temporary run of %s was left: %s", test.dag_id, left)
    return report["ended"], []


def noted(ended: list[Any]) -> str:
    """The bridge's line in a stream's output: what it ended."""
    runs = ", ".join(str(run.get("run_id")) for run in ended if isinstance(run, dict))
    return f"[airflow-rest-bridge] the stopped test's DAG run was marked failed: {runs}\n"
