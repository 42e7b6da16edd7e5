"""``deploy_dag&wait=true``: once the file is deployed, wait until Airflow has parsed that
version, wherever Airflow parses it (this host's reserialize, or another host's
dag-processor or scheduler after its git sync).

Airflow keeps the source of each DAG it parsed (``DagCode``); the wait asks Airflow's
metadata database every ``POLL_SECONDS``, through a child in Airflow's interpreter
(bridge/airflow_side/parsed_check.py) started through the command path, whether that source
is the deployed file for every DAG the file defines, and which import errors were recorded
for a file of its name since it was deployed. Parsed: 200, with when and (Airflow 3) the
bundle version. An import error: 500 with Airflow's traceback; the file stays deployed.
``wait_timeout`` (at most ``command_timeout``) ends the wait with 504, never the deploy; so
do the daemon stopping and the call's token revoked (bridge.calls.stopping). The wait holds
a follow's place (taken before the deploy) and a slot only while each look runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.calls.call import Call
from bridge.calls.stopping import Stopped, pause, unless_stopped, wait_seconds
from bridge.deploy.dags import Deployed
from bridge.errors import RequestError
from bridge.process.path import CommandSpec
from bridge.text.noise import parse_json_output

PARSED_CHECK = Path(__file__).resolve().parent.parent / "airflow_side" / "parsed_check.py"
POLL_SECONDS = 2.0  # Airflow's own pace: a parse is seen at most this late
STACKTRACE_KEPT = 4000  # characters of each import error's traceback in the answer


async def wait_parsed(call: Call, deployed: Deployed, file_name: str) -> int:
    """Wait for Airflow to parse ``deployed``; what it found goes to ``deployed.target``
    (``parsed``) and its warnings. The HTTP code: 200 parsed, 500 an import error, 504 not
    parsed within wait_timeout, or the code of what stopped the wait."""
    timeout = wait_seconds(call)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    report: dict[str, Any] = {}
    failure = ""  # why the last look could not say, if it could not
    try:
        while True:
            looked = await unless_stopped(call, _look(call, deployed, file_name))
            if "failure" in looked:
                failure = looked["failure"]
            else:
                report, failure = looked, ""
            if errors := report.get("import_errors"):
                _record(deployed, report)
                deployed.warnings.append(
                    f"Airflow could not import {file_name} "
                    f"({', '.join(sorted({str(e['filename']) for e in errors}))}); "
                    "the file stays deployed: deploy a fixed version, or delete_dag"
                )
                return 500
            waiting = _not_parsed(deployed.dag_ids, report)
            if not waiting:
                _record(deployed, report)
                return 200
            left = give_up - loop.time()
            if left <= 0:
                _record(deployed, report)
                deployed.warnings.append(
                    f"Airflow had not parsed the deployed version of {', '.join(waiting)} "
                    f"after wait_timeout ({timeout:g} s); the deploy stands, and Airflow parses "
                    "it when its hosts have synced"
                    + (f" (the last look failed: {failure})" if failure else "")
                )
                return 504
            await pause(call, min(POLL_SECONDS, left))
    except Stopped as stop:
        _record(deployed, report)
        deployed.warnings.append(f"{stop.why}: the wait for Airflow to parse it ended")
        return stop.http_code


def _not_parsed(dag_ids: list[str], report: dict[str, Any]) -> list[str]:
    """The DAGs whose deployed version Airflow has not parsed yet. Where Airflow keeps no
    source ([core] store_dag_code off), a parse after the deploy counts."""
    dags = report.get("dags") or {}
    since = report.get("since")
    waiting = []
    for dag_id in dag_ids:
        found = dags.get(dag_id) or {}
        matches = found.get("source_matches")
        parsed_at = found.get("last_parsed_time")
        if matches is None and since is not None and parsed_at is not None:
            matches = parsed_at >= since
        if not (found.get("known") and matches):
            waiting.append(dag_id)
    return waiting


def _record(deployed: Deployed, report: dict[str, Any]) -> None:
    dags = report.get("dags") or {}
    deployed.target["parsed"] = {
        "dags": {
            dag_id: {
                "parsed": dag_id not in _not_parsed([dag_id], report),
                "last_parsed_time": found.get("last_parsed_time"),
                "bundle_version": found.get("bundle_version"),
            }
            for dag_id, found in dags.items()
        },
        "import_errors": [
            {**error, "stacktrace": str(error.get("stacktrace") or "")[-STACKTRACE_KEPT:]}
            for error in report.get("import_errors") or []
        ],
    }


async def _look(call: Call, deployed: Deployed, file_name: str) -> dict[str, Any]:
    """What Airflow's database says now, or ``{"failure": why}`` when it could not be asked
    this time (every slot busy, the child failed): asked again at the next poll."""
    python = call.airflow.python
    if python is None:
        raise RequestError(
            "wait=true needs Airflow's interpreter (airflow_python): the file was deployed, "
            "but whether Airflow parsed it cannot be asked",
            status=500,
        )
    argv = [
        python,
        str(PARSED_CHECK),
        f"{deployed.placed_at:.6f}",
        deployed.source_hash,
        file_name,
        "--",
        *deployed.dag_ids,
    ]
    spec = CommandSpec(argv, call.api.name, "is it parsed", call.peer, warm=False)
    try:
        async with call.commands.slot(call.owner):
            found = await call.commands.capture(spec)
    except RequestError as busy:  # 429 or 503 from the slots
        return {"failure": str(busy)}
    report = parse_json_output(found.stdout) if found.exit_code == 0 else None
    if not isinstance(report, dict):
        return {"failure": f"exit code {found.exit_code}: {found.stderr.strip()[-500:]}"}
    return {**report, "since": deployed.placed_at}
