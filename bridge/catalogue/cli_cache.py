"""The installed CLI's parser, kept on disk between starts and read again only when the
installation changed.

Reading the parser imports the whole of Airflow's CLI under Airflow's interpreter: seconds of
CPU, at every start, for an answer that changes only when the installation does. A reading
depends on the interpreter, on the reader script, on the configuration its child got (the
``AIRFLOW_*`` variables, kept as a digest only: their values can be secrets) and on three
stamps: the ``airflow`` package's ``__init__.py`` (an upgrade replaces it), the distributions
installed beside it (a provider brings commands) and airflow.cfg (the executor and auth
manager add commands).
The reader stamps those paths (inode, mtime, size) before it imports Airflow, so that a change
made while it reads shows up as a change afterwards.

Everything here blocks on files: call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.catalogue.installed_cli import CLI_PARSER, InstalledCli, Stamp, parse_installed_cli

log = logging.getLogger(__name__)

CACHE_FOLDER = ".airflow-rest-bridge-cli"  # in the Airflow home, beside the ledger
CACHE_FORMAT = 1


def cache_for(airflow_home: Path, python: str, env: Mapping[str, str]) -> Path:
    """The cache file of this interpreter and configuration: daemons that share an Airflow
    home with another airflow.cfg (or AIRFLOW_* variables) keep a reading each."""
    key = hashlib.sha256(f"{python}\0{configuration_digest(env)}".encode()).hexdigest()
    return airflow_home / CACHE_FOLDER / f"{key[:20]}.json"


DISTRIBUTIONS = "/*.dist-info"  # a stamp path ending so: the distributions in that folder
# A stamp path ending so: that configuration file without the bridge's own section. An edit of
# [rest_api_plugin] changes nothing Airflow's CLI or the warm helper depend on, and must not
# cost a reading of the parser or a new helper.
AIRFLOW_SECTIONS = "#airflow-sections"
OWN_SECTION = "rest_api_plugin"


def stamp(path: str) -> Stamp:
    """What changes when a file is edited or replaced (inode, mtime, size), or, for
    ``FOLDER/*.dist-info``, when a distribution is installed or removed there (their number
    and a digest of their names: the folder's own mtime also moves when Python writes
    __pycache__). For ``FILE#airflow-sections``, the number and a digest of that configuration
    file's lines outside [rest_api_plugin]. The reader (airflow_side/cli_parser.py) stamps the
    same way."""
    try:
        if path.endswith(AIRFLOW_SECTIONS):
            with open(path.removesuffix(AIRFLOW_SECTIONS), "rb") as config:
                kept = airflow_sections(config.read())
            digest = hashlib.sha256(b"\n".join(kept)).digest()
            return (len(kept), int.from_bytes(digest[:7], "big"), 0)
        if path.endswith(DISTRIBUTIONS):
            names = sorted(n for n in os.listdir(os.path.dirname(path)) if n.endswith(".dist-info"))
            digest = hashlib.sha256("\n".join(names).encode()).digest()
            return (len(names), int.from_bytes(digest[:7], "big"), 0)
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def airflow_sections(config: bytes) -> list[bytes]:
    """The lines of an airflow.cfg outside its [rest_api_plugin] section (a section runs from
    its header to the next header, as configparser reads it).

    Fail closed: a line is left out only when it surely is the bridge's. Configparser reads
    an indented ``[...]`` line as a header or as the continuation of a value, depending on
    what came before; so any line that may be a header ends our section, and only our header
    at the start of a line begins it. A doubt costs a needless re-read, never a missed edit.
    """
    kept: list[bytes] = []
    ours = False
    for line in config.splitlines():
        header = line.strip()
        if header.startswith(b"[") and header.endswith(b"]"):
            ours = line.rstrip() == b"[" + OWN_SECTION.encode() + b"]"  # as configparser names it
        if not ours:
            kept.append(line)
    return kept


def shown(path: str) -> str:
    """A stamp path as an operator knows it (the file, not the stamp's kind)."""
    return path.removesuffix(AIRFLOW_SECTIONS)


def configuration_of(env: Mapping[str, str]) -> dict[str, str]:
    """The variables that decide what Airflow reads at import: its home, config and
    AIRFLOW__SECTION__KEY overrides, and where Python finds modules."""
    return {
        key: value
        for key, value in env.items()
        if key.startswith("AIRFLOW") or key in ("PYTHONPATH", "PYTHONHOME", "TZ")
    }


def configuration_digest(env: Mapping[str, str]) -> str:
    text = json.dumps(configuration_of(env), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def reader_digest() -> str:
    """The reader script's digest: a bridge whose reader reports more reads afresh."""
    return hashlib.sha256(CLI_PARSER.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Reading:
    """One reading of the installed CLI's parser, and what it depended on."""

    cli: InstalledCli
    document: str  # the reader's JSON, as it printed it
    python: str
    configuration: str  # configuration_digest() of the child's environment

    @classmethod
    def of(cls, document: str, python: str, env: Mapping[str, str]) -> Reading:
        """ValueError (or KeyError, TypeError) when ``document`` is not the reader's JSON."""
        return cls(parse_installed_cli(document), document, python, configuration_digest(env))

    def observe(self, python: str | None, env: Mapping[str, str]) -> Observed:
        """How what the reading depended on looks now."""
        stamps = tuple((path, stamp(path)) for path, _ in self.cli.stamps)
        return Observed(stamps, python, configuration_digest(env))

    def changes(self, now: Observed) -> list[str]:
        """What changed since the reading (empty: it still holds)."""
        pairs = zip(self.cli.stamps, now.stamps, strict=True)
        changed = [shown(path) for (path, then), (_, found) in pairs if found != then]
        if now.python != self.python:
            changed.append(f"the interpreter ({now.python})")
        if now.configuration != self.configuration:
            changed.append("the configuration's environment variables")
        return changed


@dataclass(frozen=True)
class Observed:
    """What a reading depends on, as it looks at one moment."""

    stamps: tuple[tuple[str, Stamp], ...]
    python: str | None
    configuration: str


def load(path: Path, python: str, env: Mapping[str, str]) -> Reading | None:
    """The cached reading, if it still holds for this installation; None otherwise."""
    try:
        cached: dict[str, Any] = json.loads(path.read_text("utf-8"))
        if cached.get("format") != CACHE_FORMAT or cached.get("reader") != reader_digest():
            return None
        reading = Reading(
            parse_installed_cli(str(cached["document"])),
            str(cached["document"]),
            str(cached["python"]),
            str(cached["configuration"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the cached CLI parser in %s: %s", path, exc)
        return None
    return None if reading.changes(reading.observe(python, env)) else reading


def store(path: Path, reading: Reading) -> None:
    """Write the cache whole (a temporary file renamed over it); a failure only costs the
    next start a reading."""
    cached = {
        "format": CACHE_FORMAT,
        "reader": reader_digest(),
        "python": reading.python,
        "configuration": reading.configuration,
        "document": reading.document,
    }
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with open(partial, "w", encoding="utf-8", opener=_private) as out:
            json.dump(cached, out)
        os.replace(partial, path)
    except OSError as exc:
        log.warning(
            "cannot keep the CLI parser in %s (%s); the next start reads it again", path, exc
        )
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
