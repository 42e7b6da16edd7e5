"""The installed CLI's parser kept between starts (bridge.catalogue.cli_cache): it holds while
the installation is as the reader saw it, and not a moment after; the configuration's secrets
never reach the file. And a running daemon that sees a change but cannot detect Airflow again
keeps its answer (bridge.calls.installation). The integration suite reads, caches and refreshes
the real parser."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from bridge.calls.installation import Installation
from bridge.catalogue import cli_cache
from bridge.catalogue.cli_cache import AIRFLOW_SECTIONS, Reading, cache_for, load, stamp, store
from bridge.catalogue.installed import AirflowInfo
from bridge.config.settings import CurrentSettings
from bridge.process.ledger import Ledger
from bridge.process.path import CommandPath
from tests.helpers import cli_argument, settings_for

PYTHON = "/opt/airflow/bin/python"
SECRET = "s3cret-password"


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """What the reader stamps: the airflow package's __init__.py, the distributions beside
    it, airflow.cfg (and, not stamped itself, site-packages)."""
    packages = tmp_path / "site-packages"
    (packages / "airflow").mkdir(parents=True)
    (packages / "airflow" / "__init__.py").write_text("__version__ = '3.3.2'\n")
    (packages / "apache_airflow-3.3.2.dist-info").mkdir()
    config = tmp_path / "airflow.cfg"
    config.write_text("[core]\n")
    return {
        "package": packages / "airflow" / "__init__.py",
        "distributions": packages / "*.dist-info",
        "config": config,
        "site-packages": packages,
    }


def document(site: dict[str, Path], version: str = "3.3.2") -> str:
    """A reader's JSON, stamped as ``site`` is now."""
    stamps = []
    for name, path in site.items():
        if name == "site-packages":
            continue
        stamped = str(path) + (AIRFLOW_SECTIONS if name == "config" else "")
        found = stamp(stamped)
        stamps.append([stamped, list(found) if found else None])
    commands = [{"words": ["dags", "list"], "help": "", "arguments": [cli_argument("output")]}]
    return json.dumps({"version": version, "commands": commands, "stamps": stamps})


ENV = {"AIRFLOW_HOME": "/srv/airflow", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"x://u:{SECRET}@h"}


def stored(tmp_path: Path, site: dict[str, Path]) -> Path:
    path = cache_for(tmp_path, PYTHON, ENV)
    store(path, Reading.of(document(site), PYTHON, ENV))
    return path


def test_a_kept_reading_holds_while_nothing_changed(tmp_path: Path, site: dict[str, Path]) -> None:
    path = stored(tmp_path, site)
    reading = load(path, PYTHON, dict(ENV, PATH="/usr/bin"))  # PATH is not configuration
    assert reading is not None
    assert [c.name for c in reading.cli.commands.values()] == ["dags.list"]
    assert reading.cli.version == "3.3.2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET not in path.read_text()  # the configuration is kept as a digest only
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


@pytest.mark.parametrize("change", ["upgrade", "provider", "removed", "config"])
def test_a_changed_installation_is_read_again(
    tmp_path: Path, site: dict[str, Path], change: str
) -> None:
    path = stored(tmp_path, site)
    packages = site["site-packages"]
    if change == "upgrade":  # pip writes the new version's files anew
        site["package"].unlink()
        site["package"].write_text("__version__ = '3.3.3'\n")
    elif change == "provider":
        (packages / "apache_airflow_providers_celery-3.10.0.dist-info").mkdir()
    elif change == "removed":
        (packages / "apache_airflow-3.3.2.dist-info").rmdir()
    else:
        site["config"].write_text("[core]\nexecutor = CeleryExecutor\n")
    assert load(path, PYTHON, ENV) is None


def test_an_edit_of_the_bridges_own_section_keeps_the_reading(
    tmp_path: Path, site: dict[str, Path]
) -> None:
    """[rest_api_plugin] is the bridge's: Airflow's CLI reads none of it. Any other section
    counts, also one after it; a section named otherwise ("[Rest_Api_Plugin]") is not ours."""
    site["config"].write_text("[core]\n[rest_api_plugin]\nmax_follows = 4\n[logging]\n")
    path = stored(tmp_path, site)
    site["config"].write_text("[core]\n[rest_api_plugin]\nmax_follows = 8\n[logging]\n")
    assert load(path, PYTHON, ENV) is not None
    site["config"].write_text("[core]\n[rest_api_plugin]\nmax_follows = 8\n[logging]\nx = 1\n")
    assert load(path, PYTHON, ENV) is None
    site["config"].write_text("[core]\n[Rest_Api_Plugin]\nmax_follows = 4\n[logging]\n")
    assert load(path, PYTHON, ENV) is None


