"""How a key of the ``[rest_api_plugin]`` section is declared: :func:`setting` makes a field
of :class:`~bridge.config.settings.Settings` that carries its :class:`Key` (parser, help and
traits), from which loading, the references and reloading are derived."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Key:
    """What is known about one key besides its name and default."""

    parse: Callable[[str], Any]
    help: str
    seed: bool = False  # a key of the seed plugin (airflow-rest-api-plugin), same meaning
    restart: bool = False  # read at startup only; a reload (SIGHUP) keeps the old value
    unset: str | None = None  # what an unset key means, when that is not its default value
    example: str | None = None  # a value to show for a key that is unset by default
    secret: bool = False  # never shown: not in the settings' repr, not logged


def setting(
    default: T,
    parse: Callable[[str], T],
    help: str,
    **traits: Any,
) -> T:
    """Declare a key of the section (used as a dataclass field's default)."""
    # Runs once, at import, before mutation testing picks a mutant: no mutant of it could run.
    key = Key(parse, help, **traits)  # pragma: no mutate
    result: T = field(
        default=default, metadata={"key": key}, repr=not key.secret
    )  # pragma: no mutate
    return result
