"""What follows refresh_all's ``dags reserialize``: the DAGs found in the dags folder and the
files that do not import, said as a line of the output and kept in the result (``dags``,
``import_errors``).

``dags list-import-errors`` cannot tell: it lists what the dag-processor recorded, and
``dags reserialize`` records no import errors on either major. So the folder is imported
again the way Airflow imports it, by Airflow's own interpreter in a child process
(bridge/airflow_side/dag_check.py, deploy_dag's import check), through the command path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bridge.calls.result import Prepared, Ran
from bridge.deploy.dags import DAG_CHECK
from bridge.errors import RequestError
from bridge.process.path import CommandSpec
from bridge.text.noise import parse_json_output


async def dag_report(prepared: Prepared, ran: Ran) -> AsyncIterator[str]:
    """Count the DAGs and list the import errors; a warning when that could not be done."""
    call = prepared.call
    folder = str(call.settings.dags_folder)
    python = call.airflow.python
    report, why_not = None, "Airflow's interpreter is not known"
    if python is not None:
        spec = CommandSpec(
            [python, str(DAG_CHECK), folder, folder], call.api.name, "dag report", call.peer
        )
        try:
            async with call.commands.slot(call.owner):
                found = await call.commands.capture(spec)
        except RequestError as refused:
            # Every slot busy, or the daemon stopping: the reserialize itself succeeded,
            # so the call stays what it was and says what it could not add.
            why_not = str(refused)
        else:
            report = parse_json_output(found.stdout) if found.exit_code == 0 else None
            why_not = (
                f"the import exited with code {found.exit_code}"
                if found.exit_code
                else "the import printed no report"
            )
    if not isinstance(report, dict):
        ran.warnings.append(
            "the DAGs were serialized again, but the dags folder could not be imported "
            f"afterwards ({why_not}): no count and no import errors"
        )
        return
    errors = report.get("import_errors") or {}
    ran.extra["dags"] = len(report.get("dag_ids") or [])
    ran.extra["import_errors"] = [
        {"filepath": str(path), "error": str(error)} for path, error in sorted(errors.items())
    ]
    if errors:
        ran.warnings.append(f"{len(errors)} DAG file(s) do not import: see import_errors")
    yield (
        f"[airflow-rest-bridge] {ran.extra['dags']} DAG(s) in the dags folder, "
        f"{len(errors)} import error(s)\n"
    )
