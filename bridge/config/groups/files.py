"""The keys of where files go: file arguments, backups, deploys.

Part of :class:`bridge.config.settings.Settings`, which puts every group together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.config import parsers
from bridge.config.groups.defaults import HOME
from bridge.config.keys import setting


@dataclass(frozen=True)
class FileKeys:
    """Where files may go: command file arguments, DAG backups, the deploy target."""

    allowed_paths: tuple[Path, ...] = setting(
        (),
        parsers.path_list,
        "Comma-separated folders that file arguments (pid, stdout, stderr, log-file, keytab, "
        "flower_conf, cfg_path, save...) must stay inside; relative values are taken relative "
        "to the first (created, owner-only, when a command is to write there). A file a "
        "command of the installed CLI writes must be new. An empty value refuses all such "
        "arguments.",
        unset="<Airflow home>/.airflow-rest-bridge-files",
        example="/path/to/airflow-home/.airflow-rest-bridge-files",
    )
    backups_folder: Path = setting(
        HOME / "dag_backups",
        parsers.path,
        "Where deploy_dag force=true keeps the file it replaces, and delete_dag the file it "
        "removes (deploy_target = folder).",
        unset="<Airflow home>/dag_backups",
        example="/path/to/airflow-home/dag_backups",
    )
    backups_to_keep: int = setting(
        10,
        parsers.non_negative_int,
        "Backups kept per DAG file name; 0 keeps all.",
    )
    deploy_target: str = setting(
        "folder",
        parsers.deploy_target,
        "Where deploy_dag puts a DAG file and delete_dag removes it: 'folder', the dags folder "
        "of this host (the file it replaces is kept in backups_folder), or 'git', a commit "
        "pushed to deploy_git_branch of deploy_git_url, for every host that syncs its DAGs "
        "from there (git-sync, Airflow 3's GitDagBundle); the git history keeps every version.",
        example="git",
    )
    deploy_bundle: str | None = setting(
        None,
        parsers.bundle_name,
        "Airflow 3: deploy to the git repository of this DAG bundle of [dag_processor] "
        "dag_bundle_config_list (a GitDagBundle): deploy_target becomes git, and the URL "
        "(the bundle's repo_url, else its git connection's host), the branch (tracking_ref) "
        "and the folder (subdir) are the bundle's. Read again on reload.",
        example="dags-git",
    )
    deploy_git_url: str | None = setting(
        None,
        parsers.git_url,
        "The repository a git deploy pushes to, as git clones it (https://, ssh://, user@host:"
        "path or a local path). Credentials come from git's own configuration (a credential "
        "helper, an SSH key); one written into the URL is kept out of logs and answers.",
        secret=True,
        example="https://git.example.com/data/airflow-dags.git",
    )
    deploy_git_branch: str = setting(
        "main",
        parsers.git_branch,
        "The branch a git deploy commits to; it must exist in the repository. Never "
        "force-pushed: a branch that moved on is fetched and the deploy replayed onto it.",
    )
    deploy_git_subdir: str = setting(
        "",
        parsers.repository_subdir,
        "The folder of the repository that holds the DAG files (what the hosts' dags folder "
        "or bundle subdir shows); empty: the repository's root.",
        example="dags",
    )
