"""task_log through Airflow's own log reader, the parts that need no Airflow: what the child
(bridge/airflow_side/log_reader.py) makes of the reader's source details and of text that
ends mid-line, and how the daemon reads the child's JSON lines and says why it failed. The
reader itself is tested against real Airflow in test_integration_log_reader.py."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any, cast

from bridge.airflow_side import log_reader as child
from bridge.calls.log_reader import Read, _record


def installation(remote: bool = False) -> child.Airflow:
    """What classify() looks at: the log server ports and whether remote logging is on."""
    return cast(child.Airflow, SimpleNamespace(ports={"8793", "8794"}, remote=remote))


def test_the_source_details_say_where_the_log_was_read() -> None:
    here = installation()
    served = "http://worker-1:8793/log/dag_id=d/run_id=r/task_id=t/attempt=1.log"
    assert child.classify(here, served) == ("log server", served)
    assert child.classify(here, f"Found logs served from host {served}") == ("log server", served)
    assert child.classify(here, "  * /opt/airflow/logs/d/r/t/1.log")[0] == "file"
    assert child.classify(here, "/opt/airflow/logs/a.log") == ("file", "/opt/airflow/logs/a.log")
    # Words about a failure are notes, never a place the log came from.
    refused = "Could not read served logs: 403 Client Error: FORBIDDEN for url: " + served
    assert child.classify(here, refused) == ("note", refused)
    assert child.classify(here, "Found local files:")[0] == "note"
    # Another port's URL is not the log server's; a store's URL only with remote logging.
    assert child.classify(here, "http://worker-1:9000/log/x")[0] == "note"
    assert child.classify(here, "s3://bucket/logs/a.log")[0] == "note"
    assert child.classify(installation(remote=True), "  * s3://bucket/logs/a.log") == (
        "remote",
        "s3://bucket/logs/a.log",
    )


def test_the_child_sends_whole_lines_until_the_end() -> None:
    out = io.StringIO()
    report = child.Report(out)
    assert report.log("one\ntw") is True
    assert report.log("") is False  # nothing whole yet
    assert report.log("o\nthree", final=True) is True
    report.about(done=True, found=True)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records == [
        {"log": "one\n"},
        {"log": "two\nthree\n"},
        {"about": {"done": True, "found": True}},
    ]


def test_a_long_text_goes_in_pieces() -> None:
    out = io.StringIO()
    child.Report(out).log("x" * (child.PIECE + 10) + "\n")
    pieces = [json.loads(line)["log"] for line in out.getvalue().splitlines()]
    assert [len(piece) for piece in pieces] == [child.PIECE, 11]


def test_the_daemon_reads_the_childs_records() -> None:
    read = Read()
    assert _record(b'{"about": {"try_number": 2, "state": "running"}}', read, raw=False) == ""
    assert read.about == {"try_number": 2, "state": "running"}
    line = {"timestamp": "2026-12-03T07:00:00Z", "level": "info", "event": "hi", "logger": "task"}
    text = json.dumps({"log": json.dumps(line) + "\n"}).encode()
    assert _record(text, read, raw=False) == "[2026-12-03T07:00:00Z] {task} INFO - hi\n"
    assert _record(text, read, raw=True) == json.dumps(line) + "\n"
    assert _record(b'{"log": "[t] {x.py:1} INFO - plain\\n"}', read, raw=False) == (
        "[t] {x.py:1} INFO - plain\n"
    )
    # What is not a record (a stray print that reached stdout) is no log text.
    assert _record(b"Loaded executor: LocalExecutor", read, raw=False) == ""
    assert _record(b"[1, 2]", read, raw=False) == ""


def test_a_reader_that_did_not_finish_says_why() -> None:
    read = Read()
    read.exit_code = 1
    read.stderr.extend(["Traceback ...\n", "ModuleNotFoundError: No module named 'x'\n"])
    failure = read.failure
    assert failure is not None and "exit code 1" in failure and "No module named 'x'" in failure
    read.about.update(done=True, found=False, missing="Airflow has no such task instance")
    assert read.failure is None and not read.found
    assert read.notes() == ["Airflow has no such task instance"]
    timed_out = Read(timed_out=True)
    assert "command_timeout" in str(timed_out.failure)


def test_where_the_log_came_from() -> None:
    about: dict[str, Any] = {"source": "log server", "sources": ["http://w:8793/log/a"]}
    assert Read(about).describe() == about
    assert Read().describe() == {"source": None, "sources": []}


def test_a_confined_caller_is_not_shown_the_readers_stderr() -> None:
    read = Read(withhold_stderr=True)
    read.exit_code = 1
    read.stderr.append("Failed to import: /dags/zeta_secret.py\n")
    failure = str(read.failure)
    assert "exit code 1" in failure and "zeta_secret" not in failure
    assert "not shown to a token confined" in failure
