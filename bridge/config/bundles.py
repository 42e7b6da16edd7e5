"""deploy_bundle: the git deploy target taken from one of Airflow 3's DAG bundles.

Airflow 3 reads its DAG files from the bundles of ``[dag_processor] dag_bundle_config_list``
(a JSON list of ``{"name", "classpath", "kwargs"}``). A bundle of the git provider's
``GitDagBundle`` tracks a branch (``tracking_ref``) of a repository (``repo_url``, else the
host of its git connection, ``git_conn_id``, default ``git_default``), optionally a folder
of it (``subdir``). Deploying to that bundle is deploying to that branch and folder, so the
bridge takes them from there instead of asking for them twice.

Only a bundle class in :data:`GIT_BUNDLES` (reviewed: its keyword arguments mean what is
read here) is accepted; any other class, or a bundle argument this module does not know, is
refused at start and reload, naming it. A setting given besides the bundle must agree with
it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bridge.config import parsers

GIT_BUNDLES = frozenset({"airflow.providers.git.bundles.git.GitDagBundle"})
# GitDagBundle's keyword arguments: what each sets here (None: it changes nothing the bridge
# does). refresh_interval and the view URL only concern how Airflow reads or shows it.
KNOWN_KWARGS: dict[str, str | None] = {
    "tracking_ref": "deploy_git_branch",
    "subdir": "deploy_git_subdir",
    "repo_url": "deploy_git_url",
    "git_conn_id": None,
    "prune_dotgit_folder": None,
    "refresh_interval": None,
    "view_url_template": None,
    "view_url": None,
}
PARSERS: dict[str, Callable[[str], Any]] = {
    "deploy_git_branch": parsers.git_branch,
    "deploy_git_subdir": parsers.repository_subdir,
    "deploy_git_url": parsers.git_url,
}


class BundleError(ValueError):
    """deploy_bundle cannot be used as configured; the message says why."""


def git_settings(name: str, config_list: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """The settings deploy_bundle ``name`` stands for (``deploy_target``, the URL or the
    connection, branch and folder), from the text of ``dag_bundle_config_list``; ``given``
    holds the keys set in [rest_api_plugin], which must agree."""
    bundle = _find(name, config_list)
    classpath = str(bundle.get("classpath") or "")
    if classpath not in GIT_BUNDLES:
        raise BundleError(
            f"bundle {name} is a {classpath or 'bundle without a classpath'}, not a git bundle "
            f"({', '.join(sorted(GIT_BUNDLES))}): deploy to its folder with deploy_target = "
            "folder instead"
        )
    kwargs = bundle.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise BundleError(f"bundle {name}'s kwargs is not a JSON object")
    unknown = sorted(set(kwargs) - set(KNOWN_KWARGS))
    if unknown:
        raise BundleError(
            f"bundle {name} has arguments the bridge does not know ({', '.join(unknown)}); "
            "set deploy_target = git and deploy_git_url, deploy_git_branch, "
            "deploy_git_subdir instead"
        )
    if not kwargs.get("tracking_ref"):
        raise BundleError(f"bundle {name} names no tracking_ref (the branch to deploy to)")
    found: dict[str, Any] = {"deploy_target": "git"}
    for argument, key in KNOWN_KWARGS.items():
        if key is None or kwargs.get(argument) in (None, ""):
            continue
        try:
            found[key] = PARSERS[key](str(kwargs[argument]))
        except ValueError as exc:
            raise BundleError(f"bundle {name}'s {argument}: {exc}") from None
    if "deploy_git_url" not in found:
        found["deploy_git_connection"] = str(kwargs.get("git_conn_id") or "git_default")
    for key, value in found.items():
        if key in given and given[key] != value:
            raise BundleError(
                f"{key} = {_shown(key, given[key])} disagrees with bundle {name} "
                f"({_shown(key, value)}); leave it out, the bundle decides"
            )
    return found


def _find(name: str, config_list: str | None) -> dict[str, Any]:
    if not config_list or not config_list.strip():
        raise BundleError(
            f"deploy_bundle = {name}, but [dag_processor] dag_bundle_config_list is not set "
            "(Airflow 3 only)"
        )
    try:
        bundles = json.loads(config_list)
    except ValueError as exc:
        raise BundleError(f"[dag_processor] dag_bundle_config_list is not JSON: {exc}") from None
    listed = [b for b in bundles if isinstance(b, dict)] if isinstance(bundles, list) else []
    for bundle in listed:
        if bundle.get("name") == name:
            return bundle
    names = ", ".join(str(b.get("name")) for b in listed) or "none"
    raise BundleError(f"no bundle named {name} in dag_bundle_config_list (it lists: {names})")


def _shown(key: str, value: Any) -> str:
    return "<set>" if key == "deploy_git_url" else repr(value)
