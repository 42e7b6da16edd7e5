"""What the browser test page shows: facts about this host and, for every API from the
catalogue, its form fields and ready-to-copy example URL and curl command."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import urlencode

from bridge.airflow_info import AirflowInfo
from bridge.catalogue import Api, Arg, Kind
from bridge.config import Settings

# Placeholder values for examples; required arguments only, so each example is complete.
_EXAMPLE_VALUES = {
    "dag_id": "bridge_demo",
    "task_id": "slow_lines",
    "execution_date": "2024-01-02T03:04:05",
    "principal": "airflow@EXAMPLE.COM",
}


@dataclass(frozen=True)
class Example:
    url: str
    curl: str


def base_url(settings: Settings) -> str:
    scheme = "https" if settings.tls_enabled else "http"
    host = settings.listen_host
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{settings.listen_port}"


def edition(info: AirflowInfo) -> str:
    celery = "with" if "celery" in info.commands else "without"
    return f"Airflow {info.major} CLI, {celery} the celery commands"


def _example_value(arg: Arg) -> str:
    if arg.kind is Kind.BOOL:
        return "true"
    return _EXAMPLE_VALUES.get(arg.name, f"<{arg.name}>")


def example(api: Api, settings: Settings, api_path: str) -> Example:
    """The example call of ``api``: its required arguments, streamed when it runs a CLI."""
    params = {"api": api.name}
    params.update(
        {a.name: _example_value(a) for a in api.args if a.required and a.kind is not Kind.FILE}
    )
    streams = not api.internal
    if streams:
        params["stream"] = "true"
    url = f"{base_url(settings)}{api_path}?{urlencode(params)}"
    words = ["curl"]
    if streams:
        words.append("-N")  # print each line as it arrives
    if settings.auth_enabled:
        words += ["-H", f"{settings.rest_api_plugin_http_token_header_name}: $BRIDGE_TOKEN"]
    if api.name == "deploy_dag":
        words += ["-X", "POST", "-F", "dag_file=@my_dag.py"]
    words.append(url)
    return Example(url=url, curl=" ".join(_quote(word) for word in words))


def _quote(word: str) -> str:
    # $BRIDGE_TOKEN stays expandable by the shell the operator pastes into.
    if "$BRIDGE_TOKEN" in word:
        return '"' + word + '"'
    return shlex.quote(word)
