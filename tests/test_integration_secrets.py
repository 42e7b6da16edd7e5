"""Secrets never handed out, against the real Airflow (issue 25): with the token and
metrics_token given to the daemon through its environment, Airflow's config commands cannot
read them (the children do not inherit them); given in airflow.cfg, where any child can read
them, they are masked in what the commands print."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.catalogue.installed import AirflowInfo
from bridge.text.redact import MASK
from tests.helpers import API, ClientFactory

pytestmark = pytest.mark.airflow
HEADER = "rest_api_plugin_http_token"
CONFIG_COMMANDS = ("config.list", "config.get-value")


def made_up() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:12]
    return f"tok-{tag}", f"met-{tag}"


async def answers(
    client: TestClient[Any, Any], seed: str, *calls: dict[str, str]
) -> list[tuple[int, str]]:
    """Each call's status and whole answer."""
    found = []
    for params in calls:
        response = await client.get(API, params=params, headers={HEADER: seed})
        found.append((response.status, await response.text()))
    return found


def show_values(airflow_info: AirflowInfo) -> dict[str, str]:
    """Airflow 3's config list hides values unless asked; Airflow 2's shows them."""
    return {"show_values": "true"} if airflow_info.major >= 3 else {}


async def test_settings_in_the_daemons_environment_reach_no_command(
    make_client: ClientFactory, airflow_info: AirflowInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed, metrics = made_up()
    monkeypatch.setenv("AIRFLOW__REST_API_PLUGIN__REST_API_PLUGIN_EXPECTED_HTTP_TOKEN", seed)
    monkeypatch.setenv("AIRFLOW__REST_API_PLUGIN__METRICS_TOKEN", metrics)
    # The token under a name of its own too (a client's setting): still the bridge's secret.
    monkeypatch.setenv("AIRFLOW__BRIDGE_CLIENT__TOKEN", seed)
    client = await make_client(
        rest_api_plugin_expected_http_token=seed,
        metrics_token=metrics,
        cli_commands=CONFIG_COMMANDS,
    )
    get = {"api": "config.get-value"}
    found = await answers(
        client,
        seed,
        {**get, "section": "rest_api_plugin", "option": "metrics_token"},
        {**get, "section": "rest_api_plugin", "option": "rest_api_plugin_expected_http_token"},
        {**get, "section": "bridge_client", "option": "token"},
        {"api": "config.list", "section": "rest_api_plugin", **show_values(airflow_info)},
        {**get, "section": "core", "option": "load_examples"},
    )
    for _status, text in found:
        assert seed not in text and metrics not in text, text
    status, text = found[-1]
    assert status == 200 and '"exit_code": 0' in text, text  # the commands did run


async def test_secrets_in_airflow_cfg_are_masked_in_what_commands_print(
    make_client: ClientFactory, airflow_info: AirflowInfo, airflow_home: Path, tmp_path: Path
) -> None:
    seed, metrics = made_up()
    # The session's configuration with the secrets in the bridge's section and, as a client's
    # settings, in a section of their own, where every Airflow command can read them.
    cfg = tmp_path / "airflow.cfg"
    text = (airflow_home / "airflow.cfg").read_text()
    section = "[rest_api_plugin]\n"
    assert text.count(section) == 1
    text = text.replace(
        section,
        f"{section}rest_api_plugin_expected_http_token = {seed}\nmetrics_token = {metrics}\n",
    )
    cfg.write_text(f"{text}\n[bridge_client]\ntoken = {seed}\nmetrics = {metrics}\n")
    client = await make_client(
        config_path=cfg,
        rest_api_plugin_expected_http_token=seed,
        metrics_token=metrics,
        cli_commands=CONFIG_COMMANDS,
    )
    listed = {"api": "config.list", "section": "bridge_client", **show_values(airflow_info)}
    found = await answers(
        client,
        seed,
        listed,
        {**listed, "stream": "true"},
        {**listed, "stream": "ndjson"},
        {"api": "config.get-value", "section": "bridge_client", "option": "token"},
    )
    for _status, text in found:
        assert seed not in text and metrics not in text, text
    for status, text in found:
        assert status == 200 and MASK in text, text
    # Printed, and masked: the keys are there, their values are not.
    status, text = found[0]
    assert f"token = {MASK}" in text and f"metrics = {MASK}" in text, text
