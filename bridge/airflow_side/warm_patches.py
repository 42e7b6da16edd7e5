"""The library and Airflow internals the warm helper replaces, once, to share work between its
commands; each one checked before it is replaced. Part of the warm helper (warm_up.py runs
these): standard library and Airflow only.

A replacement relies on the internal being what it was written against: its parameters, and
what it does. So each patch first checks the signature it expects (``inspect.signature``) and
the attributes it uses; then it patches and runs a self-test that compares the patched result
with the unpatched one. On a mismatch it puts the original back (or never replaces it) and
raises :class:`Mismatch`: the helper reports it (``skipped_patches`` on /health) and commands
run without that shortcut, slower but the same.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any

MAX_SCHEDULES_KEPT = 4096  # (expression, timezone) pairs: one per schedule in use, and a bound


class Mismatch(RuntimeError):
    """An internal is not what a patch was written against: it was not (or no longer) patched."""


def expect(where: str, function: Callable[..., Any], parameters: list[str]) -> None:
    """Raise Mismatch unless ``function`` takes exactly ``parameters`` (names, in order)."""
    try:
        found = list(inspect.signature(function).parameters)
    except (TypeError, ValueError) as exc:
        raise Mismatch(f"{where}: no signature to check ({exc})") from exc
    if found != parameters:
        raise Mismatch(f"{where} takes ({', '.join(found)}), not ({', '.join(parameters)})")


def self_test(where: str, undo: Callable[[], None], test: Callable[[], object]) -> None:
    """Run ``test`` with the patch in place; a falsy result or an error undoes it."""
    try:
        passed = test()
    except Exception as exc:
        undo()
        raise Mismatch(f"{where}: self-test failed ({type(exc).__name__}: {exc})") from exc
    if not passed:
        undo()
        raise Mismatch(f"{where}: self-test failed (patched and unpatched results differ)")


def share_migration_scripts() -> None:
    """Load Airflow's migration scripts once, for every child.

    Before most commands the CLI compares the database's migration heads with its own
    (``[database] check_migrations``). Alembic finds its own by compiling and running every
    migration file (over a hundred), in a new ``ScriptDirectory`` each time: 70-100 ms of a
    warm command that answers in 30. The files cannot change while this helper runs (an
    upgrade replaces the dist-info it watches, and a new helper starts), so the revision map
    each ``ScriptDirectory`` builds is kept, per set of folders it reads, and shared. Only
    the map is shared: the heads are still compared with the database's on every command.
    """
    script_directory = importlib.import_module("alembic.script").ScriptDirectory
    db = importlib.import_module("airflow.utils.db")
    where = "alembic ScriptDirectory.from_config"
    original = vars(script_directory).get("from_config")
    if not isinstance(original, classmethod):
        raise Mismatch(f"{where} is not a classmethod")
    build_from_config = original.__func__
    expect(where, build_from_config, ["cls", "config"])
    maps: dict[tuple[Any, ...], Any] = {}

    def from_config(cls: type, config: Any) -> Any:
        script = build_from_config(cls, config)
        folders = (
            script.dir,
            tuple(script.version_locations or ()),
            script.sourceless,
            getattr(script, "recursive_version_locations", False),
        )
        script.revision_map = maps.setdefault(folders, script.revision_map)
        return script

    config = db._get_alembic_config()
    plain = build_from_config(script_directory, config).get_heads()
    script_directory.from_config = classmethod(from_config)

    def shared() -> bool:
        first, second = db._get_script_object(config), db._get_script_object(config)
        return first.revision_map is second.revision_map and second.get_heads() == plain

    self_test(where, lambda: setattr(script_directory, "from_config", original), shared)


def share_default_tls_context() -> None:
    """Build httpx's default TLS context (the CA bundle, loaded and parsed: ~25 ms) once.

    Airflow 3's CLI makes an ``httpx.Client`` for commands such as ``pools get``, even when
    it then reads the database; each client builds that context again. The helper builds
    it once and every child and worker reuses it. Only the default call is shared (verify
    on, no client certificate), per the other arguments and CA environment variables; any
    other call builds its own context, as before. The bundle cannot change under a running
    helper: an upgrade replaces the dist-info the daemon watches, and a new helper starts.
    """
    config = importlib.import_module("httpx._config")
    transports = importlib.import_module("httpx._transports.default")
    build = config.create_ssl_context
    where = "httpx._config.create_ssl_context"
    expect(where, build, ["verify", "cert", "trust_env"])
    defaults = {name: p.default for name, p in inspect.signature(build).parameters.items()}
    if defaults["verify"] is not True or defaults["cert"] is not None:
        raise Mismatch(f"{where}: its defaults are not verify=True, cert=None")
    shared_by_transports = getattr(transports, "create_ssl_context", None) is build
    built: dict[tuple[Any, ...], Any] = {}

    def create_ssl_context(*args: Any, **kwargs: Any) -> Any:
        if args or kwargs.get("verify", True) is not True or kwargs.get("cert") is not None:
            return build(*args, **kwargs)
        key = (
            tuple(sorted(kwargs.items())),
            os.environ.get("SSL_CERT_FILE"),
            os.environ.get("SSL_CERT_DIR"),
        )
        if key not in built:
            built[key] = build(**kwargs)
        return built[key]

    def patch(function: Callable[..., Any]) -> None:
        setattr(config, "create_ssl_context", function)  # noqa: B010 (not typed here)
        if shared_by_transports:
            setattr(transports, "create_ssl_context", function)  # noqa: B010

    patch(create_ssl_context)
    ssl = importlib.import_module("ssl")

    def shared() -> bool:
        context = create_ssl_context()  # built here, before the children are forked
        own = create_ssl_context(verify=False)
        return (
            isinstance(context, ssl.SSLContext)
            and create_ssl_context() is context
            and own is not context
            and context.verify_mode == build().verify_mode
        )

    self_test(where, lambda: patch(build), shared)


def share_cron_translations() -> None:
    """Read cron-descriptor's translation file once, not for every cron expression described.

    Airflow describes a DAG's cron schedule (``CronTriggerTimetable`` and friends) whenever
    it builds or deserializes one, and cron-descriptor opens and parses its ``.mo`` file for
    each description: 18 times in one ``tasks list`` on Airflow 3 (6 ms). The parsed file is
    kept per locale and folder; each description gets its own copy of the translations
    object (cron-descriptor adds a fallback to it) sharing the parsed catalogue. A file that
    cannot be read is not kept: cron-descriptor's own fallback runs, as before.
    """
    try:
        descriptor = importlib.import_module("cron_descriptor")
        get_text = importlib.import_module("cron_descriptor.GetText").GetText
    except ImportError:
        return  # an Airflow without cron-descriptor
    where = "cron_descriptor GetText.load_locale"
    load = get_text.load_locale
    expect(where, load, ["self", "locale_code", "locale_location"])
    loaded: dict[tuple[Any, Any], Any] = {}

    def load_locale(self: Any, locale_code: Any, locale_location: Any = None) -> Any:
        key = (locale_code, locale_location)
        if key not in loaded:
            loaded[key] = load(self, locale_code, locale_location)
        return copy.copy(loaded[key])

    expressions = ("0 0 * * *", "*/5 * * * 1-5", "0 12 1 JAN *")
    plain = [descriptor.get_description(expression) for expression in expressions]
    get_text.load_locale = load_locale

    def same() -> bool:
        get_text("en_US")  # the default locale, read here, before the children are forked
        return [descriptor.get_description(expression) for expression in expressions] == plain

    self_test(where, lambda: setattr(get_text, "load_locale", load), same)


def share_cron_schedules() -> None:
    """Check and describe each cron schedule once, not each time a timetable is built.

    Airflow builds a cron timetable (``CronMixin.__init__``) whenever it reads a DAG's
    schedule, also from its serialized form: 18 times in one ``tasks list`` on Airflow 3,
    each one expanding the expression with croniter and describing it with cron-descriptor
    (1.8 ms in all). What that builds depends on the expression and the timezone only: the
    expression, the timezone and a description, all immutable. The first build of each
    (expression, timezone) runs as before and what it set is kept; a later one gets the
    same attributes. Whatever else a timetable's own ``__init__`` sets is untouched, and a
    timezone that cannot be a key (unhashable) builds as before.
    """
    cron = importlib.import_module("airflow.timetables._cron")
    mixin = cron.CronMixin
    where = "airflow.timetables._cron.CronMixin.__init__"
    build = vars(mixin).get("__init__")
    if build is None:
        raise Mismatch(f"{where} is not defined there")
    expect(where, build, ["self", "cron", "timezone"])
    built: dict[tuple[Any, ...], dict[str, Any]] = {}

    def __init__(self: Any, cron: Any, timezone: Any) -> None:
        key = (type(cron), cron, type(timezone), timezone)
        try:
            known = built.get(key)
        except TypeError:  # unhashable
            build(self, cron, timezone)
            return
        if known is not None:
            vars(self).update(known)
            return
        before = dict(vars(self))
        build(self, cron, timezone)
        if len(built) < MAX_SCHEDULES_KEPT:
            built[key] = {
                name: value
                for name, value in vars(self).items()
                if name not in before or before[name] is not value
            }

    schedules = [("0 0 * * *", "UTC"), ("*/5 * * * 1-5", "Europe/Berlin"), ("not cron", "UTC")]

    def timetables() -> list[dict[str, str]]:
        made = [_Timetable(expression, zone) for expression, zone in schedules]
        return [{key: repr(value) for key, value in sorted(vars(t).items())} for t in made]

    class _Timetable(mixin):  # type: ignore[misc, valid-type]
        pass

    plain = timetables()
    mixin.__init__ = __init__
    self_test(
        where,
        lambda: setattr(mixin, "__init__", build),
        lambda: timetables() == plain and timetables() == plain,
    )
