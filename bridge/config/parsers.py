"""Turning the text of a setting (or of a request's boolean) into a value.

Each parser raises ValueError with a short reason; the caller names the key or argument.
The true/false vocabulary lives here and nowhere else.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from pathlib import Path
from typing import Any

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
BOOL_HINT = "true/false (also 1/0, on/off, yes/no)"


def parse_bool(text: str) -> bool:
    """true/1/on/yes or false/0/off/no, in any case."""
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ValueError(f"expected {BOOL_HINT}")


def is_false_word(text: str) -> bool:
    """The text is one of the words for false (a switch turned off, not an error)."""
    return text.strip().lower() in FALSE_WORDS


def _number(text: str, kind: type[int] | type[float], expected: str) -> Any:
    try:
        return kind(text.strip())
    except ValueError:
        raise ValueError(expected) from None


def positive_int(text: str) -> int:
    expected = "must be a positive whole number"
    value: int = _number(text, int, expected)
    if value <= 0:
        raise ValueError(expected)
    return value


def non_negative_int(text: str) -> int:
    expected = "must be a whole number, 0 or more"
    value: int = _number(text, int, expected)
    if value < 0:
        raise ValueError(expected)
    return value


def non_negative_seconds(text: str) -> float:
    expected = "must be a number of seconds, 0 or more"
    value: float = _number(text, float, expected)
    if not value >= 0 or value == float("inf"):
        raise ValueError(expected)
    return value


def positive_seconds(text: str) -> float:
    expected = "must be a positive number of seconds"
    value: float = _number(text, float, expected)
    if not value > 0:
        raise ValueError(expected)
    return value


def share(text: str) -> float:
    """A fraction above 0, at most 1."""
    expected = "must be a fraction above 0 and at most 1 (0.5: half)"
    value: float = _number(text, float, expected)
    if not 0 < value <= 1:
        raise ValueError(expected)
    return value


def port(text: str) -> int:
    expected = "must be a TCP port between 1 and 65535"
    value: int = _number(text, int, expected)
    if not 0 < value < 65536:
        raise ValueError(expected)
    return value


def size(text: str) -> int:
    """Bytes, with an optional K/M/G suffix (powers of 1024)."""
    cleaned = text.strip().upper().removesuffix("B")
    factor = 1
    for suffix, multiplier in (("K", 1024), ("M", 1024**2), ("G", 1024**3)):
        if cleaned.endswith(suffix):
            cleaned, factor = cleaned[:-1], multiplier
            break
    expected = "must be a positive size such as 10485760, 512K or 10M"
    try:
        value = int(cleaned) * factor
    except ValueError:
        raise ValueError(expected) from None
    if value <= 0:
        raise ValueError(expected)
    return value


def text(value: str) -> str:
    return value.strip()


def optional_text(value: str) -> str | None:
    return value.strip() or None


def header_name(value: str) -> str:
    name = value.strip()
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError("must be a non-empty HTTP header name (letters, digits, - and _)")
    return name


def deploy_target(value: str) -> str:
    """Where deploy_dag and delete_dag put DAG files: the local folder, or a git repository."""
    word = value.strip().lower()
    if word not in ("folder", "git"):
        raise ValueError("expected folder or git")
    return word


def git_url(value: str) -> str | None:
    """A repository git can clone, never one that git would read as an option."""
    url = value.strip()
    if url.startswith("-"):
        raise ValueError("a repository URL cannot start with '-'")
    return url or None


def bundle_name(value: str) -> str | None:
    """The name of one of Airflow 3's DAG bundles, as dag_bundle_config_list names it."""
    name = value.strip()
    if name.startswith("-") or any(c.isspace() for c in name):
        raise ValueError("expected the name of a DAG bundle, such as dags-git")
    return name or None


def git_branch(value: str) -> str:
    """A branch name as git allows it (git check-ref-format), never an option."""
    name = value.strip()
    bad = (
        not name
        or name.startswith(("-", "/", "."))
        or name.endswith(("/", ".", ".lock"))
        or ".." in name
        or "//" in name
        or "@{" in name
        or any(c in name for c in " ~^:?*[\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    )
    if bad:
        raise ValueError("expected a git branch name such as main or dags/prod")
    return name


def repository_subdir(value: str) -> str:
    """A folder inside the repository, relative, without '..' ('' is its root)."""
    parts = [part for part in value.strip().strip("/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("must be a folder inside the repository, without '..'")
    return "/".join(parts)


def path(value: str) -> Path:
    return Path(value.strip()).expanduser()


def optional_path(value: str) -> Path | None:
    return Path(value.strip()).expanduser() if value.strip() else None


def path_list(value: str) -> tuple[Path, ...]:
    return tuple(Path(p.strip()).expanduser() for p in value.split(",") if p.strip())


def name_set(value: str) -> frozenset[str]:
    return frozenset(n.strip().lower() for n in value.split(",") if n.strip())


_PATTERN = re.compile(r"^[a-z0-9*?\[\]!._-]+$")


def pattern_list(value: str) -> tuple[str, ...]:
    """Comma-separated command patterns (dags.*, config.get-value), lower case."""
    patterns = tuple(p.strip().lower() for p in value.split(",") if p.strip())
    for pattern in patterns:
        if not _PATTERN.match(pattern):
            raise ValueError(
                f"{pattern!r} is not a command pattern: words joined by dots, such as "
                "dags.list-import-errors or dags.*"
            )
    return patterns


def network_list(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated addresses or networks (10.0.0.5, 10.1.0.0/16, ::1)."""
    try:
        return tuple(
            ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()
        )
    except ValueError as exc:
        raise ValueError(
            f"expected addresses or networks such as 10.0.0.5, 10.1.0.0/16: {exc}"
        ) from None


def url_list(value: str) -> tuple[str, ...]:
    """Comma-separated http:// or https:// URLs (job_webhooks)."""
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        try:
            parts.port  # noqa: B018 (raises for a port that is no number or out of range)
        except ValueError:
            raise ValueError(f"{url!r} has no valid port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is no http:// or https:// URL")
    return urls


def database_url(value: str) -> str | None:
    """A PostgreSQL SQLAlchemy URL (``postgresql://``, ``postgresql+psycopg2://``, ...) or
    nothing. Only the scheme and the host are checked here; the connection tells the rest.
    Errors never quote the URL: it may hold a password."""
    url = value.strip()
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.partition("+")[0]
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"must be a postgresql:// URL, not {parts.scheme or 'no'} scheme")
    try:
        parts.port  # noqa: B018 (raises for a port that is no number or out of range)
    except ValueError:
        raise ValueError("has no valid port") from None
    return url


def instance_name(value: str) -> str | None:
    """A bridge's name among several: printable, no spaces, at most 100 characters."""
    name = value.strip()
    if len(name) > 100 or not all(c.isprintable() and not c.isspace() for c in name):
        raise ValueError("must be at most 100 printable characters without spaces")
    return name or None
