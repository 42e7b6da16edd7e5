"""Named tokens and their scopes: who may call what, kept in the file ``tokens_file`` names.

Only a SHA-256 hash of each token is stored. A token is 32 random bytes (``secrets``), so a
plain hash cannot be reversed by guessing; a slow password hash would only make every call
slower. The file must not be readable by others than its owner (the daemon refuses it, as ssh
refuses a private key that is), and it is replaced atomically: a reader sees the old or the
new file, never half of one.

The file is JSON: ``{"tokens": [{"name": ..., "scopes": [...], "sha256": ..., "created":
...}]}``. ``airflow-rest-bridge token add|list|revoke`` writes it; the daemon reads it at
startup and on SIGHUP.
"""

from __future__ import annotations

import enum
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
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SEED_NAME = "seed"  # the seed's single token, in logs and job records; no named token's name
OPEN_NAME = "-"  # nobody: the daemon asks for no token


class TokensError(ValueError):
    """The tokens file cannot be used; the message says why."""


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


@dataclass(frozen=True)
class NamedToken:
    name: str
    scopes: frozenset[Scope]
    sha256: str
    created: str = ""

    @property
    def scope_names(self) -> list[str]:
        """Its scopes' names, in the order Scope declares them (read, operate, admin)."""
        return [scope.value for scope in Scope if scope in self.scopes]

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "scopes": self.scope_names,
            "sha256": self.sha256,
            "created": self.created,
        }


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


def read_tokens(path: Path) -> TokenTable:
    """The tokens in ``path`` (none when it does not exist yet). Blocking file I/O."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return TokenTable()
    except OSError as exc:
        raise TokensError(f"{path}: cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokensError(
                f"{path}: mode {stat.S_IMODE(mode):04o} lets others read or change it; "
                f"chmod 600 {path}"
            )
        text = file.read()
    try:
        entries = json.loads(text)["tokens"]
        return TokenTable(tuple(_entry(entry) for entry in entries))
    except (ValueError, KeyError, TypeError) as exc:
        raise TokensError(f"{path}: not a tokens file: {exc}") from None


def _entry(entry: dict[str, object]) -> NamedToken:
    name, digest = str(entry["name"]), str(entry["sha256"])
    if not NAME.fullmatch(name) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"bad entry {name!r}")
    scopes = entry["scopes"]
    if not isinstance(scopes, list):
        raise ValueError(f"{name}: scopes must be a list")
    return NamedToken(name, parse_scopes(",".join(map(str, scopes))), digest, str(entry["created"]))


def write_tokens(path: Path, table: TokenTable) -> None:
    """Replace ``path`` atomically with ``table``, readable by its owner only."""
    document = {"tokens": [token.as_json() for token in table.tokens]}
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
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
    if not NAME.fullmatch(name) or name == SEED_NAME:
        raise TokensError(
            f"a token's name is 1-64 of A-Z a-z 0-9 _ . - and not {SEED_NAME!r} (got {name!r})"
        )
    return name
