"""Masking secrets (connection passwords, sensitive variable values, the token) before a
value reaches a log line, an echoed ``airflow_cmd`` or the envelope's ``arguments``.

What is secret about an argument is a trait the catalogue declares on it (:class:`Secret`);
on top of that every value has URI passwords and the token masked, and an argument whose
name Airflow would call sensitive is masked whole.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

MASK = "***"
# scheme://user:password@host -> scheme://user:***@host
# The password may itself contain '@': the host part is what follows the last '@' before
# the path, query or end.
_URI_PASSWORD = re.compile(
    r"(?P<head>://[^:/@\s]*:)(?P<secret>\S*?)(?P<tail>@)(?=[^@/?#\s]*(?:[/?#\s]|$))"
)
# ...?aws_secret_access_key=VALUE&region=x -> ...?aws_secret_access_key=***&region=x, for a
# query parameter whose name is sensitive (below); the others stay readable.
_QUERY_PARAMETER = re.compile(r"(?P<head>[?&;](?P<name>[^=&;#\s?]+)=)(?P<value>[^&;#\s]*)")
# Airflow's own list of names whose values it masks (core.sensitive_var_conn_names defaults).
_SENSITIVE_NAME = re.compile(
    r"access_token|api_key|apikey|authorization|passphrase|passwd|password|private_key"
    r"|secret|token|keyfile_dict|service_account",
    re.IGNORECASE,
)


class Secret(enum.Enum):
    """How much of an argument's value may be shown."""

    NONE = "none"  # shown, with URI passwords and the token masked (as every value is)
    WHOLE = "whole"  # never shown
    EXTRA = "extra"  # a connection's extra (JSON): the values of sensitive keys masked
    DOCUMENT = "document"  # a whole document (JSON to import): only its length is shown
    KEY_VALUE = "key_value"  # 'KEY VALUE': VALUE masked when KEY names a secret
    KEYED = "keyed"  # a value masked when the call's 'key' argument names a secret


def mask_uri(text: str) -> str:
    """Hide the password part of any URI in ``text``, and the values of query parameters
    whose names say they are secret (``?aws_secret_access_key=...``, ``&password=...``)."""
    text = _URI_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
    return _QUERY_PARAMETER.sub(_masked_parameter, text) if "=" in text else text


def _masked_parameter(match: re.Match[str]) -> str:
    if is_sensitive_name(match["name"]) and match["value"]:
        return match["head"] + MASK
    return match[0]


def is_sensitive_name(name: str) -> bool:
    return bool(_SENSITIVE_NAME.search(name))


# A named token (bridge.config.tokens.new_token): the daemon keeps only its hash, so it
# cannot look for the value; the shape gives it away wherever it was pasted.
_NAMED_TOKEN = re.compile(r"arb_[A-Za-z0-9_-]{40,}")


def mask_token(text: str, token: str | Sequence[str] | None) -> str:
    """The bridge's secrets (``token``: the seed's token, or every secret value the settings
    hold, ``Settings.secret_values``) and anything shaped like a named token, masked."""
    return masker((token,) if isinstance(token, str) else token or ())(text)


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as output may spell it: as is, JSON-escaped (``ensure_ascii`` or not) and
    percent-encoded; longest first, so that a secret inside another one never splits it."""
    forms: set[str] = set()
    for secret in secrets:
        if secret.strip("*"):  # never the mask itself: masking stays idempotent
            forms.update(
                (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1])
            )
            forms.add(quote(secret, safe=""))
    return sorted(forms, key=len, reverse=True)


def masker(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function masking ``secrets`` (:func:`secret_forms`) and anything shaped like a named
    token in a text; the forms are worked out once."""
    forms = secret_forms(secrets)

    def mask(text: str) -> str:
        for form in forms:
            if form in text:
                text = text.replace(form, MASK)
        return _NAMED_TOKEN.sub(MASK, text) if "arb_" in text else text

    return mask


def mask_value(secret: Secret, value: str, others: Mapping[str, Any] | None = None) -> str:
    """``value`` as it may be shown, given its trait (``others``: the call's other values)."""
    if secret is Secret.WHOLE:
        return MASK
    if secret is Secret.EXTRA:
        return mask_extra(value)
    if secret is Secret.DOCUMENT:
        return f"<{len(value)} characters of JSON>"
    if secret is Secret.KEY_VALUE:
        words = value.split(None, 1)
        return f"{words[0]} {MASK}" if len(words) == 2 and is_sensitive_name(words[0]) else value
    if secret is Secret.KEYED:
        return MASK if is_sensitive_name(str((others or {}).get("key", ""))) else value
    return value


def mask_arguments(
    args: Mapping[str, str],
    secrets: Mapping[str, Secret],
    token: str | Sequence[str] | None = None,
) -> dict[str, str]:
    """A copy of request arguments safe to echo back or log; ``secrets`` maps argument names
    to their traits (an unknown API has none)."""
    masked = {}
    for name, value in args.items():
        secret = secrets.get(name, Secret.NONE)
        if secret is Secret.NONE and is_sensitive_name(name):
            secret = Secret.WHOLE
        masked[name] = mask_uri(mask_token(mask_value(secret, value, args), token))
    return masked


def shown_command(argv: list[str], token: str | Sequence[str] | None) -> list[str]:
    """An argv as logs and ``airflow_cmd`` show it: each element's shown form (a
    :class:`Masked` element hides its secret), URI passwords and the token masked."""
    return [mask_uri(mask_token(getattr(part, "shown", part), token)) for part in argv]


class Masked(str):
    """An argv element that carries a secret: it runs as itself and is shown as ``shown``."""

    shown: str

    def __new__(cls, text: str, shown: str) -> Masked:
        element = super().__new__(cls, text)
        element.shown = shown
        return element


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


class LogRedactor(logging.Filter):
    """A filter for the daemon's log handlers: no line may carry a secret or be forged.

    - the bridge's secrets (``token``: the seed's token, or every secret value) and URI
      passwords are masked in every message and traceback;
    - CR and LF in a message are escaped, so that a value cannot start a log line of its own;
    - errors of the ``quoting`` classes (the HTTP server's parser errors, given by the
      layer that runs it) lose the request bytes they quote (a request line holds the query
      string, percent-encoded passwords included): the error's name and HTTP code stay.
    """

    def __init__(
        self,
        token: Callable[[], str | Sequence[str] | None],
        *,
        quoting: tuple[type[BaseException], ...],
    ) -> None:
        super().__init__()
        self._token = token
        self._quoting = quoting

    def filter(self, record: logging.LogRecord) -> bool:
        token = self._token()
        message = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, self._quoting):
            code = getattr(error, "code", None)
            message += f": {type(error).__name__}" + (f" (HTTP {code})" if code else "")
            record.exc_info = None
            record.exc_text = None
        elif record.exc_info:
            trace = logging.Formatter().formatException(record.exc_info)
            record.exc_text = mask_uri(mask_token(trace, token))
        message = mask_uri(mask_token(message, token))
        record.msg = message.replace("\r", "\\r").replace("\n", "\\n")
        record.args = None
        return True
