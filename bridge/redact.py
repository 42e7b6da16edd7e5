"""Masking secrets (connection passwords, sensitive variable values, the token) before a
value reaches a log line, an echoed ``airflow_cmd`` or the envelope's ``arguments``."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

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
_EXTRA_FLAG = "--conn-extra="


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
        if part.startswith(_EXTRA_FLAG):
            out[index] = _EXTRA_FLAG + mask_extra(part.removeprefix(_EXTRA_FLAG))
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
        elif name == "conn_extra":
            text = mask_extra(text)
        elif name == "import":  # a whole document, possibly with passwords: not echoed
            text = f"<{len(value)} characters of JSON>"
        elif name == "set" and value.split() and is_sensitive_name(value.split(None, 1)[0]):
            text = value.split(None, 1)[0] + " " + MASK
        masked[name] = text
    return masked


def mask_extra(text: str) -> str:
    """A connection's extra (JSON) with the values of sensitive keys masked, as Airflow masks
    them; text that is not a JSON object is masked whole if it names a sensitive key."""
    try:
        extra = json.loads(text)
    except ValueError:
        return MASK if is_sensitive_name(text) else text
    masked = _mask_sensitive(extra)
    return json.dumps(masked) if masked != extra else text


def _mask_sensitive(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: MASK if is_sensitive_name(str(key)) else _mask_sensitive(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_sensitive(item) for item in value]
    return value


def _mask_token(text: str, token: str | None) -> str:
    return text.replace(token, MASK) if token else text


class LogRedactor(logging.Filter):
    """A filter for the daemon's log handlers: no line may carry a secret or be forged.

    - the token and URI passwords are masked in every message and traceback;
    - CR and LF in a message are escaped, so that a value cannot start a log line of its own;
    - aiohttp's HTTP parser errors lose the request bytes they quote (a request line holds
      the query string, percent-encoded passwords included): the error's name stays.
    """

    def __init__(self, token: Callable[[], str | None]) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        token = self._token()
        message = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            message += f": {type(error).__name__} (HTTP {error.code})"
            record.exc_info = None
            record.exc_text = None
        elif record.exc_info:
            trace = logging.Formatter().formatException(record.exc_info)
            record.exc_text = mask_uri(_mask_token(trace, token))
        message = mask_uri(_mask_token(message, token))
        record.msg = message.replace("\r", "\\r").replace("\n", "\\n")
        record.args = None
        return True
