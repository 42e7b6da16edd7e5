"""Secrets never handed out (issue 25): an Airflow child inherits nothing of the bridge's own
(no ``AIRFLOW__REST_API_PLUGIN__*`` variable, the token among them, even when the daemon was
started with them), and every secret the bridge knows (the seed's token, metrics_token) is
masked wherever a command prints it (buffered, in a text or ndjson stream, in a job's
output; stdout and stderr; split across reads, JSON-escaped, inside an over-long line), in
``airflow_cmd`` and in the audit and daemon logs."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient

from bridge.config.environment import OWN_PREFIX
from bridge.config.settings import SECTION, Settings, keys
from bridge.text.noise import StreamText
from bridge.text.redact import MASK, masker
from tests.helpers import API, FAKE_AIRFLOW, ClientFactory, fault, free_port, start_daemon

HEADER = "rest_api_plugin_http_token"
SEED_VARIABLE = "AIRFLOW__REST_API_PLUGIN__REST_API_PLUGIN_EXPECTED_HTTP_TOKEN"
METRICS_VARIABLE = "AIRFLOW__REST_API_PLUGIN__METRICS_TOKEN"


class Secrets:
    """A seed token and a metrics_token unique to a test; ``quoted``: the metrics_token has
    characters JSON escapes (it then cannot be a dag_id)."""

    def __init__(self, quoted: bool = True) -> None:
        tag = uuid.uuid4().hex[:12]
        self.seed = f"tok-{tag}"
        self.metrics = f'met"ri\\cs-{tag}' if quoted else f"met-{tag}"

    @property
    def values(self) -> tuple[str, str]:
        return self.seed, self.metrics

    def leaked(self, text: str) -> list[str]:
        """Any secret in ``text``, as is or JSON-escaped."""
        forms = {form for s in self.values for form in (s, json.dumps(s)[1:-1])}
        return sorted(form for form in forms if form in text)


def bridge_variables(environ: dict[str, str]) -> list[str]:
    return [name for name in environ if name.upper().startswith("AIRFLOW__REST_API_PLUGIN__")]


# --- the child's environment ------------------------------------------------------------------


def test_a_child_inherits_nothing_of_the_bridges_own() -> None:
    secrets = Secrets()
    settings = Settings(rest_api_plugin_expected_http_token=secrets.seed, metrics_token="m-1")
    base = {
        SEED_VARIABLE: secrets.seed,
        "AIRFLOW__REST_API_PLUGIN__METRICS_TOKEN_CMD": "cat /etc/metrics-token",
        "airflow__rest_api_plugin__listen_port": "8800",  # Airflow reads names in any case
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "30000000",
        "DEPLOY_TOKEN": "m-1",  # a secret's value under a name of its own
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "LANG": "C.UTF-8",
    }
    env = settings.child_environment(base)
    assert bridge_variables(env) == []
    assert not {"NOTIFY_SOCKET", "WATCHDOG_USEC", "DEPLOY_TOKEN"} & set(env)
    assert secrets.seed not in env.values() and "m-1" not in env.values()
    # Airflow's own configuration and the rest of the environment are passed on.
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False" and env["LANG"] == "C.UTF-8"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert OWN_PREFIX == f"AIRFLOW__{SECTION.upper()}__"


def test_the_settings_know_their_secrets_and_never_show_them() -> None:
    secrets = Secrets()
    settings = Settings(rest_api_plugin_expected_http_token=secrets.seed, metrics_token="m-2")
    declared = [item.name for item, key in keys() if key.secret]
    assert sorted(declared) == [
        "deploy_git_url",
        "job_webhook_secret",
        "jobs_database",
        "metrics_token",
        "rest_api_plugin_expected_http_token",
    ]
    assert settings.secret_values == (secrets.seed, "m-2")
    assert Settings().secret_values == ()
    shown = repr(settings)  # what log_loading logs
    assert "listen_port" in shown and secrets.seed not in shown and "m-2" not in shown


# --- masking a stream's text ------------------------------------------------------------------


@pytest.mark.parametrize("filtering", [True, False])
def test_a_secret_split_across_reads_is_masked(filtering: bool) -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    text = StreamText(filtering, mask=masker([secret]))
    data = f"value = {secret}\nnext\n".encode()
    out = "".join(text.feed(data[n : n + 7]) for n in range(0, len(data), 7)) + text.finish()
    assert out == f"value = {MASK}\nnext\n"


def test_a_secret_across_the_cut_of_an_over_long_line_is_masked() -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    text = StreamText(False, max_partial=100, mask=masker([secret]), hold=len(secret))
    data = ("y" * 95 + secret + "y" * 50 + "\n").encode()
    # The line passes max_partial with only the secret's first characters read.
    out = [text.feed(data[:90]), text.feed(data[90:105]), text.feed(data[105:]), text.finish()]
    assert out[1] != ""  # the over-long line was passed on before its newline
    assert "".join(out) == "y" * 95 + MASK + "y" * 50 + "\n"


def test_json_escaped_and_percent_encoded_secrets_are_masked() -> None:
    secret = 'to"k\\en/é'
    mask = masker([secret])
    assert mask(json.dumps({"v": secret})) == json.dumps({"v": MASK})
    assert mask(json.dumps({"v": secret}, ensure_ascii=False)) == '{"v": "***"}'
    assert mask("?t=to%22k%5Cen%2F%C3%A9&x=1") == "?t=***&x=1"
    assert masker(["***"])("a *** b") == "a *** b"  # the mask itself is no secret


# --- through the app, on the fake airflow -----------------------------------------------------


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Secrets:
    """The daemon's own environment holds its settings, as an operator's unit file may set
    them; the fake's say mode prints both secrets (as `config get-value` would)."""
    made = Secrets()
    monkeypatch.setenv(SEED_VARIABLE, made.seed)
    monkeypatch.setenv(METRICS_VARIABLE, made.metrics)
    monkeypatch.setenv("FAKE_AIRFLOW_SAY", f"{made.seed} {made.metrics}")
    return made


