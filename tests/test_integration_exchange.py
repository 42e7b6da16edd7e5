"""import/export of variables, connections and pools: the JSON travels in the request and
the response; no path on the server is ever chosen by the caller."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import FormData

from bridge.config.settings import Settings
from tests.helpers import API, ClientFactory, call_ok, cli_async, new_marker

pytestmark = pytest.mark.airflow


async def test_variables_export_then_import_round_trips(
    make_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    client = await make_client()
    key = new_marker("var")
    await call_ok(client, api="variables", set=f"{key} value with spaces")
    target = tmp_path / "should-not-exist.json"
    exported = await call_ok(client, api="variables", export=str(target))
    assert not target.exists()
    assert exported["data"][key] == "value with spaces"
    assert str(target) in exported["warning"]
    await call_ok(client, api="variables", delete=key)
    # Import it back as an uploaded file, the way the seed's users sent files.
    form = FormData()
    form.add_field("import", json.dumps({key: "value with spaces"}).encode(), filename="v.json")
    response = await client.post(API, params={"api": "variables"}, data=form)
    assert response.status == 200, await response.text()
    assert (await cli_async(settings, "variables", "get", key)).strip() == "value with spaces"


async def test_pools_export_then_import_round_trips(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client()
    name = new_marker("pool")
    await call_ok(client, api="pool", set=f"{name} 4 exported pool")
    exported = await call_ok(client, api="pool", export="true")
    assert exported["data"][name]["slots"] == 4
    await call_ok(client, api="pool", delete=name)
    await call_ok(client, api="pool", **{"import": json.dumps({name: exported["data"][name]})})
    rows = json.loads(await cli_async(settings, "pools", "get", name, "--output=json"))
    assert rows[0]["description"] == "exported pool"
    await call_ok(client, api="pool", delete=name)


async def test_connections_export_then_import_round_trips(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client()
    conn_id = new_marker("conn")
    uri = "postgres://someone:pw@db.example:5432/airflow"
    await call_ok(client, api="connections", add="true", conn_id=conn_id, conn_uri=uri)
    exported = await call_ok(client, api="connections", export="true")
    mine = exported["data"][conn_id]
    assert mine["host"] == "db.example"
    await call_ok(client, api="connections", delete="true", conn_id=conn_id)
    await call_ok(client, api="connections", **{"import": json.dumps({conn_id: mine})})
    rows = json.loads(await cli_async(settings, "connections", "list", "--output=json"))
    assert conn_id in {row["conn_id"] for row in rows}
    await call_ok(client, api="connections", delete="true", conn_id=conn_id)
