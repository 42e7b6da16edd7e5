"""Has Airflow parsed a deployed DAG file yet? Asked of Airflow's metadata database, for
deploy_dag's ``wait=true``.

    <airflow's python> parsed_check.py SINCE SOURCE_SHA256 FILE_NAME -- DAG_ID...

Run by the Airflow installation's own interpreter in a child process, never imported by the
daemon. For each DAG: whether Airflow knows it, whether the source Airflow stored for it
(``DagCode``, written by whichever host parsed it) is the deployed file (SHA-256 of its text
as Airflow reads it, newlines made ``\\n``), when it was last parsed and, on Airflow 3, its
bundle version. Then the import errors recorded for a file of that name since SINCE (a POSIX
timestamp): Airflow 2 records the parsing host's full path, Airflow 3 the path in its bundle.

Stdout carries one JSON object; anything Airflow prints or logs goes to stderr. Reads only;
uses only the standard library and Airflow.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
from typing import Any


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    since = datetime.datetime.fromtimestamp(float(argv[0]), tz=datetime.timezone.utc)
    wanted_hash, file_name, dag_ids = argv[1], argv[2], argv[4:]
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what Airflow prints on the way is not the report
    from airflow.utils.session import create_session  # type: ignore[import-not-found]

    with create_session() as session:
        report = {
            "dags": {dag_id: _dag(session, dag_id, wanted_hash) for dag_id in dag_ids},
            "import_errors": _import_errors(session, file_name, since),
        }
    out.write(json.dumps(report, default=str) + "\n")
    out.flush()
    return 0


def _dag(session: Any, dag_id: str, wanted_hash: str) -> dict[str, Any]:
    from airflow.models.dag import DagModel  # type: ignore[import-not-found]

    model = session.query(DagModel).filter(DagModel.dag_id == dag_id).one_or_none()
    if model is None:
        return {"known": False}
    source = _stored_source(session, dag_id, model.fileloc)
    return {
        "known": True,
        "fileloc": model.fileloc,
        "last_parsed_time": _posix(model.last_parsed_time),
        "bundle_version": getattr(model, "bundle_version", None),
        # None: Airflow keeps no source ([core] store_dag_code off on Airflow 2).
        "source_matches": None if source is None else _hash(source) == wanted_hash,
    }


def _stored_source(session: Any, dag_id: str, fileloc: str) -> str | None:
    from airflow.models.dagcode import DagCode  # type: ignore[import-not-found]

    if hasattr(DagCode, "dag_id"):  # Airflow 3: one row per DAG version, the latest last
        query = session.query(DagCode.source_code).filter(DagCode.dag_id == dag_id)
        row = query.order_by(DagCode.created_at.desc()).first()
    else:  # Airflow 2: one row per file
        row = session.query(DagCode.source_code).filter(DagCode.fileloc == fileloc).first()
    return None if row is None else str(row[0])


def _import_errors(session: Any, file_name: str, since: datetime.datetime) -> list[dict[str, Any]]:
    from airflow.models import errors  # type: ignore[import-not-found]

    # ParseImportError since Airflow 2.10, ImportError before.
    Recorded = getattr(errors, "ParseImportError", None) or errors.ImportError

    rows = session.query(Recorded).filter(Recorded.timestamp >= since).all()
    return [
        {
            "filename": row.filename,
            "bundle_name": getattr(row, "bundle_name", None),
            "timestamp": _posix(row.timestamp),
            "stacktrace": row.stacktrace,
        }
        for row in rows
        if row.filename and os.path.basename(row.filename) == file_name
    ]


def _hash(source: str) -> str:
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _posix(moment: datetime.datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
