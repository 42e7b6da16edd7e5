"""Masking secrets (connection passwords, sensitive variable values, the token) before a
value reaches a log line, an echoed ``airflow_cmd`` or the envelope's ``arguments``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "***"
# scheme://user:password@host -> scheme://user:***@host
# The password may itself contain '@': the host part is what follows the last '@' before
# the path, query or end.
_URI_PASSWORD = re.compile(
    r"(?P<head>://[^:/@\s]*:)(?P<secret>\S*?)(?P<tail>@)(?=[^@/?#\s]*(?:[/?#\s]|$))"
)
# Airflow's own list of names whose values it masks (core.sensitive_var_conn_names defaults).
_SENSITIVE_NAME = re.compile(
    r"access_token|api_key|apikey|authorization|passphrase|passwd|password|private_key"
    r"|secret|token|keyfile_dict|service_account",
    re.IGNORECASE,
)
_SENSITIVE_FLAGS = ("--conn-password=",)


def mask_uri(text: str) -> str:
    """Hide the password part of any URI in ``text``."""
    return _URI_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)


def is_sensitive_name(name: str) -> bool:
    return bool(_SENSITIVE_NAME.search(name))


def mask_argv(argv: Iterable[str], token: str | None = None) -> list[str]:
    """A copy of ``argv`` safe to log: URI passwords, password flags, sensitive variables."""
    out = [mask_uri(_mask_token(part, token)) for part in argv]
    for index, part in enumerate(out):
        for flag in _SENSITIVE_FLAGS:
            if part.startswith(flag):
                out[index] = flag + MASK
    # 'variables set -- KEY VALUE': the value of a sensitive key is masked, as Airflow does.
    if out[:2] == ["variables", "set"] or out[1:3] == ["variables", "set"]:
        if "--" in out:
            sep = out.index("--")
            if len(out) > sep + 2 and is_sensitive_name(out[sep + 1]):
                out[sep + 2] = MASK
    return out


def mask_arguments(args: Mapping[str, str], token: str | None = None) -> dict[str, str]:
    """A copy of request arguments safe to echo back or log."""
    masked = {}
    for name, value in args.items():
        text = mask_uri(_mask_token(value, token))
        if name in ("conn_password",) or (
            name == "value" and is_sensitive_name(args.get("key", ""))
        ):
            text = MASK
        elif name == "import":  # a whole document, possibly with passwords: not echoed
            text = f"<{len(value)} characters of JSON>"
        elif name == "set" and value.split() and is_sensitive_name(value.split(None, 1)[0]):
            text = value.split(None, 1)[0] + " " + MASK
        masked[name] = text
    return masked


def _mask_token(text: str, token: str | None) -> str:
    return text.replace(token, MASK) if token else text
