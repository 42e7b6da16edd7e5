"""What the warm helper does once, before any request: import what CLI commands need and
do the work that is the same for every command, so that its children start from there.

Part of the warm helper (warm_helper.py): run with Airflow's Python, standard library and
Airflow only.
"""

from __future__ import annotations

import copy
import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import Any

MAX_SCHEDULES_KEPT = 4096  # (expression, timezone) pairs: one per schedule in use, and a bound

# Modules the command functions import lazily, on top of every airflow.cli.commands module.
# Missing ones (a different Airflow major) are skipped; others that fail are reported.
LAZY_IMPORTS = (
    "airflow.models",
    "airflow.models.dagbag",
    "airflow.dag_processing.dagbag",
    "airflow.models.serialized_dag",
    "airflow.serialization.serialized_objects",
    "airflow.cli.simple_table",
    "airflow.utils.cli",
    "airflow.providers_manager",
    "airflow.api.common.trigger_dag",
    "airflow.api.client.local_client",
    "airflow.jobs.job",
    "airflow.timetables.interval",
    "airflow.sdk",
    "airflow.sdk.definitions.dag",
    "airflow.secrets.local_filesystem",
    "airflow.utils.db",
    "airflow.migrations.utils",  # the CLI checks the schema with alembic
    "airflow.dag_processing.bundles.local",
    "airflow.models.renderedtifields",
    "airflow.models.dag_favorite",
    "airflow.timetables.trigger",
    "airflow.sdk.bases.sensor",
    "airflow.sdk.bases.decorator",
    "airflow.sdk.definitions.decorators",
    "airflow.decorators",  # Airflow 2's DAG-file imports
    "airflow.operators.bash",
    "airflow.operators.python",
    "airflow.operators.empty",
    "airflow.sensors.external_task",
    "airflow.operators.subdag",  # Airflow 2 serializes DAGs with it
    "airflow.api.common.experimental.get_task_instance",  # Airflow 2's tasks state
    # Airflow 3 reads and writes DAGs with the standard provider's operators and sensors
    "airflow.providers.standard.operators.bash",
    "airflow.providers.standard.operators.python",
    "airflow.providers.standard.operators.empty",
    "airflow.providers.standard.operators.trigger_dagrun",
    "airflow.providers.standard.sensors.external_task",
    "airflow.providers.common.compat.openlineage.check",
    "alembic.migration",
    "alembic.script",
    "alembic.runtime.environment",
    "mako.template",
    "tabulate",
    "rich.console",
    "rich.table",
    "rich._emoji_codes",
    "pendulum",
    "packaging.requirements",
    "tomllib",
    "httpx",  # the CLI's API client (pools, ...)
    "httpcore",
    "timeit",
    "setproctitle",
)


def warm_up() -> dict[str, Any]:
    """Import what a CLI command needs; return what the daemon should know and watch."""
    # The configuration first, as airflow/__main__.py does (import cycles otherwise).
    configuration = importlib.import_module("airflow.configuration")
    airflow = importlib.import_module("airflow")
    importlib.import_module("airflow.__main__")
    importlib.import_module("airflow.cli.cli_parser").get_parser()
    commands = importlib.import_module("airflow.cli.commands")
    names = [
        info.name for info in pkgutil.walk_packages(commands.__path__, "airflow.cli.commands.")
    ]
    failed: dict[str, str] = {}
    for name in [*names, *LAZY_IMPORTS]:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            # A module of the other Airflow major, or an optional extra that is not installed:
            # a command that needs it imports it in its child (slower, never wrong).
            if not _missing_on_purpose(exc, name):
                failed[name] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    for name, work in SHARED_WORK:
        try:
            work()
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    package = os.path.dirname(str(airflow.__file__))
    watch = [
        configuration.AIRFLOW_CONFIG,
        str(airflow.__file__),  # replaced by an upgrade
        # The distributions installed beside it (bridge.catalogue.cli_cache.stamp): not the
        # folder's mtime, which moves whenever Python writes __pycache__.
        os.path.join(os.path.dirname(package), "*.dist-info"),
        configuration.conf.get("core", "plugins_folder", fallback=""),
    ]
    return {
        "version": airflow.__version__,
        "watch": [path for path in watch if path],
        "failed_imports": failed,
    }


def configure_mappers() -> None:
    """SQLAlchemy sets up the ORM mappers at the first query; do that once here, not in every
    child (it costs more than a typical command's own work)."""
    importlib.import_module("sqlalchemy.orm").configure_mappers()


def load_providers_configuration() -> None:
    """What @providers_configuration_loaded does before nearly every command: discover the
    installed providers and merge their configuration defaults (~70 ms on 2.11). Done once,
    here, with the environment every child of this helper runs with."""
    importlib.import_module(
        "airflow.providers_manager"
    ).ProvidersManager().initialize_providers_configuration()


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
    build_from_config = script_directory.from_config.__func__
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

    script_directory.from_config = classmethod(from_config)
    importlib.import_module("airflow.utils.db")._get_script_object().get_heads()


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

    create_ssl_context()  # built here, before the children are forked
    setattr(config, "create_ssl_context", create_ssl_context)  # noqa: B010 (not typed here)
    if getattr(transports, "create_ssl_context", None) is build:
        setattr(transports, "create_ssl_context", create_ssl_context)  # noqa: B010


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
        get_text = importlib.import_module("cron_descriptor.GetText").GetText
    except ImportError:
        return  # an Airflow without cron-descriptor
    load = get_text.load_locale
    loaded: dict[tuple[Any, Any], Any] = {}

    def load_locale(self: Any, locale_code: Any, locale_location: Any = None) -> Any:
        key = (locale_code, locale_location)
        if key not in loaded:
            loaded[key] = load(self, locale_code, locale_location)
        return copy.copy(loaded[key])

    get_text.load_locale = load_locale
    get_text("en_US")  # the default locale, read here, before the children are forked


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
    mixin = importlib.import_module("airflow.timetables._cron").CronMixin
    build = mixin.__init__
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

    mixin.__init__ = __init__


# Work the same for every command, done once by the helper: (what /health calls it, how).
SHARED_WORK: tuple[tuple[str, Callable[[], None]], ...] = (
    ("sqlalchemy.orm.configure_mappers()", configure_mappers),
    ("migration scripts", share_migration_scripts),
    ("providers configuration", load_providers_configuration),
    ("TLS context", share_default_tls_context),
    ("cron translations", share_cron_translations),
    ("cron schedules", share_cron_schedules),
)


def _missing_on_purpose(exc: ImportError, name: str) -> bool:
    """The module itself (or its package) does not exist in this Airflow: expected, since
    LAZY_IMPORTS names the modules of both majors."""
    missing = getattr(exc, "name", None) or ""
    return isinstance(exc, ModuleNotFoundError) and name.startswith(missing) and bool(missing)
