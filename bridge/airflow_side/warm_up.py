"""What the warm helper does once, before any request: import what CLI commands need and
do the work that is the same for every command, so that its children start from there.

Part of the warm helper (warm_helper.py): run with Airflow's Python, standard library and
Airflow only.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import Any

if __package__:  # imported as part of the bridge (its tests)
    from bridge.airflow_side import warm_fingerprint, warm_patches
else:  # run by path, as the daemon runs it: this folder is sys.path[0]
    import warm_fingerprint  # type: ignore[import-not-found, no-redef]
    import warm_patches  # type: ignore[import-not-found, no-redef]

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
    """Import what a CLI command needs and do the work shared by every command
    (SHARED_WORK: a patch whose internal is not what it expects is skipped and named);
    return what the daemon should know and watch."""
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
    skipped: dict[str, str] = {}
    for name, work in SHARED_WORK:
        try:
            work()
        except warm_patches.Mismatch as exc:  # not patched: commands run without it
            skipped[name] = str(exc)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    warm_fingerprint.prepare()  # for the workers: what Airflow's modules hold now
    package = os.path.dirname(str(airflow.__file__))
    watch = [
        # Without the bridge's own [rest_api_plugin] section: the daemon stamps it so
        # (bridge.catalogue.cli_cache.AIRFLOW_SECTIONS), and an edit there changes nothing here.
        configuration.AIRFLOW_CONFIG + "#airflow-sections",
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
        "skipped_patches": skipped,
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


# Work the same for every command, done once by the helper: (what /health calls it, how).
SHARED_WORK: tuple[tuple[str, Callable[[], None]], ...] = (
    ("sqlalchemy.orm.configure_mappers()", configure_mappers),
    ("migration scripts", warm_patches.share_migration_scripts),
    ("providers configuration", load_providers_configuration),
    ("TLS context", warm_patches.share_default_tls_context),
    ("cron translations", warm_patches.share_cron_translations),
    ("cron schedules", warm_patches.share_cron_schedules),
)


def _missing_on_purpose(exc: ImportError, name: str) -> bool:
    """The module itself (or its package) does not exist in this Airflow: expected, since
    LAZY_IMPORTS names the modules of both majors."""
    missing = getattr(exc, "name", None) or ""
    return isinstance(exc, ModuleNotFoundError) and name.startswith(missing) and bool(missing)
