"""bridge.config.load: where airflow.cfg is found, what it yields, and what it refuses."""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.config import parsers
from bridge.config import settings as config
from bridge.config.groups.defaults import DEFAULT_PORT
from bridge.config.load import ConfigError, default_airflow_executable, load, with_listen
from bridge.config.settings import Settings
from tests.helpers import API, ClientFactory

SECTION = "[rest_api_plugin]"


def write_cfg(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def plugin_cfg(path: Path, **keys: str) -> Path:
    lines = [SECTION, *(f"{key} = {value}" for key, value in keys.items())]
    return write_cfg(path, "\n".join(lines) + "\n")


# --- discovery ------------------------------------------------------------------------------


def test_airflow_config_env_wins_over_airflow_home(tmp_path: Path) -> None:
    chosen = plugin_cfg(tmp_path / "elsewhere" / "custom.cfg", listen_port="9101")
    plugin_cfg(tmp_path / "home" / "airflow.cfg", listen_port="9102")
    environ = {"AIRFLOW_CONFIG": str(chosen), "AIRFLOW_HOME": str(tmp_path / "home")}

    settings = load(None, environ)

    assert settings.listen_port == 9101
    assert settings.config_path == chosen
    assert settings.airflow_home == tmp_path / "home"


def test_airflow_home_cfg_is_used_without_airflow_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = plugin_cfg(home / "airflow.cfg", listen_port="9103")

    settings = load(None, {"AIRFLOW_HOME": str(home)})

    assert settings.listen_port == 9103
    assert settings.config_path == cfg
    assert settings.airflow_home == home
    assert settings.dags_folder == home / "dags"


def test_home_airflow_cfg_is_the_last_resort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = plugin_cfg(tmp_path / "airflow" / "airflow.cfg", listen_port="9104")

    settings = load(None, {})

    assert settings.listen_port == 9104
    assert settings.config_path == cfg
    assert settings.airflow_home == tmp_path / "airflow"


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    home = tmp_path / "no-such-home"

    settings = load(None, {"AIRFLOW_HOME": str(home)})

    assert settings.config_path is None
    assert settings.listen_host == "127.0.0.1"
    assert settings.listen_port == DEFAULT_PORT
    assert settings.dags_folder == home / "dags"
    assert settings.allowed_paths == (home / ".airflow-rest-bridge-files",)
    assert settings.auth_enabled is False


def test_missing_section_gives_defaults(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", "[core]\nload_examples = False\n")

    settings = load(cfg, {})

    defaults = Settings()
    assert settings.config_path == cfg
    for name in ("listen_port", "max_concurrent_commands", "kill_on_disconnect", "log_loading"):
        assert getattr(settings, name) == getattr(defaults, name), name
    assert settings.rest_api_plugin_http_token_header_name == "rest_api_plugin_http_token"
    assert settings.rest_api_plugin_expected_http_token is None


def test_default_port_is_not_one_of_airflows() -> None:
    assert DEFAULT_PORT not in (8080, 8793, 8794, 5555)


def test_explicit_config_that_does_not_exist_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "missing.cfg", {})


def test_unparseable_file_raises(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", "listen_port = 1\n")  # no section header
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load(cfg, {})


# --- every key ------------------------------------------------------------------------------


def every_key(tmp_path: Path) -> dict[str, tuple[str, object]]:
    """key -> (text in the file, parsed value); must cover config.KNOWN_KEYS exactly."""
    return {
        "log_loading": ("true", True),
        "filter_loading_messages_in_cli_response": ("false", False),
        "rest_api_plugin_http_token_header_name": ("X-Bridge-Token", "X-Bridge-Token"),
        "rest_api_plugin_expected_http_token": ("s3cret", "s3cret"),
        "listen_host": ("0.0.0.0", "0.0.0.0"),
        "listen_port": ("9001", 9001),
        "allow_unauthenticated_remote_access": ("yes", True),
        "allowed_hosts": ("Bridge.example.com, proxy", frozenset({"bridge.example.com", "proxy"})),
        "trusted_proxies": (
            "127.0.0.1, 10.1.0.0/16",
            (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.1.0.0/16")),
        ),
        "airflow_executable": ("/opt/af/bin/airflow", "/opt/af/bin/airflow"),
        "airflow_python": ("/opt/af/bin/python", "/opt/af/bin/python"),
        "dag_check_timeout": ("30", 30.0),
        "service_start_timeout": ("3", 3.0),
        "command_timeout": ("12.5", 12.5),
        "kill_grace_period": ("2", 2.0),
        "max_concurrent_commands": ("7", 7),
        "max_waiting_calls": ("0", 0),
        "metrics_token": ("scrape-me", "scrape-me"),
        "tokens_file": (f"{tmp_path}/tokens.json", tmp_path / "tokens.json"),
        "slot_wait_timeout": ("2.5", 2.5),
        "token_share": ("0.25", 0.25),
        "max_follows": ("12", 12),
        "max_body_bytes_in_flight": ("32M", 32 * 1024 * 1024),
        "body_timeout": ("60", 60.0),
        "max_upload_size": ("2M", 2 * 1024 * 1024),
        "max_output_size": ("512K", 512 * 1024),
        "kill_on_disconnect": ("off", False),
        "reattach_wait": ("0", 0.0),
        "warm_helper": ("no", False),
        "disabled_apis": ("Run, clear", frozenset({"run", "clear"})),
        "cli_commands": ("Dags.*, config.get-value", ("dags.*", "config.get-value")),
        "allowed_paths": (f"{tmp_path}/a, {tmp_path}/b", (tmp_path / "a", tmp_path / "b")),
        "backups_folder": (f"{tmp_path}/bk", tmp_path / "bk"),
        "deploy_target": (" Git ", "git"),
        "deploy_bundle": (" team-dags ", "team-dags"),  # agrees with TEAM_BUNDLE below
        "deploy_git_url": ("https://git.example/dags.git", "https://git.example/dags.git"),
        "deploy_git_branch": ("dags/prod", "dags/prod"),
        "deploy_git_subdir": ("/dags/./team/", "dags/team"),
        "backups_to_keep": ("0", 0),
        "jobs_folder": (f"{tmp_path}/jobs", tmp_path / "jobs"),
        "jobs_database": (
            " postgresql+psycopg2://af:pw@db:5432/airflow ",
            "postgresql+psycopg2://af:pw@db:5432/airflow",
        ),
        "bridge_instance": (" host-a:8082 ", "host-a:8082"),
        "jobs_heartbeat": ("0.5", 0.5),
        "job_output_limit": ("1G", 1024**3),
        "jobs_to_keep": ("0", 0),
        "job_max_age": ("3600", 3600.0),
        "job_webhooks": (
            " https://ci.example/hook , http://10.0.0.5:8080/h?k=v",
            ("https://ci.example/hook", "http://10.0.0.5:8080/h?k=v"),
        ),
        "job_webhook_secret": ("sign-with-this", "sign-with-this"),
        "job_webhook_apis": ("trigger_dag, Test", frozenset({"trigger_dag", "test"})),
        "job_webhook_tokens": ("ci,-", frozenset({"ci", "-"})),
        "job_webhook_retry_for": ("90", 90.0),
        "tls_cert_file": (f"{tmp_path}/c.pem", tmp_path / "c.pem"),
        "tls_key_file": (f"{tmp_path}/k.pem", tmp_path / "k.pem"),
    }


def test_every_known_key_parses_from_the_file(tmp_path: Path) -> None:
    table = every_key(tmp_path)
    assert set(table) == set(config.KNOWN_KEYS)
    cfg = plugin_cfg(tmp_path / "airflow.cfg", **{k: text for k, (text, _) in table.items()})

    settings = load(cfg, {BUNDLES_ENV: TEAM_BUNDLE})

    for key, (_, expected) in table.items():
        assert getattr(settings, key) == expected, key
    assert settings.tls_enabled and settings.auth_enabled


BUNDLES_ENV = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"
GIT_BUNDLE = "airflow.providers.git.bundles.git.GitDagBundle"
TEAM_BUNDLE = json.dumps(
    [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"},
        {
            "name": "team-dags",
            "classpath": GIT_BUNDLE,
            "kwargs": {
                "tracking_ref": "dags/prod",
                "subdir": "dags/team",
                "repo_url": "https://git.example/dags.git",
                "refresh_interval": 60,
            },
        },
    ]
)


def bundle_list(**kwargs: object) -> str:
    return json.dumps([{"name": "b", "classpath": GIT_BUNDLE, "kwargs": kwargs}])


def test_deploy_bundle_takes_the_git_target_from_airflows_bundle(tmp_path: Path) -> None:
    cfg = write_cfg(
        tmp_path / "airflow.cfg",
        f"[dag_processor]\ndag_bundle_config_list = {TEAM_BUNDLE}\n\n"
        f"{SECTION}\ndeploy_bundle = team-dags\n",
    )
    settings = load(cfg, {})
    assert settings.deploy_target == "git"
    assert settings.deploy_git_url == "https://git.example/dags.git"
    assert (settings.deploy_git_branch, settings.deploy_git_subdir) == ("dags/prod", "dags/team")
    assert settings.deploy_git_connection is None


@pytest.mark.parametrize(
    ("kwargs", "connection"), [({}, "git_default"), ({"git_conn_id": "c"}, "c")]
)
def test_a_bundle_without_repo_url_deploys_through_its_connection(
    tmp_path: Path, kwargs: dict[str, str], connection: str
) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", deploy_bundle="b")
    settings = load(cfg, {BUNDLES_ENV: bundle_list(tracking_ref="main", **kwargs)})
    assert settings.deploy_target == "git" and settings.deploy_git_url is None
    assert settings.deploy_git_connection == connection


@pytest.mark.parametrize(
    ("bundles", "keys", "said"),
    [
        ("", {}, "dag_bundle_config_list is not set"),
        ("[{", {}, "is not JSON"),
        (TEAM_BUNDLE, {"deploy_bundle": "nope"}, "it lists: dags-folder, team-dags"),
        (TEAM_BUNDLE, {"deploy_bundle": "dags-folder"}, "not a git bundle"),
        (bundle_list(tracking_ref="main", depth=1), {}, "does not know (depth)"),
        (bundle_list(subdir="dags"), {}, "names no tracking_ref"),
        (bundle_list(tracking_ref="-x"), {}, "tracking_ref: expected a git branch name"),
        (bundle_list(tracking_ref="main"), {"deploy_git_branch": "prod"}, "disagrees"),
        (bundle_list(tracking_ref="main"), {"deploy_target": "folder"}, "disagrees"),
        (
            bundle_list(tracking_ref="main", repo_url="https://u:pw@git.example/x.git"),
            {"deploy_git_url": "https://git.example/y.git"},
            "deploy_git_url = <set> disagrees with bundle b (<set>)",
        ),
    ],
)
def test_a_bundle_that_cannot_be_deployed_to_is_refused_naming_why(
    tmp_path: Path, bundles: str, keys: dict[str, str], said: str
) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", **{"deploy_bundle": "b", **keys})
    with pytest.raises(ConfigError, match="deploy_bundle") as caught:
        load(cfg, {BUNDLES_ENV: bundles})
    assert said in str(caught.value)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "file_text", "env_text", "attribute", "expected"),
    [
        ("listen_port", "9001", "9002", "listen_port", 9002),
        ("kill_on_disconnect", "true", "false", "kill_on_disconnect", False),
        ("disabled_apis", "run", "clear,pool", "disabled_apis", frozenset({"clear", "pool"})),
        ("command_timeout", "10", "20", "command_timeout", 20.0),
    ],
)
def test_environment_beats_the_file(
    tmp_path: Path, key: str, file_text: str, env_text: str, attribute: str, expected: object
) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", **{key: file_text})
    environ = {f"AIRFLOW__REST_API_PLUGIN__{key.upper()}": env_text}

    assert getattr(load(cfg, environ), attribute) == expected


def test_environment_applies_without_a_file(tmp_path: Path) -> None:
    environ = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__REST_API_PLUGIN__LISTEN_PORT": "9333"}
    assert load(None, environ).listen_port == 9333


def test_core_dags_folder_from_file_and_environment(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", f"[core]\ndags_folder = {tmp_path}/file-dags\n")

    assert load(cfg, {}).dags_folder == tmp_path / "file-dags"
    environ = {"AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "env-dags")}
    assert load(cfg, environ).dags_folder == tmp_path / "env-dags"


def test_dags_folder_expands_airflow_home_placeholder(tmp_path: Path) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", "[core]\ndags_folder = {AIRFLOW_HOME}/mine\n")
    assert load(cfg, {"AIRFLOW_HOME": str(tmp_path)}).dags_folder == tmp_path / "mine"


# --- malformed values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("listen_port", "abc"),
        ("listen_port", "70000"),
        ("max_concurrent_commands", "0"),
        ("kill_on_disconnect", "maybe"),
        ("max_upload_size", "-1"),
        ("max_output_size", "lots"),
        ("command_timeout", "0"),
        ("backups_to_keep", "-2"),
        ("reattach_wait", "-1"),
        ("reattach_wait", "inf"),
        ("job_max_age", "0"),
        ("rest_api_plugin_http_token_header_name", "bad header"),
        ("deploy_target", "s3"),
        ("deploy_git_url", "--upload-pack=touch /tmp/x"),
        ("deploy_git_branch", "-f"),
        ("deploy_git_branch", "main..x"),
        ("deploy_git_branch", "a b"),
        ("deploy_git_subdir", "dags/../../etc"),
    ],
)
def test_malformed_value_names_the_key(tmp_path: Path, key: str, text: str) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", **{key: text})
    with pytest.raises(ConfigError) as caught:
        load(cfg, {})
    assert key in str(caught.value)


def test_malformed_environment_value_names_the_key(tmp_path: Path) -> None:
    environ = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__REST_API_PLUGIN__LISTEN_PORT": "abc"}
    with pytest.raises(ConfigError, match="listen_port"):
        load(None, environ)


# --- exposure and TLS -----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.com", "128.0.0.1"])
def test_remote_listen_without_token_is_refused(tmp_path: Path, host: str) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", listen_host=host)
    with pytest.raises(ConfigError, match="allow_unauthenticated_remote_access"):
        load(cfg, {})


@pytest.mark.parametrize(
    "extra",
    [
        {"rest_api_plugin_expected_http_token": "t0ken"},
        {"allow_unauthenticated_remote_access": "true"},
    ],
)
def test_remote_listen_allowed_with_token_or_explicit_opt_in(
    tmp_path: Path, extra: dict[str, str]
) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", listen_host="0.0.0.0", **extra)
    assert load(cfg, {}).listen_host == "0.0.0.0"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2", "127.255.0.9"])
def test_loopback_needs_no_token(tmp_path: Path, host: str) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", listen_host=host)
    assert load(cfg, {}).listen_host == host


def test_with_listen_rechecks_exposure(tmp_path: Path) -> None:
    settings = load(None, {"AIRFLOW_HOME": str(tmp_path)})

    moved = with_listen(settings, None, 9555)
    assert (moved.listen_host, moved.listen_port) == ("127.0.0.1", 9555)
    with pytest.raises(ConfigError, match=r"0\.0\.0\.0"):
        with_listen(settings, "0.0.0.0", None)

    cfg = plugin_cfg(tmp_path / "airflow.cfg", rest_api_plugin_expected_http_token="t")
    assert with_listen(load(cfg, {}), "0.0.0.0", 80).listen_host == "0.0.0.0"


@pytest.mark.parametrize("present", ["tls_cert_file", "tls_key_file"])
def test_tls_cert_and_key_must_come_together(tmp_path: Path, present: str) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", **{present: str(tmp_path / "x.pem")})
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file"):
        load(cfg, {})


def test_a_git_deploy_target_needs_its_url(tmp_path: Path) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", deploy_target="git")
    with pytest.raises(ConfigError, match="deploy_git_url"):
        load(cfg, {})


def test_token_is_not_in_repr(tmp_path: Path) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", rest_api_plugin_expected_http_token="hush-42")
    assert "hush-42" not in repr(load(cfg, {}))


# --- the child's environment ----------------------------------------------------------------


def test_child_environment(tmp_path: Path) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg")
    settings = load(cfg, {})

    env = settings.child_environment({"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "0"})

    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["AIRFLOW_CONFIG"] == str(cfg)
    assert env["LANG"] == "C.UTF-8"


def test_child_environment_without_a_file_sets_no_airflow_config(tmp_path: Path) -> None:
    settings = load(None, {"AIRFLOW_HOME": str(tmp_path / "empty")})
    env = settings.child_environment({})
    assert env["PYTHONUNBUFFERED"] == "1"
    assert "AIRFLOW_CONFIG" not in env


PORT = "must be a TCP port between 1 and 65535"


# --- values, exactly as the operator reads them ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10485760", 10485760),
        ("512K", 512 * 1024),
        ("512k", 512 * 1024),
        ("10M", 10 * 1024**2),
        ("10MB", 10 * 1024**2),
        ("2G", 2 * 1024**3),
        (" 3g ", 3 * 1024**3),
        ("1", 1),  # the smallest size there is
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parsers.size(text) == size


@pytest.mark.parametrize("text", ["0", "-1K", "1.5M", "ten", "", "10T"])
def test_sizes_that_are_not(text: str) -> None:
    with pytest.raises(ValueError):
        parsers.size(text)


@pytest.mark.parametrize(
    ("parse", "good", "bad", "said"),
    [
        (parsers.port, {"1": 1, "65535": 65535}, ["0", "65536", "x"], PORT),
        (parsers.positive_int, {"1": 1, " 7 ": 7}, ["0", "-1", "2.5"], "positive whole number"),
        (parsers.non_negative_int, {"0": 0, "3": 3}, ["-1", "x"], "whole number, 0 or more"),
        (parsers.positive_seconds, {"0.5": 0.5, "2": 2.0}, ["0", "-1", "x"], "seconds"),
    ],
)
def test_numbers_at_their_bounds(
    parse: Any, good: dict[str, object], bad: list[str], said: str
) -> None:
    for text, value in good.items():
        assert parse(text) == value
    for text in bad:
        with pytest.raises(ValueError) as refused:
            parse(text)
        assert said in str(refused.value)


def test_a_port_error_reads_as_it_should(tmp_path: Path) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", listen_port="70000")
    with pytest.raises(ConfigError) as refused:
        load(cfg, {})
    assert str(refused.value) == (
        "[rest_api_plugin] listen_port = '70000': must be a TCP port between 1 and 65535"
    )


@pytest.mark.parametrize("name", ["", "  ", "with space", "colon:name", "a/b"])
def test_header_names_that_are_not(name: str) -> None:
    with pytest.raises(ValueError, match="HTTP header name"):
        parsers.header_name(name)


def test_paths_and_optional_values() -> None:
    assert parsers.optional_path("  ") is None
    assert parsers.optional_path("~/x") == Path("~/x").expanduser()
    assert parsers.optional_text("  ") is None
    assert parsers.path_list(" a , ,b ") == (Path("a"), Path("b"))


def test_a_percent_sign_is_read_literally(tmp_path: Path) -> None:
    """No interpolation, as Airflow reads its own config: a token may contain '%'."""
    cfg = plugin_cfg(tmp_path / "airflow.cfg", rest_api_plugin_expected_http_token="a%(b)s%")
    assert load(cfg, {}).rest_api_plugin_expected_http_token == "a%(b)s%"


def test_a_key_given_twice_is_not_a_crash(tmp_path: Path) -> None:
    cfg = tmp_path / "airflow.cfg"
    cfg.write_text(f"{SECTION}\nlisten_port = 9001\nlisten_port = 9002\n{SECTION}\n")
    assert load(cfg, {}).listen_port == 9002


def test_the_defaults_that_follow_the_airflow_home(tmp_path: Path) -> None:
    settings = load(plugin_cfg(tmp_path / "airflow.cfg"), {})
    assert settings.backups_folder == tmp_path / "dag_backups"
    assert settings.allowed_paths == (tmp_path / ".airflow-rest-bridge-files",)


def test_with_listen_keeps_what_the_flags_leave_out(tmp_path: Path) -> None:
    settings = load(plugin_cfg(tmp_path / "airflow.cfg", listen_port="9001"), {})
    assert with_listen(settings, None, None) == settings
    assert with_listen(settings, "::1", None).listen_port == 9001
    assert with_listen(settings, None, 9002).listen_host == settings.listen_host


def test_the_exposure_error_says_both_ways_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load(plugin_cfg(tmp_path / "airflow.cfg", listen_host="0.0.0.0"), {})
    assert str(refused.value) == (
        "refusing to listen on 0.0.0.0 without a token: set [rest_api_plugin] "
        "rest_api_plugin_expected_http_token (or tokens_file), or "
        "allow_unauthenticated_remote_access = true to accept the risk"
    )


def test_the_default_airflow_is_the_one_beside_our_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    airflow = python.parent / "airflow"
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert default_airflow_executable() == "airflow"  # none anywhere: the bare name
    airflow.write_text("#!/bin/sh\n")
    assert default_airflow_executable() == "airflow"  # there, but not executable
    airflow.chmod(0o755)
    assert default_airflow_executable() == str(airflow)
    on_path = tmp_path / "nowhere" / "airflow"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    airflow.unlink()
    assert default_airflow_executable() == str(on_path)


# -- issue 26 item 10: settings refused in the bridge's words, unknown keys named ---------------


def test_a_size_that_is_no_number_is_refused_in_the_bridges_words(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load(plugin_cfg(tmp_path / "airflow.cfg", max_upload_size="10X"), {})
    assert "max_upload_size = '10X': must be a positive size such as" in str(refused.value)
    assert "invalid literal" not in str(refused.value)


@pytest.mark.parametrize(
    ("extra", "port", "whose"),
    [
        ("", 8080, "Airflow 2's webserver and Airflow 3's API server"),
        ("[logging]\nworker_log_server_port = 9100\n", 9100, "the workers' log server"),
        ("[celery]\nflower_port = 5556\n", 5556, "Celery's Flower"),
    ],
)
def test_a_listen_port_of_airflows_own_is_refused(
    tmp_path: Path, extra: str, port: int, whose: str
) -> None:
    cfg = write_cfg(tmp_path / "airflow.cfg", f"{extra}[rest_api_plugin]\nlisten_port = {port}\n")
    with pytest.raises(ConfigError) as refused:
        load(cfg, {})
    assert f"listen_port {port} is the port of {whose}" in str(refused.value)
    free = load(write_cfg(tmp_path / "other.cfg", f"{extra}[rest_api_plugin]\n"), {})
    with pytest.raises(ConfigError):  # --port is checked as the file is
        with_listen(free, None, port)


def test_unknown_keys_are_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = plugin_cfg(tmp_path / "airflow.cfg", deploy_targett="git", max_upload_size="1M")
    env = {"AIRFLOW__REST_API_PLUGIN__DEPLOY_TARGETS": "git"}
    with caplog.at_level("WARNING", logger="bridge.config.load"):
        load(cfg, env)
    # Only the loader's: on a loaded machine asyncio may warn of a slow step meanwhile.
    said = [r.getMessage() for r in caplog.records if r.name == "bridge.config.load"]
    assert said == [
        "[rest_api_plugin] deploy_targets (in the environment) is no setting of this bridge: "
        "ignored",
        "[rest_api_plugin] deploy_targett (in airflow.cfg) is no setting of this bridge: ignored",
    ]


async def test_disabled_apis_that_name_nothing_are_named_at_start(
    make_fake_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="bridge.http.lifecycle"):
        client = await make_fake_client(disabled_apis=frozenset({"trigger_dga", "list_dags"}))
    said = [r.getMessage() for r in caplog.records if r.name == "bridge.http.lifecycle"]
    assert said == [
        "disabled_apis names 'trigger_dga', which is no API and no command of this Airflow: "
        "it disables nothing"
    ]
    refused = await client.get(API, params={"api": "list_dags"})
    assert refused.status == 400  # the name it does know is disabled
