"""The test page in a real headless Chromium (Debian's, driven by Playwright), against the
real Airflow: token, version, live streaming, Cancel, upload, a wrong token, narrow and dark
screens. Any console error or request to another host fails the test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, async_playwright, expect

from bridge.catalogue.installed import AirflowInfo
from bridge.config.tokens import NamedToken, Scope, TokenTable, hash_token, new_token
from tests.helpers import (
    DAG_SOURCE,
    ClientFactory,
    commands_of,
    live_members,
    new_marker,
    processes_with,
    unique_date,
    warm_mode,
)

pytestmark = [
    pytest.mark.airflow,
    # What the page does does not depend on how the daemon starts commands: the warm pass
    # runs it, and the cold pass keeps its minutes for what does.
    pytest.mark.skipif(not warm_mode(), reason="the same with the cold CLI: the warm pass runs it"),
]

CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-test-token"
DOCS = Path(__file__).resolve().parent.parent / "docs"
# Chromium's own background traffic would hit this machine's closed network.
QUIET = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=QUIET)
        try:
            yield launched
        finally:
            await launched.close()


class Watched:
    """A page whose console errors and foreign requests are collected for the assertions."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.problems: list[str] = []
        host = urlsplit(origin).netloc
        page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console: {msg.text}") if msg.type == "error" else None
            ),
        )
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on(
            "request",
            lambda req: (
                None
                if urlsplit(req.url).netloc == host
                else self.problems.append(f"request to another host: {req.url}")
            ),
        )


async def open_page(browser: Browser, client: TestClient[Any, Any], **context: Any) -> Watched:
    origin = f"http://127.0.0.1:{client.server.port}"
    page = await (await browser.new_context(**context)).new_page()
    watched = Watched(page, origin)
    await page.goto(f"{origin}/admin/rest_api/")
    return watched


async def run(page: Page, api: str, **fields: str) -> Any:
    form = page.locator(f"form[data-api={api}]")
    for name, value in fields.items():
        await form.locator(f"[name='{name}']").fill(value)
    await form.locator("button[type=submit]").click()
    return form


async def test_a_named_token_calls_what_its_scope_allows_from_the_page(
    browser: Browser, make_client: ClientFactory, tmp_path: Path
) -> None:
    reader = new_token()
    tokens = TokenTable((NamedToken("viewer", frozenset({Scope.READ}), hash_token(reader)),))
    client = await make_client(tokens_file=tmp_path / "tokens.json", named_tokens=tokens)
    page = (await open_page(browser, client)).page
    await page.fill("#token", reader)
    form = await run(page, "list_dags")
    await expect(form.locator(".status")).to_contain_text("OK", timeout=60_000)
    await expect(form.locator(".output")).to_contain_text("bridge_demo")
    form = await run(page, "pause", dag_id="bridge_demo")
    await expect(form.locator(".status")).to_contain_text(
        "pause needs the 'operate' scope; the token 'viewer' has read"
    )
    await expect(page.locator("#api-pause")).to_contain_text("scope: operate")


async def test_a_dag_confined_token_is_offered_its_dags_and_its_jobs_say_who_started_them(
    browser: Browser, make_client: ClientFactory, tmp_path: Path
) -> None:
    """Issue 29: the dag_id fields offer what list_dags answers this token (its DAGs only);
    the jobs panel names the token that started each job."""
    confined = new_token()
    tokens = TokenTable(
        (
            NamedToken(
                "demo-team",
                frozenset({Scope.OPERATE}),
                hash_token(confined),
                dags=("bridge_dem*",),
            ),
        )
    )
    client = await make_client(tokens_file=tmp_path / "tokens.json", named_tokens=tokens)
    watched = await open_page(browser, client)
    page = watched.page
    await page.fill("#token", confined)
    await page.locator("form[data-api=pause] [name='dag_id']").focus()
    choices = page.locator("#dag-ids option")
    await expect(choices).to_have_count(1, timeout=60_000)
    assert await choices.first.get_attribute("value") == "bridge_demo"
    form = page.locator("form[data-api=trigger_dag]")
    await form.locator("[name='dag_id']").fill("bridge_demo")
    await form.locator("button.detach").click()
    await expect(form.locator(".status")).to_contain_text("started: follow or cancel it")
    row = page.locator("#jobs-list tr").first
    await expect(row.locator(".started-by")).to_have_text("demo-team")
    assert watched.problems == []  # the 403 next is logged by the browser itself
    form = await run(page, "pause", dag_id="bridge_long")
    await expect(form.locator(".status")).to_contain_text(
        "DAG 'bridge_long' is not one of the DAGs the token 'demo-team' may call"
    )


