"""Removing Airflow's loading noise without touching real output (captured Airflow 2 and 3)."""

from __future__ import annotations

import pytest

from bridge.text.noise import StreamText, filter_text

SITE = "/venv/lib/python3.11/site-packages/airflow"
TIMER = (
    "RemovedInAirflow3Warning: Timer and timing metrics publish in seconds were deprecated. "
    "It is enabled by default from Airflow 3 onwards. Enable timer_unit_consistency to "
    "publish all the timer and timing metrics in milliseconds."
)

# Captured from Airflow 2.11 CLI runs (dags reserialize, dags list, dags trigger, tasks test).
AF2_NOISE = [
    f"{SITE}/metrics/base_stats_logger.py:22 {TIMER}",
    f"{SITE}/triggers/base.py:27 {TIMER}",
    f"{SITE}/cli/commands/dag_command.py:48 UserWarning: Could not import graphviz. "
    "Rendering graph to the graphical format will not be possible.",
    "[2026-11-24T18:50:07.532+0000] {plugins.py:37} INFO - setup plugin "
    "alembic.autogenerate.schemas",
    "[2026-11-24T18:50:07.533+0000] {plugins.py:37} INFO - setup plugin "
    "alembic.ext.checkconstraint_byname",
    "[2026-11-24T18:50:07.814+0000] {dagbag.py:588} INFO - Filling up the DagBag from "
    "/tmp/inst/t_af2/dags",
    "[2026-11-24T18:50:24.983+0000] {__init__.py:43} INFO - Loaded API auth backend: "
    "airflow.api.auth.backend.session",
]
AF2_TABLE = [
    "dag_id      | fileloc                             | owners  | is_paused",
    "============+=====================================+=========+==========",
    "bridge_demo | /tmp/inst/t_af2/dags/bridge_demo.py | airflow | True     ",
    "                                                                       ",
]
AF2_JSON = (
    '[{"dag_id": "bridge_demo", "fileloc": "/tmp/inst/t_af2/dags/bridge_demo.py", '
    '"owners": ["airflow"], "is_paused": "True"}]'
)
AF2_TASK_LOG = [
    "[2026-11-24T18:50:30.030+0000] {taskinstance.py:2885} INFO - Starting attempt 0 of 1",
    "[2026-11-24T18:50:30.030+0000] {taskinstance.py:2966} WARNING - cannot record "
    "queued_duration for task slow_lines because previous state change time has not been saved",
    "[2026-11-24T18:50:30.062+0000] {taskinstance.py:740} INFO - ::endgroup::",
    "first line",
    "second line",
    "[2026-11-24T18:50:32.064+0000] {python.py:240} INFO - Done. Returned value was: None",
    "[2026-11-24T18:50:32.065+0000] {taskinstance.py:361} INFO - Marking task as SUCCESS. "
    "dag_id=bridge_demo, task_id=slow_lines, execution_date=20240102T030405",
]

