"""The test page and its static files, served by the app (tests/test_install.py: by an
installed wheel too)."""

from __future__ import annotations

from bridge.catalogue.table import NAMES
from tests.helpers import ClientFactory


async def test_page_lists_every_api(make_fake_client: ClientFactory) -> None:
    client = await make_fake_client()
    response = await client.get("/admin/rest_api/")
    page = await response.text()
    assert response.status == 200
    for name in NAMES:
        assert f'id="api-{name}"' in page
    assert "unavailable" in page  # serve_logs, at least
    css = await client.get("/admin/rest_api/static/style.css")
    assert css.status == 200
    redirect = await client.get("/admin/rest_api", allow_redirects=False)
    assert redirect.status == 302


async def test_examples_carry_the_token_header_but_never_the_token(
    make_fake_client: ClientFactory,
) -> None:
    client = await make_fake_client(rest_api_plugin_expected_http_token="do-not-show-me")
    page = await (await client.get("/admin/rest_api/")).text()
    assert "do-not-show-me" not in page
    assert "rest_api_plugin_http_token: $BRIDGE_TOKEN" in page
    assert "curl -N" in page  # streaming examples print lines as they come
    assert 'id="token"' in page and 'type="password"' in page
    for external in ("https://", "//cdn", "googleapis"):
        assert external not in page
