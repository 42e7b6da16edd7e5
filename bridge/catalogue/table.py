"""The table of every seed API: arguments (seed names) and how each runs on Airflow 2.x / 3.x.

This is the one source of truth for validation, dispatch, the test page's forms, the OpenAPI
document and the generated API reference. Arguments are defined once here and shared between
APIs where the seed shared them.
"""

from __future__ import annotations

from typing import Any

from bridge.catalogue.actions import (
    CONNECTION_FIELDS,
    NO_SUBDIR_ON_3,
    plan_connections,
    plan_dag_state_2,
    plan_list_dags,
    plan_pool,
    plan_variables,
    summarize_trigger,
)
from bridge.catalogue.model import (
    After,
    Api,
    Arg,
    Cli,
    Confinement,
    Handler,
    Kind,
    Unavailable,
)
from bridge.config.tokens import Scope
from bridge.text.redact import Secret

# --- arguments shared by several APIs ---------------------------------------------------------
DAG_ID = Arg("dag_id", Kind.ID, "The id of the dag", required=True)
TASK_ID = Arg("task_id", Kind.ID, "The id of the task", required=True)
EXECUTION_DATE = Arg(
    "execution_date",
    Kind.DATE_OR_RUN,
    "The execution (logical) date of the DAG run, e.g. 2017-01-02T03:04:05, or a run_id",
    required=True,
)
SUBDIR = Arg("subdir", Kind.DAGS_PATH, "File or directory (inside the dags folder) to look in")
TASK_REGEX = Arg("task_regex", Kind.TEXT, "A regex to filter specific task_ids")
START_DATE = Arg("start_date", Kind.DATE, "Start date, YYYY-MM-DD (or an ISO datetime)")
END_DATE = Arg("end_date", Kind.DATE, "End date, YYYY-MM-DD (or an ISO datetime)")
MARK_SUCCESS = Arg("mark_success", Kind.BOOL, "Mark jobs as succeeded without running them")
LOCAL = Arg("local", Kind.BOOL, "Run the task using the LocalExecutor")
POOL = Arg("pool", Kind.ID, "Resource pool to use")
DRY_RUN = Arg("dry_run", Kind.BOOL, "Perform a dry run")
IGNORE_DEPENDENCIES = Arg(
    "ignore_dependencies", Kind.BOOL, "Ignore task-specific dependencies (upstream, retry delay)"
)
DO_PICKLE = Arg("do_pickle", Kind.BOOL, "Pickle the DAG and send it to the workers")
PID = Arg("pid", Kind.SERVER_PATH, "PID file location (inside the allowed folders)")
DAEMON = Arg("daemon", Kind.BOOL, "Daemonize instead of running in the foreground")
STDOUT = Arg("stdout", Kind.SERVER_PATH, "Redirect stdout to this file (inside allowed folders)")
STDERR = Arg("stderr", Kind.SERVER_PATH, "Redirect stderr to this file (inside allowed folders)")
LOG_FILE = Arg("log-file", Kind.SERVER_PATH, "Location of the log file (inside allowed folders)")
SERVICE_ARGS = (PID, DAEMON, STDOUT, STDERR, LOG_FILE)
IMPORT_ARG = Arg(
    "import",
    Kind.DOCUMENT,
    "The JSON to import: as the value, or an uploaded file (multipart)",
    secret=Secret.DOCUMENT,
)
EXPORT_ARG = Arg("export", Kind.TEXT, "Export everything; the JSON comes back in 'data'")
SERVICE_OPTIONS = {
    "pid": "--pid",
    "daemon": "--daemon",
    "stdout": "--stdout",
    "stderr": "--stderr",
    "log-file": "--log-file",
}
DAG_TASK_DATE = ("dag_id", "task_id", "execution_date")
SUBDIR_OPTION = {"subdir": "--subdir"}


def _dag_task_date(words: tuple[str, ...], major: int, **extra: Any) -> Cli:
    """The common 'dag_id task_id execution_date [--subdir]' command shape."""
    options = extra.pop("options", {})
    if major == 2:
        return Cli(words, DAG_TASK_DATE, options={**SUBDIR_OPTION, **options}, **extra)
    return Cli(words, DAG_TASK_DATE, options=options, ignored=NO_SUBDIR_ON_3, **extra)


