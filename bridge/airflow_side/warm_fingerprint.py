"""A worker's fingerprint of the interpreter state a command could change and the worker does
not put back (warm_worker.py). Standard library only; it looks at Airflow's objects where they
are loaded.

Why: a DAG or plugin file runs its top-level code in the worker, and that code can change
anything (replace ``Variable.get``, set a configuration value, add a warnings filter, call
``logging.disable``, set a signal handler or the umask, start a thread, add a secret to the
masker). A list of things to put back never covers all of it. So the worker takes this
fingerprint once, before its first command, and compares it after each command (after putting
back what it does put back): any difference and it runs nothing more. The next read gets a
new worker, forked from the helper, which never runs a command itself.

What it covers: Airflow's configuration object as a whole; the environment, the working
directory, the umask and ``sys.path``; the modules loaded at the start (each still the same
object) and the import hooks; the identity of every function, class and descriptor in the
namespace of each Airflow module loaded at the start, and in each class those modules define
(what a monkeypatch replaces); logging (the level of ``logging.disable``, each logger's
handlers, filters and level, each handler's level, formatter and filters, the logger class
and record factory); ``warnings`` (its filters and hooks); every signal's handler, the
blocked signals and the interval timer; the number of threads; and the secrets masker(s)
(patterns and settings). It costs well under a millisecond per command: the expensive part,
which names to look at, is worked out once.
"""

from __future__ import annotations

import configparser
import logging
import operator
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

# Where the secrets masker lives: Airflow 2, Airflow 3 (the core's and the task SDK's copy).
MASKERS = (
    "airflow.utils.log.secrets_masker",
    "airflow._shared.secrets_masker.secrets_masker",
    "airflow.sdk._shared.secrets_masker.secrets_masker",
)
CONFIGURATIONS = ("airflow.configuration", "airflow.settings", "airflow.sdk.configuration")
_DESCRIPTORS = (classmethod, staticmethod, property)
_SCALARS = (str, int, float, bool, bytes, type(None))
_MISSING = object()
# operator.call, which Python 3.11 has
_call: Callable[[Callable[[Any], Any], Any], Any] = getattr(operator, "call", lambda f, a: f(a))


class Fingerprint:
    """Taken at construction; :meth:`changed` names what differs now."""

    def __init__(self) -> None:
        self.code = _prepared.again() if _prepared is not None else _CodeIdentity()
        self.parts: dict[str, Callable[[], object]] = {
            "Airflow's configuration": _configuration,
            "the environment": lambda: (id(os.environ), dict(os.environ)),
            "the working directory": os.getcwd,
            "the umask": _umask,
            "sys.path": lambda: (id(sys.path), tuple(sys.path)),
            "the modules loaded at the start": _ModuleIdentity(),
            "the import hooks": lambda: (
                tuple(map(id, sys.meta_path)),
                tuple(map(id, sys.path_hooks)),
            ),
            "logging": _Logging(),
            "warnings": _warnings,
            "signal handlers": _signals,
            "threads": threading.active_count,
            "the secrets masker": _maskers,
        }
        self.taken = {name: part() for name, part in self.parts.items()}

    def changed(self) -> list[str]:
        """What differs from when it was taken (empty: nothing); a part that cannot be read
        any more counts as changed."""
        found = []
        for name, part in self.parts.items():
            try:
                if part() != self.taken[name]:
                    found.append(name)
            except Exception:
                found.append(name)
        found.extend(self.code.changed())
        return found


