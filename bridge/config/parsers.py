"""Turning the text of a setting (or of a request's boolean) into a value.

Each parser raises ValueError with a short reason; the caller names the key or argument.
The true/false vocabulary lives here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

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


def positive_int(text: str) -> int:
    value = int(text.strip())
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def non_negative_int(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value


def positive_seconds(text: str) -> float:
    value = float(text.strip())
    if not value > 0:
        raise ValueError("must be a positive number of seconds")
    return value


def port(text: str) -> int:
    value = int(text.strip())
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def size(text: str) -> int:
    """Bytes, with an optional K/M/G suffix (powers of 1024)."""
    cleaned = text.strip().upper().removesuffix("B")
    factor = 1
    for suffix, multiplier in (("K", 1024), ("M", 1024**2), ("G", 1024**3)):
        if cleaned.endswith(suffix):
            cleaned, factor = cleaned[:-1], multiplier
            break
    value = int(cleaned) * factor
    if value <= 0:
        raise ValueError("must be a positive size such as 10485760, 512K or 10M")
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


def path(value: str) -> Path:
    return Path(value.strip()).expanduser()


def optional_path(value: str) -> Path | None:
    return Path(value.strip()).expanduser() if value.strip() else None


def path_list(value: str) -> tuple[Path, ...]:
    return tuple(Path(p.strip()).expanduser() for p in value.split(",") if p.strip())


def name_set(value: str) -> frozenset[str]:
    return frozenset(n.strip().lower() for n in value.split(",") if n.strip())
