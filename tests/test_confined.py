"""Tokens confined to some DAGs (shared/API.md, "DAG-confined tokens"), through the real app
and the fake airflow: the token file and `token add --dags`; a call naming another DAG, a call
no DAG confines and an argument naming a server file are 403s; a list shows the token's DAGs
only, as JSON and as a table; stderr, where Airflow names other DAGs, is never shown. The
integration suite has the same against real Airflow (tests/test_integration_confined.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge import cli
from bridge.calls.confined import table
from bridge.catalogue.cli_classes import dag_report
from bridge.catalogue.cli_commands import minor_of
from bridge.catalogue.installed import AirflowInfo
from bridge.catalogue.model import Confinement
from bridge.config.load import load
from bridge.config.tokens import TokensError, dag_matches, parse_dag_patterns, read_tokens
from tests.helpers import API, ClientFactory, fault, installed_cli, new_marker, write_cfg
from tests.helpers import cli_argument as argument
from tests.test_bodies import answer_of, started_upload
from tests.test_cli_commands import CLI
from tests.test_token_identity import JOBS, detach, reload_tokens, until_ended

SEED = "the-seed-token"
DATE = "2024-01-02T03:04:05"
HEADER = "rest_api_plugin_http_token"


@pytest.fixture
def tokens_cfg(tmp_path: Path) -> Path:
    return write_cfg(tmp_path / "airflow.cfg", f"tokens_file = {tmp_path / 'tokens.json'}\n")


def add(cfg: Path, capsys: pytest.CaptureFixture[str], name: str, *options: str) -> str:
    assert cli.main(["token", "add", name, *options, "--config", str(cfg)]) == 0
    return capsys.readouterr().out.strip()


async def confined_client(
    make_fake_client: ClientFactory, cfg: Path, **overrides: Any
) -> TestClient[Any, Any]:
    settings = load(cfg, {})
    airflow = overrides.pop("airflow", None)
    return await make_fake_client(
        *([airflow] if airflow is not None else []),
        tokens_file=settings.tokens_file,
        named_tokens=settings.named_tokens,
        rest_api_plugin_expected_http_token=SEED,
        **overrides,
    )


def test_patterns_are_dag_ids_with_wildcards() -> None:
    assert parse_dag_patterns(" etl_*, report_daily ,etl_*") == ("etl_*", "report_daily")
    for bad in ("", " , ", "etl_[ab]", "a b", "x/y"):
        with pytest.raises(TokensError, match="comma-separated list of DAG ids"):
            parse_dag_patterns(bad)
    patterns = ("etl_*", "report_daily")
    assert dag_matches(patterns, "etl_load") and dag_matches(patterns, "report_daily")
    assert not dag_matches(patterns, "ETL_load") and not dag_matches(patterns, "report_daily2")
    assert dag_matches((), "anything")  # not confined


def test_token_add_dags_is_kept_listed_and_never_admin(
    tokens_cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add(tokens_cfg, capsys, "acc", "--scope", "operate", "--dags", "acc_*,report_daily")
    add(tokens_cfg, capsys, "everything", "--scope", "read")
    path = load(tokens_cfg, {}).tokens_file
    assert path is not None
    table_ = read_tokens(path)
    assert table_.named("acc").dags == ("acc_*", "report_daily")  # type: ignore[union-attr]
    assert table_.named("everything").dags == ()  # type: ignore[union-attr]
    entries = json.loads(path.read_text())["tokens"]
    assert entries[0]["dags"] == ["acc_*", "report_daily"] and "dags" not in entries[1]
    assert cli.main(["token", "list", "--config", str(tokens_cfg)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].endswith("\tacc_*,report_daily") and listed[1].endswith("\t*")
    admin = ["token", "add", "boss", "--scope", "admin", "--dags", "acc_*"]
    assert cli.main([*admin, "--config", str(tokens_cfg)]) == 2
    assert "not admin" in capsys.readouterr().err
    bad = ["token", "add", "odd", "--scope", "read", "--dags", "acc_[12]"]
    assert cli.main([*bad, "--config", str(tokens_cfg)]) == 2


def test_a_file_with_an_admin_confined_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    entry = {"name": "x", "scopes": ["admin"], "sha256": "0" * 64, "created": "", "dags": ["a"]}
    path.write_text(json.dumps({"tokens": [entry]}))
    path.chmod(0o600)
    with pytest.raises(TokensError, match="not admin"):
        read_tokens(path)


async def test_a_confined_token_calls_its_dags_only(
    make_fake_client: ClientFactory, tokens_cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = new_marker("acc")
    token = add(tokens_cfg, capsys, "acc", "--scope", "operate", "--dags", "acc_*")
    client = await confined_client(make_fake_client, tokens_cfg)
    headers = {HEADER: token}

    async def status_of(params: dict[str, str], **kwargs: Any) -> tuple[int, dict[str, Any]]:
        response = await client.get(API, params=params, headers=headers, **kwargs)
        return response.status, await response.json()

    status, body = await status_of(fault(marker, "ok"))  # api=test of acc_..., its DAG
    assert status == 200, body
    other = new_marker("other")
    status, body = await status_of(fault(other, "ok"))
    assert status == 403, body
    assert f"DAG '{other}' is not one of the DAGs the token 'acc' may call" in body["output"]
    refused: list[dict[str, str]] = [
        {"api": "variables", "cmd": "list"},
        {"api": "pool", "cmd": "list"},
        {"api": "refresh_all"},  # and its scope: operate is not enough either way
        {"api": "pause", "dag_id": marker, "subdir": "elsewhere"},  # another folder's DAGs
        {"api": "list_dags", "report": "true"},
    ]
    for params in refused:
        status, body = await status_of(params)
        assert status == 403, (params, body)
    status, body = await status_of({"api": "variables", "cmd": "list"})
    assert "cannot be confined to a DAG" in body["output"], body
    status, body = await status_of({"api": "version"})
    assert status == 200, body


async def test_only_reviewed_commands_of_the_installed_cli_are_confinable(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    tokens_cfg: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A list of import errors names other DAGs' files: refused. The reviewed `dags
    list-runs` names one DAG: the token's own only; on a minor nobody reviewed, refused."""
    token = add(tokens_cfg, capsys, "acc", "--scope", "operate", "--dags", "acc_*")
    airflow = replace(fake_airflow_info, version="2.11.2", major=2, cli=CLI)
    client = await confined_client(make_fake_client, tokens_cfg, airflow=airflow)

    async def status_of(headers: dict[str, str], **params: str) -> tuple[int, str]:
        response = await client.get(API, params=params, headers=headers)
        return response.status, await response.text()

    status, text = await status_of({HEADER: token}, api="dags.list-import-errors")
    assert status == 403 and "cannot be confined" in text, text
    status, text = await status_of({HEADER: SEED}, api="dags.list-import-errors")
    assert status != 403, text
    status, text = await status_of({HEADER: token}, api="dags.list-runs", dag_id="zeta_x")
    assert status == 403 and "DAG 'zeta_x' is not one of" in text, text
    status, text = await status_of({HEADER: token}, api="dags.list-runs", dag_id="acc_x")
    assert status not in (403, 404), text
    assert "--dag-id=acc_x" in json.loads(text)["airflow_cmd"], text

    unreviewed = replace(airflow, version="2.10.5", cli=replace(CLI, version="2.10.5"))
    client = await confined_client(make_fake_client, tokens_cfg, airflow=unreviewed)
    status, text = await status_of({HEADER: token}, api="dags.list-runs", dag_id="acc_x")
    assert status == 403 and "cannot be confined" in text, text


