"""A token confined to some DAGs against the real Airflow (issue 29): a token for `acc_*`
triggers and pauses its DAG, is refused on another, and its list_dags (JSON and table) and
its jobs name no other DAG; stderr, where Airflow names other DAG files, is never shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge import cli
from bridge.catalogue.installed import AirflowInfo
from bridge.config.load import load
from bridge.config.settings import Settings
from bridge.http.app import create_app
from tests.helpers import (
    API,
    DAG_SOURCE,
    ClientFactory,
    new_marker,
    settings_for,
    upload,
    warm_mode,
    write_cfg,
)

pytestmark = [
    pytest.mark.airflow,
    # What is refused and what is shown does not depend on how a command starts.
    pytest.mark.skipif(not warm_mode(), reason="BRIDGE_TEST_WARM=0: the warm pass runs it"),
]
SEED = "the-seed-token"
HEADER = "rest_api_plugin_http_token"
JOBS = "/admin/rest_api/jobs"
DATE = "2024-01-02T03:04:05"
OTHER = "bridge_demo"  # a DAG of the suite's Airflow home, outside acc_*


def acc_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, Any]]:
    """An operate token named acc for the DAGs acc_*, and the settings that make the daemon
    know it (beside the seed's token)."""
    cfg = write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {tmp_path / 'tokens.json'}\n")
    capsys.readouterr()
    add = ["token", "add", "acc", "--scope", "operate", "--dags", "acc_*", "--config", str(cfg)]
    assert cli.main(add) == 0
    token = capsys.readouterr().out.strip()
    tokens = load(cfg, {})
    return token, {
        "tokens_file": tokens.tokens_file,
        "named_tokens": tokens.named_tokens,
        "rest_api_plugin_expected_http_token": SEED,
    }


async def test_a_token_for_acc_dags_calls_them_and_sees_no_other(
    make_client: ClientFactory,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dag_id = new_marker("acc")
    status, body = await upload(
        await make_client(), f"{dag_id}.py", DAG_SOURCE.format(dag_id=dag_id, task_id="one")
    )
    assert status == 200, body
    token, tokens = acc_token(tmp_path, capsys)
    client = await make_client(**tokens)

    async def called(token: str, **params: str) -> tuple[int, dict[str, Any]]:
        response = await client.get(API, params=params, headers={HEADER: token})
        return response.status, await response.json()

    try:
        status, body = await called(token, api="trigger_dag", dag_id=dag_id)
        assert status == 200 and body["dag_run"]["dag_id"] == dag_id, body
        status, body = await called(token, api="pause", dag_id=dag_id)
        assert status == 200 and body["is_paused"] is True, body
        status, body = await called(token, api="pause", dag_id=OTHER)
        assert status == 403, body
        assert f"DAG '{OTHER}' is not one of the DAGs the token 'acc' may call" in body["output"]
        # A reviewed report of the installed CLI: for its DAG only.
        status, body = await called(token, api="dags.list-runs", dag_id=dag_id, output="json")
        assert status == 200 and {row["dag_id"] for row in body["data"]} == {dag_id}, body
        status, body = await called(token, api="dags.list-runs", dag_id=OTHER)
        assert status == 403, body
        status, body = await called(token, api="dags.list", output="json")
        assert status == 200 and dag_id in {row["dag_id"] for row in body["data"]}, body
        assert OTHER not in json.dumps(body), body
        status, body = await called(token, api="dags.list-import-errors")
        assert status == 403 and "cannot be confined" in body["output"], body

        status, body = await called(token, api="list_dags", output="json")
        assert status == 200, body
        listed = [row["dag_id"] for row in body["data"]]
        assert dag_id in listed and all(d.startswith("acc_") for d in listed), listed
        assert OTHER not in json.dumps(body), body
        status, body = await called(token, api="list_dags")
        assert status == 200 and dag_id in body["output"]["stdout"], body
        assert OTHER not in json.dumps(body), body
        status, everything = await called(SEED, api="list_dags", output="json")
        assert OTHER in {row["dag_id"] for row in everything["data"]}, everything

        # Its jobs: its own, which name its DAG; not the seed's job on another DAG.
        for caller, dag in ((token, dag_id), (SEED, OTHER)):
            detached = {"api": "dag_state", "dag_id": dag, "execution_date": "2024-01-01"}
            status, body = await called(caller, **detached, detach="true")
            assert status == 202, body
        response = await client.get(JOBS, headers={HEADER: token})
        jobs = (await response.json())["jobs"]
        assert jobs and all(job["token"] == "acc" for job in jobs), jobs
        assert OTHER not in json.dumps(jobs), jobs
        response = await client.get(JOBS, headers={HEADER: SEED})
        assert OTHER in json.dumps(await response.json())
    finally:
        (settings.dags_folder / f"{dag_id}.py").unlink()


async def test_a_confined_token_never_sees_another_dag_files_import_error(
    aiohttp_client: Any,
    private_home: Path,
    airflow_info: AirflowInfo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A DAG file that does not import, beside the token's DAG: Airflow 2's `tasks test`
    logs it on stdout, with its traceback; the token's commands load its DAG's file only.
    In a home of its own: the broken file must not reach other tests' import errors."""
    token, tokens = acc_token(tmp_path, capsys)
    settings = settings_for(private_home, airflow_info.executable, warm_helper=False, **tokens)
    client = await aiohttp_client(create_app(settings, airflow_info))
    dag_id = new_marker("acc")
    secret = new_marker("zeta_secret")
    mine = settings.dags_folder / f"{dag_id}.py"
    broken = settings.dags_folder / f"{secret}.py"
    mine.write_text(DAG_SOURCE.format(dag_id=dag_id, task_id="one"))
    broken.write_text("import no_such_module_anywhere  # an airflow DAG's import error\n")
    try:
        params = {"api": "refresh_all"}
        response = await client.get(API, params=params, headers={HEADER: SEED})
        assert response.status == 200, await response.text()
        params = {"api": "test", "dag_id": dag_id, "task_id": "one", "execution_date": DATE}
        response = await client.get(API, params=params, headers={HEADER: SEED})
        seen = await response.json()
        assert response.status == 200, seen
        if airflow_info.major == 2:  # the fault is real: Airflow 2 names the file on stdout
            assert secret in seen["output"]["stdout"], seen
        response = await client.get(API, params=params, headers={HEADER: token})
        body = await response.json()
        assert response.status == 200, body
        assert secret not in json.dumps(body), json.dumps(body)
    finally:
        mine.unlink()
        broken.unlink()
