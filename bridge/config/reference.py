"""The sample cfg (docs/airflow.cfg.sample) and the settings reference
(docs/reference/settings.md), both generated from the declarations in
:mod:`bridge.config.settings`; ``python -m bridge.docs`` writes them."""

from __future__ import annotations

import textwrap
from dataclasses import Field
from pathlib import Path
from typing import Any

from bridge.config.settings import SECTION, Key, keys

WIDTH = 100


def default_text(value: Any) -> str | None:
    """A default as airflow.cfg spells it; None for a key that is unset by default."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, frozenset):
        return ", ".join(sorted(value))
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def _declared_default(item: Field[Any], key: Key) -> str | None:
    """The default a reader should see: not this machine's home folder for a derived one."""
    if key.unset is not None:
        return None
    return default_text(item.default)


def sample_cfg() -> str:
    """Every key with its default (or, for a key unset by default, a commented example)."""
    lines = [
        f"# airflow-rest-bridge: the [{SECTION}] section of airflow.cfg, every key with its "
        "default.",
        "# Generated from bridge/config/groups/ by `python -m bridge.docs`; do not edit.",
        "# Copy the keys you change into your airflow.cfg. Each key can also be set in the "
        "environment",
        f"# as AIRFLOW__{SECTION.upper()}__<KEY> (upper case), which wins over the file. A "
        "malformed value",
        "# stops the daemon with one error line naming the key (exit code 2).",
        "# The dags folder comes from [core] dags_folder (or AIRFLOW__CORE__DAGS_FOLDER).",
        "",
        f"[{SECTION}]",
    ]
    heading = None
    for item, key in keys():
        group = "keys of the seed plugin (airflow-rest-api-plugin), same names and meaning"
        if not key.seed:
            group = "keys new in the bridge"
        if group != heading:
            lines += [f"# --- {group} ---", ""]
            heading = group
        notes = [key.help]
        if key.unset is not None:
            notes.append(f"Unset: {key.unset}.")
        if key.restart:
            notes.append("Read at startup only (a reload keeps the running value).")
        lines += ["# " + line for line in textwrap.wrap(" ".join(notes), WIDTH - 2)]
        shown = _declared_default(item, key)
        if shown is None:
            lines.append(f"# {item.name} = {key.example or ''}".rstrip())
        else:
            lines.append(f"{item.name} = {shown}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def settings_markdown() -> str:
    """The settings reference: one row per key."""
    rows = [
        "# Settings reference",
        "",
        "<!-- Generated from bridge/config/groups/ by `python -m bridge.docs`; do not edit. -->",
        "",
        f"Every key of the `[{SECTION}]` section of `airflow.cfg`. Each can also be set in the "
        f"environment as `AIRFLOW__{SECTION.upper()}__<KEY>`, which wins over the file. "
        "[`airflow.cfg.sample`](../airflow.cfg.sample) lists them with their defaults; the "
        "[configuration guide](../configuration.md) explains how they are read.",
        "",
        "| Key | Default | Meaning |",
        "|---|---|---|",
    ]
    for item, key in keys():
        name = f"`{item.name}`" + (" (seed)" if key.seed else "")
        shown = _declared_default(item, key)
        default = f"`{shown}`" if shown is not None else (key.unset or "unset")
        meaning = key.help
        if key.restart:
            meaning += " Read at startup only: a reload (SIGHUP) keeps the running value."
        rows.append(f"| {name} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def outputs(docs: Path) -> dict[Path, str]:
    """The generated files under ``docs``, with their content."""
    return {
        docs / "airflow.cfg.sample": sample_cfg(),
        docs / "reference" / "settings.md": settings_markdown(),
    }