# Captured from Airflow 3.3 CLI runs (structlog console format).
AF3_GRAPHVIZ = [
    "2026-11-24T18:50:09.008092Z [warning  ] Could not import graphviz. Rendering graph to the "
    "graphical format will not be possible. ",
    "You might need to install the graphviz package and necessary system packages.",
    "Run `pip install graphviz` to attempt to install it. [py.warnings] category=UserWarning "
    f"filename={SITE}/cli/commands/dag_command.py lineno=57",
]
AF3_NOISE = [
    *AF3_GRAPHVIZ,
    # Airflow 3.0.6, at every CLI start without the FAB provider (in Airflow 2's log format).
    "[2026-11-29T22:52:09.117+0000] {providers_manager.py:953} INFO - The hook_class "
    "'airflow.providers.standard.hooks.filesystem.FSHook' is not fully initialized (UI widgets "
    "will be missing), because the 'flask_appbuilder' package is not installed, however it is "
    "not required for Airflow components to work",
    "2026-11-24T18:50:09.470228Z [info     ] DAG bundles loaded: dags-folder "
    "[airflow.dag_processing.bundles.manager.DagBundlesManager] loc=manager.py:304",
    "2026-11-24T18:50:09.780531Z [info     ] Filling up the DagBag from /tmp/inst/t_af3/dags "
    "[airflow.dag_processing.dagbag.BundleDagBag] loc=dagbag.py:460",
    "2026-11-24T18:50:34.971885Z [warning  ] Using `httpx` with `starlette.testclient` is "
    "deprecated; install `httpx2` instead. [py.warnings] category=StarletteDeprecationWarning "
    f"filename={SITE}/fastapi/testclient.py lineno=1",
]
AF3_TABLE = [
    "dag_id      | fileloc                             | owners  | is_paused | bundle_name",
    "============+=====================================+=========+===========+============",
    "bridge_demo | /tmp/inst/t_af3/dags/bridge_demo.py | airflow | True      | dags-folder",
]
AF3_JSON = (
    '[{"conf": {"a": "1"}, "dag_id": "bridge_demo", "dag_run_id": "myrun1", '
    '"logical_date": null, "run_type": "manual", "state": "queued"}]'
)
AF3_TASK_LOG = [
    "2026-11-24T18:50:40.120531Z [info     ] Task started                   "
    "[airflow.api_fastapi.execution_api.routes.task_instances] hostname=vm "
    "loc=task_instances.py:226 previous_state=queued",
    "2026-11-24T18:50:40.168219Z [info     ] ::endgroup::                   [task] "
    "loc=task_runner.py:2232",
    "first line",
    "second line",
    "2026-11-24T18:50:42.170103Z [info     ] Done. Returned value was: None "
    "[airflow.task.operators.airflow.providers.standard.decorators.python."
    "_PythonDecoratedOperator] loc=python.py:233",
    "2026-11-24T18:50:42.207318Z [info     ] [DAG TEST] end task task_id=slow_lines "
    "map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563",
]
# A real (not Python-warnings) structlog warning must survive.
AF3_REAL_WARNING = (
    "2026-11-24T18:50:41.000000Z [warning  ] Task is running late [task] loc=task_runner.py:9"
)


