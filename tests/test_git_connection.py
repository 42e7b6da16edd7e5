"""deploy_bundle's git connection read into a URL as the git provider's hook reads it, from
what `airflow connections get --output=json` prints."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bridge.config.settings import Settings
from bridge.deploy.git_connection import connection_url
from bridge.errors import RequestError
from bridge.process.path import Captured

SETTINGS = replace(Settings(), deploy_bundle="team", deploy_git_connection="team_repo")


def printed(**row: Any) -> Captured:
    return Captured(0, json.dumps([{"conn_id": "team_repo", **row}]), "", False)


def test_an_https_token_goes_into_the_url_with_the_login() -> None:
    found = printed(host="https://git.example/d.git", login="bot", password="t/k@n")
    url, notes = connection_url(found, "team_repo", SETTINGS)
    assert url == "https://bot:t%2Fk%40n@git.example/d.git"
    assert notes == []


def test_a_path_is_expanded_and_ssh_settings_are_said_not_applied() -> None:
    found = printed(host="~/dags.git", extra_dejson={"key_file": "/k", "ssh_port": ""})
    url, notes = connection_url(found, "team_repo", SETTINGS)
    assert not url.startswith("~") and url.endswith("/dags.git")
    assert notes == [
        "connection team_repo's key_file are not applied by the bridge: git uses the SSH "
        "configuration of the user the bridge runs as"
    ]


@pytest.mark.parametrize(
    ("found", "said"),
    [
        (printed(host=""), "has no host"),
        (printed(host="--upload-pack=x"), "cannot start with '-'"),
        (
            Captured(1, "", "Connection not found. https://u:pw@h/x", False),
            "could not be read (exit code 1)",
        ),
    ],
)
def test_a_connection_that_cannot_be_used_is_a_500_naming_why(found: Captured, said: str) -> None:
    with pytest.raises(RequestError) as caught:
        connection_url(found, "team_repo", SETTINGS)
    assert caught.value.status == 500
    assert said in str(caught.value) and "pw" not in str(caught.value)
