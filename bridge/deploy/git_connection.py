"""deploy_bundle's repository when the bundle names no ``repo_url``: the URL of Airflow's git
connection, read as the git provider's hook reads it, from what ``airflow connections get
--output=json`` printed (the connection may live in Airflow's database or a secrets backend,
so it is asked of Airflow at each deploy)."""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit, urlunsplit

from bridge.config import parsers
from bridge.config.settings import Settings
from bridge.errors import RequestError
from bridge.process.path import Captured
from bridge.text.noise import filter_text, parse_json_output
from bridge.text.redact import mask_uri

# The git provider's SSH settings in a connection's extra, which the bridge does not apply
# (git would need a shell command for them): said in a warning, never silently dropped.
SSH_EXTRAS = frozenset(
    {
        "key_file",
        "private_key",
        "private_key_passphrase",
        "strict_host_key_checking",
        "known_hosts_file",
        "ssh_config_file",
        "host_proxy_cmd",
        "ssh_port",
    }
)


def connection_url(found: Captured, conn_id: str, settings: Settings) -> tuple[str, list[str]]:
    """The repository URL of connection ``conn_id`` (its host, with its login and token, the
    password, for https), and what to say about the connection; a 500 naming what is missing
    when it cannot be used."""
    rows = parse_json_output(filter_text(found.stdout)) if found.exit_code == 0 else None
    row = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else None
    bundle = settings.deploy_bundle
    if row is None:
        raise RequestError(
            f"deploy_bundle {bundle}: Airflow's git connection {conn_id} could not be read "
            f"(exit code {found.exit_code}): {mask_uri(found.stderr.strip()[-500:])}",
            status=500,
        )
    try:
        url = parsers.git_url(str(row.get("host") or ""))
    except ValueError as exc:
        raise RequestError(f"connection {conn_id}'s host: {exc}", status=500) from None
    if not url:
        raise RequestError(
            f"deploy_bundle {bundle}: connection {conn_id} has no host (the repository's URL)",
            status=500,
        )
    token = str(row.get("password") or "")
    web = urlsplit(url)
    if token and web.scheme in ("https", "http") and not web.username:
        login = quote(str(row.get("login") or "user"), safe="")
        url = urlunsplit(web._replace(netloc=f"{login}:{quote(token, safe='')}@{web.netloc}"))
    elif not url.startswith("git@") and not web.scheme:
        url = os.path.expanduser(url)  # as the provider's hook does for a path
    extra = row.get("extra_dejson")
    ignored = sorted(
        key for key in SSH_EXTRAS if isinstance(extra, dict) and extra.get(key) not in (None, "")
    )
    notes = []
    if ignored:
        notes.append(
            f"connection {conn_id}'s {', '.join(ignored)} are not applied by the bridge: git "
            "uses the SSH configuration of the user the bridge runs as"
        )
    return url, notes
