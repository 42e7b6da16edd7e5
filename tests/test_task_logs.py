"""Task logs on disk (bridge.task_logs): the configured filename template rendered as Airflow
renders it, the path kept inside the logs folder whatever the ids and the template make of it,
the latest try found, Airflow 3's JSON lines shown as text, and a growing file read in whole
lines. The integration suite follows a real task's log with the scheduler running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.catalogue.installed_cli import TaskLogSettings
from bridge.errors import RequestError
from bridge.task_logs.files import (
    LogReader,
    TaskTry,
    latest_try,
    log_path,
    readable,
    relative_name,
)
from tests.helpers import ClientFactory, call

# Airflow 2.11's and 3.3's default log_filename_template.
TEMPLATE_2 = (
    "dag_id={{ ti.dag_id }}/run_id={{ ti.run_id }}/task_id={{ ti.task_id }}/"
    "{% if ti.map_index >= 0 %}map_index={{ ti.map_index }}/{% endif %}attempt={{ try_number }}.log"
)
TEMPLATE_3 = TEMPLATE_2.replace("{{ try_number }}", "{{ try_number|default(ti.try_number) }}")
TASK = TaskTry("etl", "load", "manual__2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05+00:00")


def settings(folder: Path, template: str = TEMPLATE_3, remote: bool = False) -> TaskLogSettings:
    return TaskLogSettings(str(folder), template, remote, "s3://logs" if remote else "")


@pytest.mark.parametrize("template", [TEMPLATE_2, TEMPLATE_3])
def test_default_templates_name_the_try_and_the_mapped_index(template: str) -> None:
    assert relative_name(template, TASK, 2) == (
        f"dag_id=etl/run_id={TASK.run_id}/task_id=load/attempt=2.log"
    )
    mapped = TaskTry(TASK.dag_id, TASK.task_id, TASK.run_id, TASK.logical_date, map_index=3)
    assert relative_name(template, mapped, 1).endswith("task_id=load/map_index=3/attempt=1.log")


def test_a_format_style_template_gets_the_logical_date() -> None:
    template = "{dag_id}/{task_id}/{execution_date}/{try_number}.log"
    assert relative_name(template, TASK, 1) == f"etl/load/{TASK.logical_date}/1.log"


def test_a_path_outside_the_logs_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    upward = TaskTry("..", "..", "run", "")
    with pytest.raises(RequestError, match="outside the logs folder"):
        log_path(settings(folder, "{{ ti.dag_id }}/{{ ti.task_id }}/x.log"), upward, 1)
    # A link inside the folder that leads out of it is followed, and refused.
    (tmp_path / "elsewhere").mkdir()
    (folder / "etl").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RequestError, match="outside the logs folder"):
        log_path(settings(folder, "{{ ti.dag_id }}/{{ try_number }}.log"), TASK, 1)


def test_a_template_that_does_not_render_is_a_server_error(tmp_path: Path) -> None:
    with pytest.raises(RequestError) as raised:
        log_path(settings(tmp_path, "{{ ti.dag_id.nothing() }}.log"), TASK, 1)
    assert raised.value.status == 500 and "log_filename_template" in str(raised.value)


def test_the_latest_try_is_the_highest_there(tmp_path: Path) -> None:
    logs = settings(tmp_path)
    assert latest_try(logs, TASK) is None
    for number in (1, 2):
        path = log_path(logs, TASK, number)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"try {number}\n")
    assert latest_try(logs, TASK) == (2, log_path(logs, TASK, 2))
    # A template without the try number: one file for every try.
    single = settings(tmp_path, "dag_id={{ ti.dag_id }}/one.log")
    (tmp_path / "dag_id=etl" / "one.log").write_text("all tries\n")
    assert latest_try(single, TASK) == (1, tmp_path / "dag_id=etl" / "one.log")


def test_json_lines_read_as_text_and_other_lines_pass() -> None:
    line = json.dumps(
        {
            "timestamp": "2026-01-02T03:04:05.123Z",
            "level": "info",
            "event": "tick 1",
            "chan": "stdout",
            "logger": "task",
        }
    )
    assert readable(line) == "[2026-01-02T03:04:05.123Z] {task} INFO - tick 1 chan=stdout"
    assert readable("[2026-01-02] {taskinstance.py:1} INFO - plain") == (
        "[2026-01-02] {taskinstance.py:1} INFO - plain"
    )
    assert readable('{"no": "event"}') == '{"no": "event"}'


def test_a_growing_file_is_read_in_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "attempt=1.log"
    path.write_bytes(b'{"event": "one", "level": "info"}\n{"event": "tw')
    reader = LogReader(path)
    assert reader.read() == "INFO - one\n"
    with path.open("ab") as file:
        file.write(b'o", "level": "warning"}\npartial')
    assert reader.read() == "WARNING - two\n"
    assert reader.read(final=True) == "partial"
    assert reader.read(final=True) == ""
    raw = LogReader(path, raw=True)
    assert raw.read(final=True) == path.read_text()
    assert LogReader(tmp_path / "not-yet.log").read() == ""


async def test_without_known_log_settings_the_api_says_why(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client()
    status, body = await call(
        client, api="task_log", dag_id="etl", task_id="load", execution_date="run"
    )
    assert status == 400 and "where this Airflow writes task logs is not known" in body["output"]