async def secret_client(make_fake_client: ClientFactory, secrets: Secrets) -> TestClient[Any, Any]:
    return await make_fake_client(
        rest_api_plugin_expected_http_token=secrets.seed, metrics_token=secrets.metrics
    )


async def test_a_childs_environment_has_none_of_the_bridges_variables(
    make_fake_client: ClientFactory, secrets: Secrets
) -> None:
    client = await secret_client(make_fake_client, secrets)
    marker = f"env_{uuid.uuid4().hex[:12]}"
    response = await client.get(
        API, params=fault(marker, "environ"), headers={HEADER: secrets.seed}
    )
    body = await response.json()
    assert body["status"] == "OK", body
    printed = next(line for line in body["output"]["stdout"].splitlines() if line[:1] == "{")
    environ = json.loads(printed)
    assert bridge_variables(environ) == []
    assert environ["FAKE_AIRFLOW_SAY"].count(MASK) == 2  # passed on (and its output masked)


async def test_a_printed_secret_is_masked_in_every_answer_and_the_audit(
    make_fake_client: ClientFactory, secrets: Secrets, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.audit")
    client = await secret_client(make_fake_client, secrets)
    auth = {HEADER: secrets.seed}
    say = fault(f"say_{uuid.uuid4().hex[:12]}", "say")
    answers: dict[str, str] = {}

    response = await client.get(API, params=say, headers=auth)
    answers["buffered"] = await response.text()
    body = json.loads(answers["buffered"])
    assert body["status"] == "OK", body
    # It was printed, split across two reads, on both streams, as JSON and in a long line.
    assert f"value = {MASK} {MASK}\n" in body["output"]["stdout"]
    assert body["output"]["stderr"].endswith(f"{MASK} {MASK}\n")
    assert json.dumps({"value": f"{MASK} {MASK}"}) in body["output"]["stdout"]
    assert f"y{MASK} {MASK}y" in body["output"]["stdout"]
    for stream in ("true", "ndjson"):
        response = await client.get(API, params={**say, "stream": stream}, headers=auth)
        answers[f"stream={stream}"] = await response.text()
        assert response.status == 200 and MASK in answers[f"stream={stream}"]
    response = await client.get(API, params={**say, "detach": "true"}, headers=auth)
    location = response.headers["Location"]
    ended = await client.get(f"{location}/output", params={"offset": "1000000000"}, headers=auth)
    assert b'"state": "succeeded"' in await ended.read()  # waits for the job's end
    whole = await client.get(f"{location}/output", headers=auth)
    answers["job output"] = await whole.text()
    record = await client.get(location, headers=auth)
    answers["job record"] = await record.text()
    assert f"value = {MASK} {MASK}" in answers["job output"]

    for how, text in answers.items():
        assert secrets.leaked(text) == [], how
    audit = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    assert len(audit) == 4 and all("api=test" in line for line in audit), audit


async def test_a_secret_in_the_command_is_masked_in_airflow_cmd_and_the_audit(
    make_fake_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.audit")
    secrets = Secrets(quoted=False)  # the metrics_token as a dag_id
    client = await secret_client(make_fake_client, secrets)
    marker = f"m_{uuid.uuid4().hex[:12]}.{secrets.metrics}"
    response = await client.get(API, params=fault(marker, "ok"), headers={HEADER: secrets.seed})
    body = await response.json()
    assert body["status"] == "OK", body
    assert marker.replace(secrets.metrics, MASK) in body["airflow_cmd"]
    audit = [r.getMessage() for r in caplog.records if r.name == "bridge.audit"]
    assert len(audit) == 1 and MASK in audit[0], audit
    assert secrets.leaked(body["airflow_cmd"] + "".join(audit)) == []


# --- the daemon as an operator starts it ------------------------------------------------------


async def test_the_daemon_started_with_its_settings_in_the_environment_hands_none_out(
    tmp_path: Path,
) -> None:
    secrets = Secrets(quoted=False)
    (tmp_path / "dags").mkdir()
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(
        f"[core]\ndags_folder = {tmp_path / 'dags'}\n\n[rest_api_plugin]\n"
        f"airflow_executable = {FAKE_AIRFLOW}\nwarm_helper = false\nlog_loading = true\n"
    )
    env = {
        **os.environ,
        SEED_VARIABLE: secrets.seed,
        METRICS_VARIABLE: secrets.metrics,
        "FAKE_AIRFLOW_SAY": f"{secrets.seed} {secrets.metrics}",
    }
    port = free_port()
    daemon = await start_daemon(cfg, port, env=env)
    url = f"http://127.0.0.1:{port}{API}"
    texts: list[str] = []
    try:
        async with ClientSession(headers={HEADER: secrets.seed}) as session:
            for params in (
                fault(f"env_{uuid.uuid4().hex[:12]}", "environ"),
                fault(f"say_{uuid.uuid4().hex[:12]}", "say", stream="true"),
                fault(f"cmd_{uuid.uuid4().hex[:12]}.{secrets.metrics}", "ok"),
            ):
                async with session.get(url, params=params) as response:
                    texts.append(await response.text())
                    assert response.status == 200, texts[-1]
    finally:
        assert await daemon.stop() == 0
    stdout = json.loads(texts[0])["output"]["stdout"]
    printed = next(line for line in stdout.splitlines() if line[:1] == "{")
    assert bridge_variables(json.loads(printed)) == []
    assert f"value = {MASK} {MASK}" in texts[1]
    for text in texts:
        assert secrets.leaked(text) == [], text
    assert [line for line in daemon.lines if secrets.leaked(line)] == []
    audit = [line for line in daemon.lines if "bridge.audit" in line and "api=test" in line]
    assert len(audit) == 3 and sum(MASK in line for line in audit) == 1, audit
    assert any("settings: Settings(" in line for line in daemon.lines)  # log_loading ran
