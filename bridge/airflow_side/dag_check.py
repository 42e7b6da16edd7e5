"""Import a DAG file (deploy_dag) or the whole dags folder (refresh_all) the way Airflow
does and print what it finds, as one JSON line.

    <airflow's python> dag_check.py FILE_OR_FOLDER DAGS_FOLDER

Run by the Airflow installation's own interpreter in a child process, never imported by the
daemon: the daemon must not execute user code. Output on stdout is exactly one line,
``{"dag_ids": [...], "import_errors": {file: traceback}}``; anything Airflow prints while
importing goes to stderr. Uses only the standard library and Airflow.
"""

import inspect
import json
import os
import sys


def main(path: str, dags_folder: str) -> int:
    report = sys.stdout
    sys.stdout = sys.stderr  # keep Airflow's and the DAG file's prints out of the report
    # DAG files import helpers that sit beside them in the dags folder, as Airflow allows.
    sys.path.insert(0, dags_folder)
    try:  # Airflow 3, then Airflow 2 (the daemon's own environment has no Airflow)
        from airflow.dag_processing.dagbag import DagBag  # type: ignore[import-not-found]
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[import-not-found]

    options: dict[str, object] = {"dag_folder": path}
    if os.path.isfile(path):
        # The file a caller deploys is checked whatever words it holds; a folder is read
        # as Airflow's dag-processor reads it: [core] dag_discovery_safe_mode (DagBag's
        # default) skips .py files that never say "airflow" and "dag", so helper modules
        # beside the DAGs are not executed.
        options["safe_mode"] = False
    if "include_examples" in inspect.signature(DagBag.__init__).parameters:
        options["include_examples"] = False
    bag = DagBag(**options)
    errors = {str(file): str(error) for file, error in bag.import_errors.items()}
    report.write(json.dumps({"dag_ids": sorted(bag.dag_ids), "import_errors": errors}) + "\n")
    report.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
