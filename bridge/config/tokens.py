"""Named tokens and their scopes: who may call what, kept in the file ``tokens_file`` names.

Only a SHA-256 hash of each token is stored. A token is 32 random bytes (``secrets``), so a
plain hash cannot be reversed by guessing; a slow password hash would only make every call
slower. The file must be its owner's alone, and its owner the daemon's user or root, in a
folder nobody else may change (the daemon refuses it otherwise, as ssh refuses a private key
that is not), and it is replaced atomically: a reader sees the old or the new file, never
half of one.

Each token has an identity (``id``), made at random when it is added and never reused: the
jobs a token starts belong to it, not to its name, so a name revoked and added again starts
afresh. A token of an older file without one has an identity derived from its hash.

A token may be confined to some DAGs (``dags``: patterns such as ``etl_*``; none: every
DAG): what it may call then is bridge.calls.confined's.

The file is JSON: ``{"tokens": [{"name": ..., "scopes": [...], "sha256": ..., "created":
..., "id": ..., "dags": [...]}]}`` (``dags`` only for a confined token).
``airflow-rest-bridge token add|list|revoke`` writes it; the daemon reads it at startup and
on SIGHUP.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path


class Scope(enum.Enum):
    """What a call may do. Each API of the catalogue needs exactly one."""

    READ = "read"  # changes nothing
    OPERATE = "operate"  # runs, triggers, pause, clear, variables, pools, connections
    ADMIN = "admin"  # deploy_dag, refresh_dag, services, every other command


ALL_SCOPES = frozenset(Scope)
# Scopes nest: each includes the ones before it (admin may do what operate may, operate what
# read may), as most operators expect of "admin".
SCOPE_ORDER = (Scope.READ, Scope.OPERATE, Scope.ADMIN)


def allows(scopes: frozenset[Scope], needed: Scope) -> bool:
    """Whether a token with ``scopes`` may call an API that needs ``needed``."""
    return any(SCOPE_ORDER.index(scope) >= SCOPE_ORDER.index(needed) for scope in scopes)


NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # what a file may hold (older files included)
NEW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # what token add accepts
SEED_NAME = "seed"  # the seed's single token, in logs and job records; no named token's name
OPEN_NAME = "-"  # nobody: the daemon asks for no token
# Identities that are no named token's: the seed's token and nobody (no token asked for).
SEED_IDENTITY = "seed"
OPEN_IDENTITY = "open"
RESERVED_NAMES = frozenset({SEED_NAME, OPEN_NAME, SEED_IDENTITY, OPEN_IDENTITY})
# A named token's identity: "t-" and 32 random hex digits, or "h-" and 16 derived from its hash.
IDENTITY = re.compile(r"t-[0-9a-f]{32}|h-[0-9a-f]{16}")


class TokensError(ValueError):
    """The tokens file cannot be used; the message says why."""


# A DAG pattern: what a dag_id may hold, and the shell-style wildcards * and ? (no [...]
# classes: a pattern an operator reads should mean what it looks like).
DAG_PATTERN = re.compile(r"[A-Za-z0-9_.*?-]{1,250}")


def parse_dag_patterns(text: str) -> tuple[str, ...]:
    """``etl_*,report_daily`` -> the patterns; an empty list or a bad one is a TokensError."""
    patterns = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    bad = [pattern for pattern in patterns if not DAG_PATTERN.fullmatch(pattern)]
    if bad or not patterns:
        raise TokensError(
            "dags must be a comma-separated list of DAG ids, each may hold the wildcards * "
            f"and ? (got {text!r})"
        )
    return patterns


def dag_matches(patterns: tuple[str, ...], dag_id: str) -> bool:
    """Whether ``dag_id`` is one of the DAGs ``patterns`` name (case-sensitive, as DAG ids
    are); no patterns: every DAG."""
    return not patterns or any(fnmatch.fnmatchcase(dag_id, pattern) for pattern in patterns)


def parse_scopes(text: str) -> frozenset[Scope]:
    """``read,operate`` -> the scopes; an unknown or missing one is a TokensError."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    known = {scope.value: scope for scope in Scope}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise TokensError(
            f"scopes must be a comma-separated list of {', '.join(known)} (got {text!r})"
        )
    return frozenset(known[name] for name in names)


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_identity() -> str:
    """A new token's identity: random, so no later token ever has it again."""
    return "t-" + secrets.token_hex(16)