def test_an_indented_header_never_hides_an_edit_of_airflows_sections(
    tmp_path: Path, site: dict[str, Path]
) -> None:
    """Configparser may read an indented "[...]" line as a header: an indented [core] ends
    our section (what follows is Airflow's), an indented [rest_api_plugin] starts nothing."""
    site["config"].write_text("[rest_api_plugin]\nmax_follows = 4\n  [core]\nx = 1\n")
    path = stored(tmp_path, site)
    site["config"].write_text("[rest_api_plugin]\nmax_follows = 4\n  [core]\nx = 2\n")
    assert load(path, PYTHON, ENV) is None
    site["config"].write_text("[core]\n  [rest_api_plugin]\nx = 1\n")
    path = stored(tmp_path, site)
    site["config"].write_text("[core]\n  [rest_api_plugin]\nx = 2\n")
    assert load(path, PYTHON, ENV) is None


def test_python_writing_bytecode_changes_nothing(tmp_path: Path, site: dict[str, Path]) -> None:
    """A fresh virtualenv without compiled bytecode: every first import writes __pycache__
    into the package's and site-packages' folders, moving their mtimes."""
    path = stored(tmp_path, site)
    (site["site-packages"] / "__pycache__").mkdir()
    (site["package"].parent / "__pycache__").mkdir()
    assert load(path, PYTHON, ENV) is not None


def test_another_interpreter_configuration_or_reader_reads_again(
    tmp_path: Path, site: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = stored(tmp_path, site)
    assert load(path, "/usr/bin/python3", ENV) is None
    assert load(path, PYTHON, dict(ENV, AIRFLOW__CORE__EXECUTOR="CeleryExecutor")) is None
    monkeypatch.setattr(cli_cache, "reader_digest", lambda: "a newer reader")
    assert load(path, PYTHON, ENV) is None


def test_daemons_of_one_home_with_other_configurations_keep_a_reading_each(
    tmp_path: Path, site: dict[str, Path]
) -> None:
    """A second daemon on the same Airflow home with its own cfg must not evict the first's
    reading (the test suite runs one so, as an operator may)."""
    other = dict(ENV, AIRFLOW_CONFIG="/srv/airflow/daemon.cfg")
    mine, theirs = cache_for(tmp_path, PYTHON, ENV), cache_for(tmp_path, PYTHON, other)
    assert mine != theirs and mine.parent == theirs.parent
    store(mine, Reading.of(document(site), PYTHON, ENV))
    store(theirs, Reading.of(document(site), PYTHON, other))
    assert load(mine, PYTHON, ENV) is not None and load(theirs, PYTHON, other) is not None
    assert stat.S_IMODE(mine.parent.stat().st_mode) == 0o700


def test_a_damaged_or_missing_cache_is_read_again(
    tmp_path: Path, site: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    path = cache_for(tmp_path, PYTHON, ENV)
    assert load(path, PYTHON, ENV) is None
    assert caplog.text == ""  # the first start: nothing to say
    path.parent.mkdir()
    path.write_text('{"format": 1, "reader": "')
    assert load(path, PYTHON, ENV) is None
    assert "ignoring the cached CLI parser" in caplog.text


def test_a_cache_that_cannot_be_written_costs_only_a_reading(
    tmp_path: Path, site: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    path = cache_for(home, PYTHON, ENV)
    path.mkdir(parents=True)  # in the way, even for root
    store(path, Reading.of(document(site), PYTHON, ENV))
    assert "the next start reads it" in caplog.text
    assert [found.name for found in path.parent.iterdir()] == [path.name]  # no partial file


async def test_a_change_that_cannot_be_detected_keeps_the_answer_and_is_not_retried(
    tmp_path: Path, site: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Airflow half-upgraded (its executable gone): the daemon answers as before, says so
    once, and tries again at the next change, not at every look."""
    caplog.set_level(logging.INFO)
    reading = Reading.of(document(site), PYTHON, ENV)
    airflow = AirflowInfo("/nonexistent/airflow", "3.3.2", 3, frozenset({"dags"}), PYTHON)
    installation = Installation(airflow, reading)
    settings = settings_for(tmp_path, "/nonexistent/airflow", airflow_python=None)
    commands = CommandPath(CurrentSettings(settings), Ledger(tmp_path / "ledger"))
    before = installation.commands
    (site["site-packages"] / "apache_airflow-3.4.0.dist-info").mkdir()
    assert not await installation.refreshed(commands, settings)
    assert installation.airflow is airflow and installation.commands is before
    assert "the Airflow installation changed" in caplog.text
    assert "still answering as Airflow 3.3.2: cannot run /nonexistent/airflow" in caplog.text
    caplog.clear()
    assert not await installation.refreshed(commands, settings)
    # The same state: not detected again (asyncio may warn of a slow step on a busy machine).
    assert not [r for r in caplog.records if r.name.startswith("bridge")]
    site["config"].write_text("[core]\nload_examples = False\n")
    assert not await installation.refreshed(commands, settings)
    assert "still answering" in caplog.text  # a further change: tried again