class _CodeIdentity:
    """The functions, classes and descriptors of Airflow's modules and of the classes they
    define, as they were. Which names to look at in which namespace is worked out once (an
    itemgetter each); a check is then one pass in C over every value, compared by identity."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.namespaces: list[Mapping[str, Any]] = []
        self.getters: list[Callable[[Any], tuple[Any, ...]]] = []
        for name, module in list(sys.modules.items()):
            if module is None or not (name == "airflow" or name.startswith("airflow.")):
                continue
            namespace = vars(module)
            self._add(name, namespace)
            for value in list(namespace.values()):
                if isinstance(value, type) and value.__module__ == name:
                    self._add(f"{name}.{value.__qualname__}", vars(value))
        self.then = self._values()

    def again(self) -> _CodeIdentity:
        """The same names, their values taken now."""
        self.then = self._values()
        return self

    def _add(self, label: str, namespace: Mapping[str, Any]) -> None:
        names = [key for key, value in list(namespace.items()) if _is_code(value)]
        if names:
            self.labels.append(label)
            self.namespaces.append(namespace)
            self.getters.append(operator.itemgetter(*names, names[0]))  # always a tuple

    def _values(self) -> list[tuple[Any, ...]]:
        return list(map(_call, self.getters, self.namespaces))

    def changed(self) -> list[str]:
        try:
            # ==: tuples compare item by item, identity first; for a function or a class
            # (the values kept), equal means the same object.
            if self._values() == self.then:
                return []
        except Exception:  # a name removed; an odd __eq__
            pass
        return [self._which()]

    def _which(self) -> str:
        """The first name that changed (the slow way: only once something did)."""
        # zip(strict=...) is Python 3.10's; the lists are built together
        for label, namespace, getter, then in zip(  # noqa: B905
            self.labels, self.namespaces, self.getters, self.then
        ):
            for key, value in zip(getter.__reduce__()[1], then):  # noqa: B905
                if namespace.get(key, _MISSING) is not value:
                    return f"{label}.{key}"
        return "Airflow's functions and classes"


_prepared: _CodeIdentity | None = None


def prepare() -> None:
    """Work out which names to look at once, in the helper once it is warm (15-35 ms on 3.3.2):
    its workers inherit that and take only the values."""
    global _prepared
    _prepared = _CodeIdentity()


class _ModuleIdentity:
    """Each module loaded at the start is still the same object in sys.modules (a module
    imported later may come and go: the worker forgets the DAG folders' own)."""

    def __init__(self) -> None:
        names = [name for name, module in sys.modules.items() if module is not None]
        self.getter = operator.itemgetter(*names, names[0])

    def __call__(self) -> tuple[int, ...]:
        return tuple(map(id, self.getter(sys.modules)))


def _is_code(value: object) -> bool:
    return callable(value) or isinstance(value, _DESCRIPTORS)


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _configuration() -> tuple[object, ...]:
    """Each configuration object: every option set (its sections and defaults, and those of
    the parsers it keeps defaults in), and every other attribute (by identity; the large
    descriptions of the options are never changed in place by Airflow)."""
    found: dict[int, object] = {}
    for name in CONFIGURATIONS:
        conf = getattr(sys.modules.get(name), "conf", None)
        if conf is not None and id(conf) not in found:
            found[id(conf)] = tuple(
                (key, _attribute(key, value)) for key, value in [("", conf), *vars(conf).items()]
            )
    return tuple(found.items())


def _attribute(key: str, value: object) -> object:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, configparser.RawConfigParser):
        sections = vars(value).get("_sections", {})
        defaults = vars(value).get("_defaults", {})
        return (
            id(value),
            tuple((section, tuple(options.items())) for section, options in sections.items()),
            tuple(defaults.items()),
        )
    if isinstance(value, (set, frozenset)):
        return (id(value), frozenset(value))
    if isinstance(value, dict) and "description" not in key:
        return _frozen(value, depth=2)
    return id(value)


def _frozen(value: object, depth: int) -> object:
    """A comparable copy of ``value``: scalars as they are, containers by content down to
    ``depth``, any other object by identity."""
    if isinstance(value, _SCALARS):
        return value
    if depth == 0:
        return id(value)
    if isinstance(value, dict):
        return (id(value), tuple((key, _frozen(item, depth - 1)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return (id(value), tuple(_frozen(item, depth - 1) for item in value))
    if isinstance(value, (set, frozenset)):
        return (id(value), frozenset(value))
    return id(value)


class _Logging:
    """Logging's settings, and each logger there was at the start: its handlers (their level,
    formatter and filters), filters, level, propagation and whether it is disabled. A logger
    made later is a new name's: nothing logged under an existing name goes through it."""

    def __init__(self) -> None:
        self.names = ["", *(name for name, _ in _named_loggers())]

    def __call__(self) -> tuple[object, ...]:
        known = logging.Logger.manager.loggerDict
        loggers = [logging.getLogger() if not name else known.get(name) for name in self.names]
        states: list[object] = []
        handlers: dict[int, logging.Handler] = {}
        for logger in loggers:
            if not isinstance(logger, logging.Logger):
                states.append(id(logger))
                continue
            handlers.update((id(handler), handler) for handler in logger.handlers)
            states.append(
                (
                    id(logger),
                    tuple(map(id, logger.handlers)),
                    tuple(map(id, logger.filters)),
                    logger.level,
                    logger.propagate,
                    logger.disabled,
                )
            )
        return (
            logging.root.manager.disable,
            logging.raiseExceptions,
            id(logging.getLoggerClass()),
            id(logging.getLogRecordFactory()),
            id(logging.lastResort),
            tuple(states),
            tuple(
                (key, handler.level, id(handler.formatter), tuple(map(id, handler.filters)))
                for key, handler in handlers.items()
            ),
        )


def _named_loggers() -> Iterator[tuple[str, logging.Logger]]:
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            yield name, logger


def _warnings() -> tuple[object, ...]:
    return (
        id(warnings.filters),
        tuple(warnings.filters),
        id(warnings.showwarning),
        id(warnings.formatwarning),
        tuple(sys.warnoptions),
    )


def _signals() -> tuple[object, ...]:
    return (
        tuple(map(id, map(signal.getsignal, _SIGNALS))),
        frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, ())),
        signal.getitimer(signal.ITIMER_REAL),
    )


_SIGNALS = sorted(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})


def _maskers() -> tuple[object, ...]:
    """Each secrets masker: its patterns and settings, and the settings its class keeps."""
    found = []
    for name in MASKERS:
        make = getattr(sys.modules.get(name), "_secrets_masker", None)
        if make is not None:
            masker = make()
            settings = tuple(
                (key, _frozen(value, 1))
                for key, value in vars(type(masker)).items()
                if not _is_code(value)
            )
            found.append((id(masker), _frozen(vars(masker), 2), settings))
    return tuple(found)