async def test_on_airflow_2_a_confined_call_loads_its_dags_file_only(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    tokens_cfg: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Airflow 2 logs on stdout the files of the dags folder that do not import: a confined
    token's command gets --subdir set to its DAG's own file, found with `dags list`."""
    monkeypatch.setenv("FAKE_AIRFLOW_DAGS", "zeta_secret,acc_x")
    token = add(tokens_cfg, capsys, "acc", "--scope", "operate", "--dags", "acc_*")
    airflow = replace(fake_airflow_info, version="2.11.2", major=2)
    client = await confined_client(make_fake_client, tokens_cfg, airflow=airflow)
    params = {"api": "test", "dag_id": "acc_x", "task_id": "dagbag", "execution_date": DATE}
    response = await client.get(API, params=params, headers={HEADER: token})
    body = await response.json()
    assert response.status == 200, body
    assert "--subdir=/dags/acc_x.py" in body["airflow_cmd"], body
    assert "zeta_secret" not in json.dumps(body), body
    # An unconfined token: the folder, as asked (the fault shows what was kept out).
    response = await client.get(API, params=params, headers={HEADER: SEED})
    assert "zeta_secret" in (await response.json())["output"]["stdout"]
    # A DAG Airflow does not list: nothing runs.
    missing = {**params, "dag_id": "acc_gone"}
    response = await client.get(API, params=missing, headers={HEADER: token})
    body = await response.json()
    assert response.status == 404 and "acc_gone" in body["output"], body
    assert "airflow_cmd" not in body


async def test_an_unconfinable_api_is_refused_before_the_body_is_read(
    make_fake_client: ClientFactory, tokens_cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body that never ends: the 403 comes from the query alone."""
    token = add(tokens_cfg, capsys, "acc", "--scope", "operate", "--dags", "acc_*")
    client = await confined_client(make_fake_client, tokens_cfg)
    reader, writer = await started_upload(client, token, 10 * 1024 * 1024, "?api=variables")
    try:
        status, body = await answer_of(reader)
    finally:
        writer.close()
    assert status == 403 and "cannot be confined to a DAG" in body["output"], body


async def test_stderr_is_never_shown_to_a_confined_token(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    tokens_cfg: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The crash fault says "something went wrong" on stderr: the seed's token sees it; a
    confined one, buffered or streamed, gets the exit code and a warning instead. On Airflow
    3, where `tasks test` logs every other file that does not import on stdout, it is shown
    neither stream."""
    marker = new_marker("acc")
    monkeypatch.setenv("FAKE_AIRFLOW_DAGS", marker)  # for the --subdir of Airflow 2
    token = add(tokens_cfg, capsys, "acc", "--scope", "operate", "--dags", "acc_*")
    airflow = replace(fake_airflow_info, version="2.11.2", major=2)
    client = await confined_client(make_fake_client, tokens_cfg, airflow=airflow)
    crash = fault(marker, "crash")
    seen = await (await client.get(API, params=crash, headers={HEADER: SEED})).json()
    assert "something went wrong" in seen["output"]["stderr"], seen
    response = await client.get(API, params=crash, headers={HEADER: token})
    body = await response.json()
    assert response.status == 500 and body["exit_code"] == 3, body
    assert body["output"]["stdout"].startswith("started ") and "stderr" not in body["output"]
    assert "stderr (21 characters) is not shown to a token confined" in body["warning"], body
    streamed = await client.get(API, params={**crash, "stream": "ndjson"}, headers={HEADER: token})
    events = [json.loads(line) for line in (await streamed.read()).splitlines()]
    assert not [e for e in events if e.get("stream") == "stderr"], events
    assert "something went wrong" not in json.dumps(events)
    assert "is not shown to a token confined" in events[-1]["warning"], events[-1]

    client = await confined_client(make_fake_client, tokens_cfg)  # Airflow 3
    response = await client.get(API, params=crash, headers={HEADER: token})
    body = await response.json()
    assert response.status == 500 and body["exit_code"] == 3, body
    assert not any(body["output"].values()), body
    said = "stderr (21 characters) and stdout (31 characters) are not shown to a token"
    assert said in body["warning"], body
    streamed = await client.get(API, params={**crash, "stream": "ndjson"}, headers={HEADER: token})
    events = [json.loads(line) for line in (await streamed.read()).splitlines()]
    assert not [e for e in events if e.get("event") == "output"], events


async def test_a_confined_list_names_its_dags_only_as_json_and_as_a_table(
    make_fake_client: ClientFactory,
    tokens_cfg: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AIRFLOW_DAGS", "acc_one,zeta_secret,acc_two,report_daily")
    token = add(tokens_cfg, capsys, "acc", "--scope", "read", "--dags", "acc_*,report_daily")
    client = await confined_client(make_fake_client, tokens_cfg)
    headers = {HEADER: token}
    response = await client.get(API, params={"api": "list_dags", "output": "json"}, headers=headers)
    body = await response.json()
    assert response.status == 200, body
    assert [row["dag_id"] for row in body["data"]] == ["acc_one", "acc_two", "report_daily"]
    assert "zeta_secret" not in json.dumps(body), body  # not in the output, nor stderr's
    response = await client.get(API, params={"api": "list_dags"}, headers=headers)
    body = await response.json()
    assert response.status == 200, body
    lines = body["output"]["stdout"].splitlines()
    assert [cell.strip() for cell in lines[0].split(" | ")] == ["dag_id", "fileloc"]
    assert [line.split(" | ")[0].strip() for line in lines[1:]] == [
        "acc_one",
        "acc_two",
        "report_daily",
    ]
    assert "zeta_secret" not in json.dumps(body), body
    for extra in ({"stream": "true"}, {"detach": "true"}):
        response = await client.get(API, params={"api": "list_dags", **extra}, headers=headers)
        assert response.status == 400, await response.text()
        assert "answered whole" in (await response.json())["output"]
    unconfined = await client.get(API, params={"api": "list_dags"}, headers={HEADER: SEED})
    assert "zeta_secret" in (await unconfined.json())["output"]["stdout"]


def test_a_table_is_as_wide_as_its_widest_value() -> None:
    rows = [{"dag_id": "a", "paused": True}, {"dag_id": "longer_one", "paused": False}]
    assert table(rows) == "dag_id     | paused\na          | True\nlonger_one | False\n"
    assert table([]) == "No data found\n"


# --- found by a review: each let a confined token reach beyond its DAGs ---------------------


async def test_run_with_a_pickle_is_refused_to_a_confined_token(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    tokens_cfg: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Airflow 2's `tasks run --pickle N` runs the task of the DAG pickle N holds, whatever
    dag_id says; --ship-dag makes such pickles."""
    token = add(tokens_cfg, capsys, "acc", "--scope", "operate", "--dags", "acc_*")
    airflow = replace(fake_airflow_info, version="2.11.2", major=2)
    client = await confined_client(make_fake_client, tokens_cfg, airflow=airflow)
    for extra in ({"pickle": "7"}, {"ship_dag": "true"}):
        params = {"api": "run", "dag_id": "acc_x", "task_id": "ok", "execution_date": DATE}
        response = await client.get(API, params={**params, **extra}, headers={HEADER: token})
        body = await response.json()
        assert response.status == 403, body
        assert next(iter(extra)) in body["output"]


@pytest.mark.parametrize(("major", "flags"), [(2, True), (3, False)])
async def test_clear_by_a_confined_token_stays_in_its_dag(
    make_fake_client: ClientFactory,
    fake_airflow_info: AirflowInfo,
    tokens_cfg: Path,
    capsys: pytest.CaptureFixture[str],
    major: int,
    flags: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Airflow 2's clear follows ExternalTaskMarkers into other DAGs, and clears a SubDAG's
    parent, unless told not to; Airflow 3 has neither flag (nor SubDAGs)."""
    monkeypatch.setenv("FAKE_AIRFLOW_DAGS", "acc_x")
    token = add(tokens_cfg, capsys, "acc", "--scope", "operate", "--dags", "acc_*")
    airflow = replace(fake_airflow_info, version=f"{major}.11.2", major=major)
    client = await confined_client(make_fake_client, tokens_cfg, airflow=airflow)
    params = {"api": "clear", "dag_id": "acc_x"}
    body = await (await client.get(API, params=params, headers={HEADER: token})).json()
    command = body["airflow_cmd"]
    assert ("--exclude-subdags" in command and "--exclude-parentdag" in command) is flags
    assert ("--subdir=/dags/acc_x.py" in command) is flags  # Airflow 2 loads its file only
    assert "SubDAGs" not in body.get("warning", "")
    body = await (await client.get(API, params=params, headers={HEADER: SEED})).json()
    assert "--exclude-subdags" not in body["airflow_cmd"]  # an unconfined token: as asked


async def test_a_token_narrowed_by_the_operator_no_longer_sees_its_jobs_on_other_dags(
    make_fake_client: ClientFactory,
    tokens_cfg: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    token = add(tokens_cfg, capsys, "acc", "--scope", "operate", "--dags", "acc_*,zeta_secret")
    client = await confined_client(make_fake_client, tokens_cfg)
    params = {"api": "test", "dag_id": "zeta_secret", "task_id": "ok", "execution_date": DATE}
    job_id = await detach(client, token, params)
    await until_ended(client, token, job_id)
    path = tmp_path / "tokens.json"
    document = json.loads(path.read_text())
    document["tokens"][0]["dags"] = ["acc_*"]  # the same token, its DAGs narrowed
    path.write_text(json.dumps(document))
    reload_tokens(client, tokens_cfg)
    listed = await (await client.get(JOBS, headers={HEADER: token})).json()
    assert "zeta_secret" not in json.dumps(listed), listed
    output = await client.get(f"{JOBS}/{job_id}/output", headers={HEADER: token})
    assert output.status == 404


def test_a_report_is_confinable_only_in_the_shape_it_was_reviewed_in() -> None:
    """The reviewed table names commands; the parser must still show what made them
    confinable (a required dag_id, no regex, JSON for a list), on a minor reviewed."""
    dag_id = argument("dag_id", "-d", "--dag-id", required=True)
    output = argument("output", "-o", "--output", choices=["table", "json"])

    def class_of(version: str, words: list[str], *arguments: dict[str, Any]) -> Confinement:
        cli = installed_cli(version, (words, list(arguments)))
        return dag_report(next(iter(cli.commands.values())), minor_of(version))

    assert class_of("2.11.2", ["dags", "list-runs"], dag_id, output) is Confinement.ONE_DAG
    assert class_of("3.3.2", ["dags", "list-jobs"], output) is Confinement.DAG_LIST
    refused = [
        class_of("2.10.5", ["dags", "list-runs"], dag_id, output),  # a minor nobody read
        class_of("2.11.2", ["dags", "list-runs"], argument("dag_id", "-d"), output),
        class_of("2.11.2", ["dags", "state"], dag_id, argument("dag_regex", "--dag-regex")),
        class_of("3.3.2", ["dags", "list"], argument("columns", "--columns")),  # no JSON
        class_of("3.3.2", ["dags", "list-import-errors"], output),  # not a report on DAGs
    ]
    assert set(refused) == {Confinement.REFUSED}, refused