async def test_the_page_drives_the_api(
    browser: Browser, make_client: ClientFactory, airflow_info: AirflowInfo, tmp_path: Path
) -> None:
    client = await make_client(rest_api_plugin_expected_http_token=TOKEN)
    commands = commands_of(client)
    watched = await open_page(browser, client)
    page = watched.page
    await expect(page.locator("#airflow-version")).to_contain_text(airflow_info.version)

    # Without the token: a clear message, not a raw error.
    form = await run(page, "version")
    await expect(form.locator(".status")).to_contain_text("Token rejected")

    await page.fill("#token", TOKEN)
    form = await run(page, "version")
    await expect(form.locator(".status")).to_contain_text("OK")
    await expect(form.locator(".output")).to_contain_text(airflow_info.version)

    # Streaming: the first line shows while the task still runs, then the result.
    date = unique_date(2025)
    form = await run(page, "test", dag_id="bridge_demo", task_id="slow_lines", execution_date=date)
    await expect(form.locator(".output")).to_contain_text("first line", timeout=60_000)
    assert "second line" not in await form.locator(".output").inner_text()
    assert commands.busy == 1
    await expect(form.locator(".status")).to_contain_text("exit code 0", timeout=60_000)
    await form.scroll_into_view_if_needed()
    # docs/test-page.png (shown in the README) is refreshed on request only, so that a test
    # run leaves the working tree as it was.
    shots = DOCS if os.environ.get("BRIDGE_UPDATE_SCREENSHOT") else tmp_path
    await page.screenshot(path=str(shots / "test-page.png"))

    # Cancel stops the command.
    date = unique_date(2025)
    form = await run(page, "test", dag_id="bridge_demo", task_id="slow_lines", execution_date=date)
    await expect(form.locator(".output")).to_contain_text("first line", timeout=60_000)
    await form.locator("button.cancel").click()
    await expect(form.locator(".status")).to_contain_text("Cancelled")
    await asyncio.wait_for(commands.idle.wait(), timeout=60)
    assert processes_with(date) == []

    # Upload a DAG file, then see it listed.
    dag_id = new_marker("browser")
    dag_file = tmp_path / f"{dag_id}.py"
    dag_file.write_text(DAG_SOURCE.format(dag_id=dag_id, task_id="t"))
    deploy = page.locator("form[data-api=deploy_dag]")
    await deploy.locator("[name=dag_file]").set_input_files(str(dag_file))
    await deploy.locator("button[type=submit]").click()
    await expect(deploy.locator(".status")).to_contain_text(f"DAGs {dag_id}", timeout=120_000)
    form = await run(page, "list_dags")
    await expect(form.locator(".output")).to_contain_text(dag_id, timeout=60_000)

    # Chromium logs every non-2xx response as a console error: the one deliberate 403 is
    # expected, nothing else is.
    forbidden = [p for p in watched.problems if "status of 403" in p]
    assert len(forbidden) == 1
    assert [p for p in watched.problems if p not in forbidden] == []


async def test_narrow_dark_and_keyboard(
    browser: Browser, make_client: ClientFactory, airflow_info: AirflowInfo
) -> None:
    client = await make_client()
    watched = await open_page(
        browser, client, viewport={"width": 390, "height": 844}, color_scheme="dark"
    )
    page = watched.page
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page must not scroll sideways on a phone"
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    # Keyboard only: focus the version form's button and press Enter.
    await page.locator("form[data-api=version] button[type=submit]").focus()
    await page.keyboard.press("Enter")
    status = page.locator("form[data-api=version] .status")
    await expect(status).to_contain_text("OK")
    await expect(page.locator("form[data-api=version] .output")).to_contain_text(
        airflow_info.version
    )
    assert watched.problems == []


