"""``airflow-rest-bridge token add|list|revoke``: the named tokens in ``tokens_file``.

They read the same airflow.cfg as the daemon (``--config``, else as Airflow finds it) to
find the file. ``add`` prints the new token once; only its hash is written, with a new
identity (the jobs it starts are that identity's). The daemon picks up a change when it
reloads (SIGHUP, ``systemctl reload``). Run them as the daemon's (Airflow's) user; run as
root, they keep the file's owner and mode.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from bridge.config.load import ConfigError, load
from bridge.config.tokens import (
    NamedToken,
    TokensError,
    check_confinable,
    check_name,
    hash_token,
    new_identity,
    new_token,
    parse_dag_patterns,
    parse_scopes,
    read_tokens,
    write_tokens,
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token", help="manage named tokens (tokens_file)")
    actions = token.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a token and print it once")
    add.add_argument(
        "name",
        help="its name, in logs and job records (A-Z a-z 0-9 _ . -, starting with a letter "
        "or digit; not seed, open or -)",
    )
    add.add_argument(
        "--scope",
        required=True,
        help="read (changes nothing), operate (runs, triggers, pause, clear, variables, "
        "pools, connections; and what read may), or admin (deploy_dag, refresh_dag, "
        "services, every other command; and what operate may): each includes the ones "
        "before it",
    )
    add.add_argument(
        "--dags",
        help="confine it to these DAGs: a comma-separated list of DAG ids, each may hold the "
        "wildcards * and ? ('etl_*,report_daily'); calls naming another DAG, and calls no "
        "DAG confines, are refused (docs/security.md). Not with --scope admin",
    )
    actions.add_parser("list", help="each token: name, scopes, created, id, DAGs (* for all)")
    revoke = actions.add_parser("revoke", help="remove a token")
    revoke.add_argument("name")
    for sub in (add, *actions.choices.values()):
        if not any(action.dest == "config" for action in sub._actions):
            # SUPPRESS: a --config given before "token" is not reset by this one's default.
            sub.add_argument(
                "--config", type=Path, default=argparse.SUPPRESS, help="airflow.cfg, as the daemon"
            )


def run(args: argparse.Namespace) -> int:
    """Exit codes: 0 done, 1 no such token, 2 configuration error."""
    try:
        settings = load(args.config, os.environ, with_tokens=False)
        path = settings.tokens_file
        if path is None:
            raise ConfigError("set [rest_api_plugin] tokens_file to the file the tokens go in")
        with _locked(path):
            table = read_tokens(path, any_owner=os.geteuid() == 0)
            if args.action == "list":
                for token in table.tokens:
                    scopes = ",".join(token.scope_names)
                    confined_to = ",".join(token.dags) or "*"
                    print(
                        f"{token.name}\t{scopes}\t{token.created}\t{token.identity}\t{confined_to}"
                    )
                return 0
            if args.action == "revoke":
                if table.named(args.name) is None:
                    print(f"no token named {args.name!r} in {path}", file=sys.stderr)
                    return 1
                kept = tuple(token for token in table.tokens if token.name != args.name)
                write_tokens(path, replace(table, tokens=kept))
                print(f"revoked {args.name}; reload the daemon (SIGHUP) for it to take effect")
                return 0
            name = check_name(args.name)
            if table.named(name) is not None:
                raise TokensError(f"a token named {name!r} exists; revoke it first")
            value = new_token()
            created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            allowed = parse_scopes(args.scope)
            dags = parse_dag_patterns(args.dags) if args.dags is not None else ()
            check_confinable(allowed, dags)
            token = NamedToken(name, allowed, hash_token(value), created, new_identity(), dags)
            write_tokens(path, replace(table, tokens=(*table.tokens, token)))
    except (ConfigError, TokensError, OSError) as exc:
        print(f"airflow-rest-bridge token: {exc}", file=sys.stderr)
        return 2
    print(value)
    print(
        f"(shown once; its hash is in {path}; reload the daemon (SIGHUP) to accept it)",
        file=sys.stderr,
    )
    return 0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time: two ``token add`` at once would each drop the other's token.
    Run as root, the lock file goes to the tokens file's owner, who must still open it."""
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.geteuid() == 0:
            with contextlib.suppress(FileNotFoundError):
                owner = os.stat(path, follow_symlinks=False)
                os.fchown(fd, owner.st_uid, owner.st_gid)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