def _dag_only(words: tuple[str, ...], major: int, **extra: Any) -> Cli:
    if major == 2:
        return Cli(words, positionals=("dag_id",), options=SUBDIR_OPTION, **extra)
    return Cli(words, positionals=("dag_id",), ignored=NO_SUBDIR_ON_3, **extra)


def _by_version(make: Any, *args: Any, **kwargs: Any) -> dict[int, Any]:
    return {major: make(*args, major, **kwargs) for major in (2, 3)}


REMOVED_IN_3 = "removed in Airflow 3"
SEED_ONLY = "removed from the Airflow CLI in 2.0"
SERVICE_REASONS = {"do_pickle": "DAG pickling was removed from Airflow"}


APIS: tuple[Api, ...] = (
    Api(
        "version",
        "Displays the version of Airflow you're using",
        handler=Handler.AIRFLOW_VERSION,
        scope=Scope.READ,
        confinement=Confinement.NO_DAG,
    ),
    Api(
        "rest_api_plugin_version",
        "Displays the version of this REST API bridge you're using",
        handler=Handler.BRIDGE_VERSION,
        scope=Scope.READ,
        confinement=Confinement.NO_DAG,
    ),
    Api(
        "render",
        "Render a task instance's template(s)",
        (DAG_ID, TASK_ID, EXECUTION_DATE, SUBDIR),
        _by_version(_dag_task_date, ("tasks", "render")),
        scope=Scope.READ,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "variables",
        "CRUD operations on variables: one of set ('KEY VALUE'), get, delete, import, export; "
        "none lists the keys",
        (
            Arg(
                "set",
                Kind.TEXT,
                "Set a variable: 'KEY VALUE' (the value may contain spaces)",
                secret=Secret.KEY_VALUE,
            ),
            Arg("get", Kind.ID, "Get the value of a variable"),
            Arg("json", Kind.BOOL, "Deserialize (get) or serialize (set) a JSON variable"),
            Arg("default", Kind.TEXT, "Default value returned if the variable does not exist"),
            IMPORT_ARG,
            EXPORT_ARG,
            Arg("delete", Kind.ID, "Delete a variable"),
            Arg("cmd", Kind.TEXT, "With cmd=set: set 'key' to 'value' (the seed page's form)"),
            Arg("key", Kind.ID, "Variable key, with cmd=set"),
            Arg("value", Kind.TEXT, "Variable value, with cmd=set", secret=Secret.KEYED),
        ),
        {2: plan_variables, 3: plan_variables},
        scope=Scope.OPERATE,
    ),
    Api(
        "connections",
        "List/Add/Delete/Import/Export connections",
        (
            Arg("list", Kind.BOOL, "List all connections"),
            Arg("add", Kind.BOOL, "Add a connection"),
            Arg("delete", Kind.BOOL, "Delete a connection"),
            Arg("conn_id", Kind.ID, "Connection id, required to add/delete a connection"),
            *CONNECTION_FIELDS,
            IMPORT_ARG,
            EXPORT_ARG,
        ),
        {2: plan_connections, 3: plan_connections},
        mask_output=True,
        scope=Scope.OPERATE,
    ),
    Api(
        "pause",
        "Pauses a DAG",
        (DAG_ID, SUBDIR),
        _by_version(_dag_only, ("dags", "pause"), fixed=("--yes",)),
        leaves={"is_paused": True},
        scope=Scope.OPERATE,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "unpause",
        "Unpauses a DAG",
        (DAG_ID, SUBDIR),
        _by_version(_dag_only, ("dags", "unpause"), fixed=("--yes",)),
        leaves={"is_paused": False},
        scope=Scope.OPERATE,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "task_failed_deps",
        "Returns the unmet dependencies for a task instance from the scheduler's perspective",
        (DAG_ID, TASK_ID, EXECUTION_DATE, SUBDIR),
        _by_version(_dag_task_date, ("tasks", "failed-deps")),
        scope=Scope.READ,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "trigger_dag",
        "Trigger a DAG run; the envelope's dag_run says which run was created",
        (
            DAG_ID,
            SUBDIR,
            Arg("run_id", Kind.RUN_ID, "Helps to identify this run"),
            Arg("conf", Kind.JSON, "JSON object stored as the DagRun's conf"),
            Arg("exec_date", Kind.DATE, "The execution (logical) date of the run"),
            Arg(
                "wait",
                Kind.BOOL,
                "Follow the new run until it ends (a scheduler must run it): OK only if it "
                "succeeded, else ERROR with its state and failed tasks",
                for_bridge=True,
            ),
            Arg(
                "wait_timeout",
                Kind.INT,
                "Seconds to follow the run (default: command_timeout); the run goes on",
                for_bridge=True,
            ),
        ),
        {
            2: Cli(
                ("dags", "trigger"),
                positionals=("dag_id",),
                options={
                    "run_id": "--run-id",
                    "conf": "--conf",
                    "exec_date": "--exec-date",
                    **SUBDIR_OPTION,
                },
                always_json=True,
            ),
            3: Cli(
                ("dags", "trigger"),
                positionals=("dag_id",),
                options={"run_id": "--run-id", "conf": "--conf", "exec_date": "--logical-date"},
                ignored=NO_SUBDIR_ON_3,
                always_json=True,
            ),
        },
        summarize=summarize_trigger,
        scope=Scope.OPERATE,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "test",
        "Test a task instance: run it without checking dependencies or recording its state",
        (
            DAG_ID,
            TASK_ID,
            EXECUTION_DATE,
            SUBDIR,
            DRY_RUN,
            Arg("task_params", Kind.JSON, "A JSON params dict sent to the task"),
        ),
        {
            2: _dag_task_date(
                ("tasks", "test"),
                2,
                options={"dry_run": "--dry-run", "task_params": "--task-params"},
            ),
            3: _dag_task_date(
                ("tasks", "test"),
                3,
                options={"task_params": "--task-params"},
                reasons={"dry_run": REMOVED_IN_3 + "; use render to see templated fields"},
            ),
        },
        scope=Scope.OPERATE,
        confinement=Confinement.ONE_DAG,
        # Airflow 3's `tasks test` parses the whole bundle, logging every file that does
        # not import on stdout, and takes no file to limit it to (Airflow 2: --subdir).
        confined_hides_stdout=(3,),
    ),
    Api(
        "dag_state",
        "Get the status of a dag run",
        (
            DAG_ID,
            Arg(
                "execution_date",
                Kind.DATE_OR_RUN,
                "The execution (logical) date of the DAG run, or its run_id",
                required=True,
            ),
            SUBDIR,
        ),
        {
            2: plan_dag_state_2,
            3: Cli(
                ("dags", "state"),
                positionals=("dag_id", "execution_date"),
                ignored=NO_SUBDIR_ON_3,
            ),
        },
        scope=Scope.READ,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "run",
        "Run a single task instance",
        (
            DAG_ID,
            TASK_ID,
            EXECUTION_DATE,
            SUBDIR,
            MARK_SUCCESS,
            Arg("force", Kind.BOOL, "Ignore previous task instance state, rerun regardless"),
            POOL,
            Arg("cfg_path", Kind.SERVER_PATH, "Config file to use instead of airflow.cfg"),
            LOCAL,
            Arg("ignore_all_dependencies", Kind.BOOL, "Ignore all non-critical dependencies"),
            IGNORE_DEPENDENCIES,
            Arg("ignore_depends_on_past", Kind.BOOL, "Ignore depends_on_past dependencies"),
            Arg("ship_dag", Kind.BOOL, "Pickle (serialize) the DAG and ship it to the worker"),
            Arg("pickle", Kind.INT, "Serialized pickle id of the DAG (used internally)"),
        ),
        {
            2: _dag_task_date(
                ("tasks", "run"),
                2,
                options={
                    "mark_success": "--mark-success",
                    "force": "--force",
                    "pool": "--pool",
                    "cfg_path": "--cfg-path",
                    "local": "--local",
                    "ignore_all_dependencies": "--ignore-all-dependencies",
                    "ignore_dependencies": "--ignore-dependencies",
                    "ignore_depends_on_past": "--ignore-depends-on-past",
                    "ship_dag": "--ship-dag",
                    "pickle": "--pickle",
                },
            ),
            3: Unavailable(
                "'airflow tasks run' was removed in Airflow 3: task instances run only through "
                "an executor. Use trigger_dag (with a scheduler running) to run the DAG, or "
                "test to run one task in place."
            ),
        },
        scope=Scope.OPERATE,
        confinement=Confinement.ONE_DAG,
        # Airflow 2 runs the task of whatever DAG the pickle holds, whatever dag_id says.
        confined_refuses=("ship_dag", "pickle"),
    ),
    Api(
        "list_tasks",
        "List the tasks within a DAG",
        (DAG_ID, Arg("tree", Kind.BOOL, "Tree view"), SUBDIR),
        {
            2: Cli(
                ("tasks", "list"),
                positionals=("dag_id",),
                options={**SUBDIR_OPTION, "tree": "--tree"},
            ),
            3: Cli(
                ("tasks", "list"),
                positionals=("dag_id",),
                ignored=NO_SUBDIR_ON_3,
                reasons={"tree": REMOVED_IN_3 + "; 'airflow dags show' draws the graph"},
            ),
        },
        scope=Scope.READ,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "backfill",
        "Run subsections of a DAG for a specified date range",
        (
            DAG_ID,
            TASK_REGEX,
            START_DATE,
            END_DATE,
            MARK_SUCCESS,
            LOCAL,
            Arg("donot_pickle", Kind.BOOL, "Do not pickle the DAG for the workers"),
            Arg("include_adhoc", Kind.BOOL, "Include dags with the adhoc argument"),
            IGNORE_DEPENDENCIES,
            Arg(
                "ignore_first_depends_on_past",
                Kind.BOOL,
                "Ignore depends_on_past for the first set of tasks only",
            ),
            SUBDIR,
            POOL,
            DRY_RUN,
        ),
        {
            2: Cli(
                ("dags", "backfill"),
                positionals=("dag_id",),
                fixed=("--yes",),
                options={
                    **SUBDIR_OPTION,
                    "task_regex": "--task-regex",
                    "start_date": "--start-date",
                    "end_date": "--end-date",
                    "mark_success": "--mark-success",
                    "local": "--local",
                    "donot_pickle": "--donot-pickle",
                    "ignore_dependencies": "--ignore-dependencies",
                    "ignore_first_depends_on_past": "--ignore-first-depends-on-past",
                    "pool": "--pool",
                    "dry_run": "--dry-run",
                },
                reasons={"include_adhoc": SEED_ONLY},
            ),
            3: Cli(
                ("backfill", "create"),
                options={
                    "dag_id": "--dag-id",
                    "start_date": "--from-date",
                    "end_date": "--to-date",
                    "dry_run": "--dry-run",
                },
                ignored=NO_SUBDIR_ON_3,
                also_required=("start_date", "end_date"),
                reasons={
                    name: "Airflow 3 backfills are created for the scheduler to run, which "
                    "takes no per-run task options"
                    for name in (
                        "task_regex",
                        "mark_success",
                        "local",
                        "donot_pickle",
                        "include_adhoc",
                        "ignore_dependencies",
                        "ignore_first_depends_on_past",
                        "pool",
                    )
                },
            ),
        },
        scope=Scope.OPERATE,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "list_dags",
        "List all the DAGs (report=true: the DagBag loading report)",
        (SUBDIR, Arg("report", Kind.BOOL, "Show the DagBag loading report")),
        {2: plan_list_dags, 3: plan_list_dags},
        scope=Scope.READ,
        confinement=Confinement.DAG_LIST,
        confined_refuses=("report",),
    ),
    Api(
        "kerberos",
        "Start a kerberos ticket renewer",
        (
            Arg("principal", Kind.TEXT, "kerberos principal", required=True),
            Arg("keytab", Kind.SERVER_PATH, "keytab (inside the allowed folders)"),
            *SERVICE_ARGS,
        ),
        _by_version(
            lambda major: Cli(
                ("kerberos",),
                positionals=("principal",),
                options={"keytab": "--keytab", **SERVICE_OPTIONS},
            )
        ),
        requires_command="kerberos",
        service="kerberos",
        scope=Scope.ADMIN,
    ),
    Api(
        "worker",
        "Start a Celery worker node",
        (
            DO_PICKLE,
            Arg("queues", Kind.TEXT, "Comma delimited list of queues to serve"),
            Arg("concurrency", Kind.INT, "The number of worker processes"),
            *SERVICE_ARGS,
        ),
        _by_version(
            lambda major: Cli(
                ("celery", "worker"),
                options={"queues": "--queues", "concurrency": "--concurrency", **SERVICE_OPTIONS},
                reasons=SERVICE_REASONS,
            )
        ),
        requires_command="celery",
        service="worker",
        scope=Scope.ADMIN,
    ),
    Api(
        "flower",
        "Start a Celery Flower",
        (
            Arg("hostname", Kind.TEXT, "Set the hostname on which to run the server"),
            Arg("port", Kind.INT, "The port on which to run the server"),
            Arg("flower_conf", Kind.SERVER_PATH, "Configuration file for flower"),
            Arg("broker_api", Kind.TEXT, "Broker api"),
            *SERVICE_ARGS,
        ),
        _by_version(
            lambda major: Cli(
                ("celery", "flower"),
                options={
                    "hostname": "--hostname",
                    "port": "--port",
                    "flower_conf": "--flower-conf",
                    "broker_api": "--broker-api",
                    **SERVICE_OPTIONS,
                },
            )
        ),
        requires_command="celery",
        service="flower",
        scope=Scope.ADMIN,
    ),
    Api(
        "scheduler",
        "Start a scheduler instance",
        (
            Arg("dag_id", Kind.ID, "The id of the dag"),
            SUBDIR,
            Arg("run-duration", Kind.INT, "Set number of seconds to execute before exiting"),
            Arg("num_runs", Kind.INT, "Set the number of runs to execute before exiting"),
            DO_PICKLE,
            *SERVICE_ARGS,
        ),
        {
            2: Cli(
                ("scheduler",),
                options={
                    **SUBDIR_OPTION,
                    "num_runs": "--num-runs",
                    "do_pickle": "--do-pickle",
                    **SERVICE_OPTIONS,
                },
                reasons={"dag_id": SEED_ONLY, "run-duration": SEED_ONLY},
            ),
            3: Cli(
                ("scheduler",),
                options={"num_runs": "--num-runs", **SERVICE_OPTIONS},
                ignored=NO_SUBDIR_ON_3,
                reasons={"dag_id": SEED_ONLY, "run-duration": SEED_ONLY, **SERVICE_REASONS},
            ),
        },
        requires_command="scheduler",
        service="scheduler",
        scope=Scope.ADMIN,
    ),
    Api(
        "task_state",
        "Get the status of a task instance",
        (DAG_ID, TASK_ID, EXECUTION_DATE, SUBDIR),
        _by_version(_dag_task_date, ("tasks", "state")),
        scope=Scope.READ,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "pool",
        "CRUD operations on pools: set ('NAME SLOTS DESCRIPTION'), get, delete, import, "
        "export; none lists",
        (
            Arg("set", Kind.TEXT, "Set a pool: 'NAME SLOTS DESCRIPTION'"),
            Arg("get", Kind.ID, "Get pool info"),
            Arg("delete", Kind.ID, "Delete a pool"),
            Arg("cmd", Kind.TEXT, "With cmd=set: pool_name, slot_count, pool_description"),
            Arg("pool_name", Kind.ID, "Pool name, with cmd=set"),
            Arg("slot_count", Kind.INT, "Slot count, with cmd=set"),
            Arg("pool_description", Kind.TEXT, "Description, with cmd=set"),
            IMPORT_ARG,
            EXPORT_ARG,
        ),
        {2: plan_pool, 3: plan_pool},
        scope=Scope.OPERATE,
    ),
    Api(
        "serve_logs",
        "Serve logs generated by workers",
        (),
        _by_version(
            lambda major: Unavailable(
                f"Airflow {major}.x has no separate serve_logs command: the log server runs "
                "inside 'airflow scheduler' and 'airflow celery worker' (use the scheduler or "
                "worker API)"
            )
        ),
        scope=Scope.ADMIN,
    ),
    Api(
        "clear",
        "Clear a set of task instances, as if they never ran (never prompts)",
        (
            DAG_ID,
            TASK_REGEX,
            START_DATE,
            END_DATE,
            SUBDIR,
            Arg("upstream", Kind.BOOL, "Include upstream tasks"),
            Arg("downstream", Kind.BOOL, "Include downstream tasks"),
            Arg("only_failed", Kind.BOOL, "Only failed jobs"),
            Arg("only_running", Kind.BOOL, "Only running jobs"),
            Arg("exclude_subdags", Kind.BOOL, "Exclude subdags"),
            Arg(
                "exclude_parentdag",
                Kind.BOOL,
                "Exclude ParentDAGs if the task cleared is a part of a SubDAG",
            ),
        ),
        {
            major: Cli(
                ("tasks", "clear"),
                positionals=("dag_id",),
                fixed=("--yes",),
                options={
                    "task_regex": "--task-regex",
                    "start_date": "--start-date",
                    "end_date": "--end-date",
                    "upstream": "--upstream",
                    "downstream": "--downstream",
                    "only_failed": "--only-failed",
                    "only_running": "--only-running",
                    **(
                        {
                            **SUBDIR_OPTION,
                            "exclude_subdags": "--exclude-subdags",
                            "exclude_parentdag": "--exclude-parentdag",
                        }
                        if major == 2
                        else {}
                    ),
                },
                ignored=NO_SUBDIR_ON_3 if major == 3 else {},
                reasons={
                    "exclude_subdags": "SubDAGs were removed in Airflow 3",
                    "exclude_parentdag": "SubDAGs were removed in Airflow 3",
                },
            )
            for major in (2, 3)
        },
        scope=Scope.OPERATE,
        confinement=Confinement.ONE_DAG,
        # Without them Airflow 2 also clears the tasks an ExternalTaskMarker points to in
        # other DAGs, and a SubDAG's parent DAG.
        confined_sets=("exclude_subdags", "exclude_parentdag"),
    ),
    Api(
        "deploy_dag",
        "Deploy a DAG file through the deploy target: into the dags folder, or committed and "
        "pushed to the deploy git branch (POST multipart)",
        (
            Arg("dag_file", Kind.FILE, "Python file to upload and deploy", required=True),
            Arg("force", Kind.BOOL, "Replace an existing file (its old version is kept)"),
            Arg("pause", Kind.BOOL, "Pause the DAG(s) after deploying"),
            Arg("unpause", Kind.BOOL, "Unpause the DAG(s) after deploying"),
            Arg(
                "wait",
                Kind.BOOL,
                "Answer once Airflow has parsed the deployed version (wherever it parses it): "
                "OK, or ERROR with its import errors",
                for_bridge=True,
            ),
            Arg(
                "wait_timeout",
                Kind.INT,
                "Seconds to wait for the parse (default: command_timeout); the deploy stands",
                for_bridge=True,
            ),
        ),
        handler=Handler.DEPLOY_DAG,
        methods=("POST",),
        scope=Scope.ADMIN,
    ),
    Api(
        "task_log",
        "A task try's log: the local file, else through Airflow's log reader (the worker's "
        "log server, remote logging); with follow=true and a stream, followed live until "
        "the try ends",
        (
            DAG_ID,
            TASK_ID,
            EXECUTION_DATE,
            Arg("try_number", Kind.INT, "Which try (1, 2, ...); default: the latest"),
            Arg("map_index", Kind.INT, "The index of a mapped task instance"),
            Arg("follow", Kind.BOOL, "Stream what is written until the try ends (with stream)"),
            Arg(
                "raw",
                Kind.BOOL,
                "The file as written (Airflow 3 writes JSON lines, shown as text by default)",
            ),
        ),
        handler=Handler.TASK_LOG,
        scope=Scope.READ,
        confinement=Confinement.ONE_DAG,
    ),
    Api(
        "delete_dag",
        "Delete a DAG: its file removed through the deploy target (moved to the backups "
        "folder, or a git commit); with metadata=true its records too ('dags delete')",
        (
            DAG_ID,
            Arg(
                "metadata",
                Kind.BOOL,
                "Also delete the DAG's records from Airflow's database (runs, task "
                "instances, ...) once its file is gone",
            ),
        ),
        handler=Handler.DELETE_DAG,
        scope=Scope.ADMIN,
    ),
    Api(
        "refresh_dag",
        "Re-parse the DAG files so that a changed DAG shows up in Airflow",
        (DAG_ID,),
        handler=Handler.REFRESH_DAG,
        scope=Scope.ADMIN,
    ),
    Api(
        "refresh_all",
        "Parse and serialize every DAG again (every bundle on Airflow 3), as after a bulk "
        "deploy; the result counts the DAGs and lists the files that do not import",
        (),
        _by_version(lambda major: Cli(("dags", "reserialize"))),
        after=After.DAG_REPORT,
        scope=Scope.ADMIN,
    ),
)

BY_NAME: dict[str, Api] = {api.name: api for api in APIS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