async def test_a_page_of_another_site_cannot_drive_the_daemon(
    browser: Browser,
    make_fake_client: ClientFactory,
    aiohttp_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The drive-by: a page on another origin (here another port of 127.0.0.1, which is even
    the same site) makes the browser call the API with an image, a no-cors POST and a form.
    None of them runs anything; the bridge has no token, as on loopback by default."""
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_AIRFLOW_RECORD", str(record))
    bridge = await make_fake_client()
    record.unlink(missing_ok=True)  # what startup ran
    target = f"http://127.0.0.1:{bridge.server.port}/admin/rest_api/api"
    query = "api=test&dag_id=driveby&task_id=ok&execution_date=2024-01-02"
    evil = f"""<!doctype html><title>evil</title>
<img id="img" src="{target}?{query}">
<form id="form" method="post" action="{target}" target="sink">
  <input name="api" value="test"><input name="dag_id" value="driveby">
  <input name="task_id" value="ok"><input name="execution_date" value="2024-01-02">
</form><iframe name="sink"></iframe>
<script>
  fetch("{target}", {{method: "POST", mode: "no-cors", body: new URLSearchParams("{query}")}})
    .finally(() => {{ document.title = "fetched"; document.getElementById("form").submit(); }});
</script>"""

    async def serve_evil(request: web.Request) -> web.Response:
        return web.Response(text=evil, content_type="text/html")

    evil_app = web.Application()
    evil_app.router.add_get("/", serve_evil)
    evil_server = await aiohttp_server(evil_app)
    page = await (await browser.new_context()).new_page()
    answers: list[int] = []
    page.on(
        "response",
        lambda response: answers.append(response.status) if target in response.url else None,
    )
    await page.goto(f"http://127.0.0.1:{evil_server.port}/")
    await expect(page).to_have_title("fetched")
    await page.wait_for_load_state("networkidle")
    assert answers and set(answers) == {403}, answers  # the image, the POST, the form
    assert not record.exists()  # nothing ran


async def test_the_installed_clis_commands_grouped_filtered_and_copied_as_curl(
    browser: Browser, make_client: ClientFactory
) -> None:
    """The commands the operator allows, grouped by CLI group, found with the filter box, run
    from their form (help from the parser), and copied as a curl command without the token."""
    client = await make_client(
        rest_api_plugin_expected_http_token=TOKEN,
        cli_commands=("dags.*", "tasks.states-for-dag-run", "db.check"),
    )
    watched = await open_page(browser, client)
    page = watched.page
    groups = await page.locator("main h2.group").all_inner_texts()
    assert [g.rsplit(" ", 1)[-1] for g in groups] == ["dags", "db", "tasks"], groups
    # dags.* does not reach what deletes: that needs its name in cli_commands.
    assert await page.locator("form[data-api='dags.list-import-errors']").count() == 1
    assert await page.locator("form[data-api='dags.delete']").count() == 0

    await page.fill("#filter", "import err")
    await expect(page.locator("section[data-name='dags.list-import-errors']")).to_be_visible()
    await expect(page.locator("section[data-name='db.check']")).to_be_hidden()
    await expect(page.locator("section[data-name='version']")).to_be_hidden()
    await page.fill("#filter", "")
    await expect(page.locator("section[data-name='db.check']")).to_be_visible()

    await page.fill("#token", TOKEN)
    form = page.locator("form[data-api='dags.list-import-errors']")
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".status")).to_contain_text("exit code 0", timeout=60_000)

    runs = page.locator("form[data-api='dags.list-runs']")
    await runs.locator("[name=dag_id]").fill("bridge_demo")
    await runs.locator("button.copy-curl").click()
    curl = await runs.locator(".curl code").inner_text()
    assert curl.startswith("curl -N -H ") and "$BRIDGE_TOKEN" in curl and TOKEN not in curl
    assert "api=dags.list-runs" in curl and "dag_id=bridge_demo" in curl, curl
    assert watched.problems == []


async def test_the_jobs_panel_detaches_reattaches_and_cancels(
    browser: Browser, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client()
    watched = await open_page(browser, client)
    page = watched.page
    form = page.locator("form[data-api=test]")
    for name, value in {"dag_id": "bridge_long", "task_id": "ticks"}.items():
        await form.locator(f"[name='{name}']").fill(value)
    await form.locator("[name='execution_date']").fill(unique_date(2025))
    await form.locator("button.detach").click()
    await expect(form.locator(".status")).to_contain_text("started: follow or cancel it")
    # The page follows the new job at once: its output arrives live.
    jobs = page.locator("#jobs")
    await expect(jobs.locator("#job-output")).to_contain_text("tick 2", timeout=60_000)
    row = jobs.locator("#jobs-list tr").first
    await expect(row.locator(".state")).to_have_text("running")
    job_id = await row.get_attribute("data-job-id")
    assert job_id
    # Reattach: Follow replays the output from its start, then goes on live.
    await page.reload()
    await expect(row.locator(".state")).to_have_text("running")
    await row.locator("button.follow").click()
    await expect(jobs.locator("#job-output")).to_contain_text("tick 1")
    await expect(jobs.locator("#job-output")).to_contain_text("tick 4", timeout=60_000)
    await jobs.scroll_into_view_if_needed()
    shots = DOCS if os.environ.get("BRIDGE_UPDATE_SCREENSHOT") else tmp_path
    await jobs.screenshot(path=str(shots / "jobs-panel.png"))
    # Cancel: the command's session is stopped, the follower sees the end.
    pid = (await (await client.get(f"/admin/rest_api/jobs/{job_id}")).json())["pid"]
    await row.locator("button.cancel-job").click()
    await expect(jobs.locator("#job-status")).to_contain_text("cancelled", timeout=60_000)
    await expect(row.locator(".state")).to_have_text("cancelled")
    assert live_members(session=pid) == []
    assert watched.problems == []