def derived_identity(sha256: str) -> str:
    """The identity of a token an older file keeps without one: stable, from its hash (hashed
    again, so that no part of the stored hash is shown where the identity is)."""
    return "h-" + hashlib.sha256(f"airflow-rest-bridge identity {sha256}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class NamedToken:
    name: str
    scopes: frozenset[Scope]
    sha256: str
    created: str = ""
    identity: str = ""  # empty: derived from the hash (a token an older file holds)
    dags: tuple[str, ...] = ()  # the DAG patterns it is confined to; none: every DAG

    def __post_init__(self) -> None:
        if not self.identity:
            object.__setattr__(self, "identity", derived_identity(self.sha256))

    @property
    def scope_names(self) -> list[str]:
        """Its scopes' names, in the order Scope declares them (read, operate, admin)."""
        return [scope.value for scope in Scope if scope in self.scopes]

    def as_json(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "name": self.name,
            "scopes": self.scope_names,
            "sha256": self.sha256,
            "created": self.created,
            "id": self.identity,
        }
        if self.dags:
            entry["dags"] = list(self.dags)
        return entry


@dataclass(frozen=True)
class TokenTable:
    tokens: tuple[NamedToken, ...] = ()

    def find(self, presented: str | None) -> NamedToken | None:
        """The token whose hash the presented value has. Every stored hash is compared, in
        constant time, so the timing says nothing about which one (or how much) matched."""
        if not presented:
            return None
        digest = hash_token(presented).encode()
        found = None
        for token in self.tokens:
            if hmac.compare_digest(digest, token.sha256.encode()):
                found = token
        return found

    def named(self, name: str) -> NamedToken | None:
        return next((token for token in self.tokens if token.name == name), None)

    def revoked(self, identity: str) -> bool:
        """Whether ``identity`` is a named token's that this table does not hold (revoked, or
        no tokens file any more). The seed's token and nobody are no named tokens: never."""
        held = any(token.identity == identity for token in self.tokens)
        return IDENTITY.fullmatch(identity) is not None and not held


def read_tokens(path: Path, any_owner: bool = False) -> TokenTable:
    """The tokens in ``path`` (none when it does not exist yet). Blocking file I/O.

    Refused (TokensError): a file others may read or change, one owned by another user than
    this process's or root, and a folder that others may change (they could replace the file)
    or owned by such a user (``any_owner``: either owner will do, for root's token command
    editing the file of the user it belongs to)."""
    _check_folder(path.parent, any_owner)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return TokenTable()
    except OSError as exc:
        raise TokensError(f"{path}: cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        status = os.fstat(file.fileno())
        if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokensError(
                f"{path}: mode {stat.S_IMODE(status.st_mode):04o} lets others read or change "
                f"it; chmod 600 {path}"
            )
        if not any_owner and status.st_uid not in (os.geteuid(), 0):
            raise TokensError(
                f"{path}: owned by uid {status.st_uid}, who could add tokens; it must be the "
                f"daemon's user's (uid {os.geteuid()}) or root's"
            )
        text = file.read()
    try:
        entries = json.loads(text)["tokens"]
        table = TokenTable(tuple(_entry(entry) for entry in entries))
    except (ValueError, KeyError, TypeError) as exc:
        raise TokensError(f"{path}: not a tokens file: {exc}") from None
    _check_identities(path, table)
    return table


def _check_folder(folder: Path, any_owner: bool) -> None:
    """The tokens file's folder: nobody but its owner (the daemon's user or root) may change
    it, or they could put a file of their own in the token file's place."""
    try:
        status = os.stat(folder)
    except FileNotFoundError:
        return  # no file either: no tokens
    except OSError as exc:
        raise TokensError(f"{folder}: cannot be looked at: {exc.strerror}") from None
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise TokensError(
            f"{folder} (the tokens file's folder): mode {stat.S_IMODE(status.st_mode):04o} "
            f"lets others replace the file; chmod go-w {folder}"
        )
    if not any_owner and status.st_uid not in (os.geteuid(), 0):
        raise TokensError(
            f"{folder} (the tokens file's folder): owned by uid {status.st_uid}, who could "
            "replace the file; it must be the daemon's user's or root's"
        )


def _check_identities(path: Path, table: TokenTable) -> None:
    """Two tokens with one identity would share their jobs: never."""
    if len({token.identity for token in table.tokens}) != len(table.tokens):
        raise TokensError(f"{path}: two tokens have the same id; revoke one")


def _entry(entry: dict[str, object]) -> NamedToken:
    name, digest = str(entry["name"]), str(entry["sha256"])
    if not NAME.fullmatch(name) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"bad entry {name!r}")
    scopes = entry["scopes"]
    if not isinstance(scopes, list):
        raise ValueError(f"{name}: scopes must be a list")
    identity = str(entry.get("id") or "")
    if identity and not IDENTITY.fullmatch(identity):
        raise ValueError(f"{name}: bad id {identity!r}")
    scope_set = parse_scopes(",".join(map(str, scopes)))
    dags = entry.get("dags")
    if dags is not None and (not isinstance(dags, list) or not dags):
        raise ValueError(f"{name}: dags must be a list of DAG patterns")
    patterns = parse_dag_patterns(",".join(map(str, dags))) if dags else ()
    check_confinable(scope_set, patterns)
    return NamedToken(name, scope_set, digest, str(entry["created"]), identity, patterns)


def check_confinable(scopes: frozenset[Scope], dags: tuple[str, ...]) -> None:
    """A confined token may read or operate: what admin may call (deploys, services, every
    command of the CLI) reaches past any DAG."""
    if dags and Scope.ADMIN in scopes:
        raise TokensError(
            "a token confined to some DAGs may have the read or operate scope, not admin: "
            "admin's APIs reach past any DAG"
        )


def write_tokens(path: Path, table: TokenTable) -> None:
    """Replace ``path`` atomically with ``table``, readable by its owner only. An existing
    file keeps its owner (root edits the Airflow user's file) and its mode."""
    _check_identities(path, table)
    document = {"tokens": [token.as_json() for token in table.tokens]}
    try:
        before: os.stat_result | None = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        before = None
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            if before is not None:
                os.fchmod(fd, stat.S_IMODE(before.st_mode) & 0o600)
                if os.geteuid() == 0:  # only root can give a file away
                    os.fchown(fd, before.st_uid, before.st_gid)
            json.dump(document, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def new_token() -> str:
    return "arb_" + secrets.token_urlsafe(32)


def check_name(name: str) -> str:
    """A new token's name: 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit, and
    none of the names the seed's token and nobody (no token asked for) go by."""
    if name.lower() in RESERVED_NAMES:
        reserved = ", ".join(repr(n) for n in sorted(RESERVED_NAMES))
        raise TokensError(
            f"the name {name!r} is reserved (the seed's token and calls without a token go by "
            f"{reserved}); choose another"
        )
    if not NEW_NAME.fullmatch(name):
        raise TokensError(
            "a token's name is 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit "
            f"(got {name!r})"
        )
    return name