def text(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


def kept_lines(*lines: str) -> list[str]:
    return filter_text(text(*lines)).splitlines()


@pytest.mark.parametrize(
    ("noise", "real"),
    [
        (AF2_NOISE, AF2_TABLE),
        (AF2_NOISE, [AF2_JSON]),
        (AF2_NOISE, AF2_TASK_LOG),
        (AF3_NOISE, AF3_TABLE),
        (AF3_NOISE, [AF3_JSON]),
        (AF3_NOISE, AF3_TASK_LOG),
    ],
    ids=["af2-table", "af2-json", "af2-task", "af3-table", "af3-json", "af3-task"],
)
def test_noise_removed_real_output_kept(noise: list[str], real: list[str]) -> None:
    assert kept_lines(*noise, *real) == real


@pytest.mark.parametrize("line", [*AF2_NOISE, *AF3_NOISE[3:]])
def test_each_noise_line_alone_is_removed(line: str) -> None:
    assert filter_text(text(line)) == ""


def test_graphviz_warning_block_is_removed_as_a_whole() -> None:
    assert filter_text(text(*AF3_GRAPHVIZ)) == ""
    assert kept_lines(*AF3_GRAPHVIZ, "first line") == ["first line"]


def test_json_lines_starting_with_bracket_are_kept() -> None:
    # The seed dropped everything up to the last line starting with '['.
    lines = ["first line", AF2_JSON, "[1, 2, 3]", '["a"]']
    assert kept_lines(*AF2_NOISE, *lines) == lines


def test_real_structlog_warning_is_kept_in_order() -> None:
    lines = ["first line", AF3_REAL_WARNING, "second line", AF3_TASK_LOG[-1]]
    assert kept_lines(*lines) == lines
    assert kept_lines(*AF3_GRAPHVIZ, AF3_REAL_WARNING) == [AF3_REAL_WARNING]


def test_python_default_warning_format_and_its_source_line() -> None:
    lines = [
        "/x/mod.py:12: DeprecationWarning: old",
        "  warnings.warn('old', DeprecationWarning)",
        "  indented real output",
    ]
    assert kept_lines(*lines) == ["  indented real output"]


def test_text_without_trailing_newline_is_kept() -> None:
    assert filter_text(text(*AF2_NOISE) + "last") == "last"


# --- StreamText -----------------------------------------------------------------------------

SAMPLE = text(*AF3_NOISE, "caf\u00e9 \u2713", *AF3_TASK_LOG, AF3_REAL_WARNING, AF3_JSON)
SAMPLE += text(*AF2_NOISE, *AF2_TASK_LOG) + "tail without newline \u00e9"


def stream(data: bytes, sizes: list[int], filtering: bool = True) -> tuple[str, list[str]]:
    """Feed ``data`` in chunks of the given sizes (cycled); return the text and each output."""
    decoder = StreamText(filtering)
    outputs: list[str] = []
    start = index = 0
    while start < len(data):
        size = sizes[index % len(sizes)]
        outputs.append(decoder.feed(data[start : start + size]))
        start, index = start + size, index + 1
    outputs.append(decoder.finish())
    return "".join(outputs), outputs


@pytest.mark.parametrize("sizes", [[1], [2], [3], [7, 1], [64], [1000000]])
def test_stream_matches_filter_text(sizes: list[int]) -> None:
    assert stream(SAMPLE.encode(), sizes)[0] == filter_text(SAMPLE)


def test_utf8_character_split_across_feeds() -> None:
    data = "caf\u00e9\n".encode()
    cut = data.index(b"\xa9")  # between the two bytes of '\u00e9'
    decoder = StreamText(filtering=True)
    assert decoder.feed(data[:cut]) == ""
    assert decoder.feed(data[cut:]) == "caf\u00e9\n"
    assert decoder.finish() == ""


def test_line_split_mid_line_waits_for_its_newline() -> None:
    decoder = StreamText(filtering=True)
    assert decoder.feed(b"first ") == ""
    assert decoder.feed(b"line\nsec") == "first line\n"
    assert decoder.finish() == "sec"


def test_noise_split_across_feeds_is_still_removed() -> None:
    line = text(AF2_NOISE[3]).encode()
    decoder = StreamText(filtering=True)
    assert decoder.feed(line[:20]) + decoder.feed(line[20:] + b"real\n") == "real\n"


def test_filtering_off_passes_text_through_immediately() -> None:
    decoder = StreamText(filtering=False)
    assert decoder.feed(b"partial") == "partial"
    noise = text(AF2_NOISE[3]).encode()
    assert decoder.feed(noise) == noise.decode()
    assert decoder.feed(b"\xc3") == ""
    assert decoder.feed(b"\xa9") == "\u00e9"
    assert decoder.finish() == ""
    assert stream(SAMPLE.encode(), [3], filtering=False)[0] == SAMPLE


def test_invalid_utf8_is_replaced_not_raised() -> None:
    decoder = StreamText(filtering=True)
    assert decoder.feed(b"bad \xff byte\n") == "bad \ufffd byte\n"


def test_long_partial_line_keeps_order_behind_held_warning() -> None:
    decoder = StreamText(filtering=True, max_partial=10)
    data = text(AF3_REAL_WARNING).encode() + b"x" * 20
    out = decoder.feed(data) + decoder.feed(b"y\n") + decoder.finish()
    assert out == text(AF3_REAL_WARNING) + "x" * 20 + "y\n"


def test_crlf_split_across_feeds() -> None:
    data = (AF2_NOISE[3] + "\r\nreal\r\n").encode()
    cut = data.index(b"\n")
    assert stream(data, [cut, 1000])[0] == filter_text(data.decode()) == "real\r\n"
