"""Reading CLI output: removing Airflow's loading noise line by line without touching real
output, and finding the JSON a command printed with ``-o json``.

The seed dropped every line up to the last one starting with '[', which also dropped task
output. Here only lines that are recognisably noise go: Python warnings printed while Airflow
imports, and the handful of log messages every CLI start prints (plugin setup, DagBag filling,
bundle loading). Everything else, task logs included, is kept.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from typing import Any

# Airflow 2's warning format: "/path/file.py:22 RemovedInAirflow3Warning: message".
_PY_WARNING = re.compile(r"^\S+\.py:\d+:? [A-Za-z0-9_]*Warning: ")
# Python's default format puts the offending source line under the warning, indented.
_WARNING_SOURCE = re.compile(r"^  \S")
# Airflow 2 log line: "[2026-11-24T18:50:07.532+0000] {plugins.py:37} INFO - message".
_LOG2 = re.compile(r"^\[\d{4}-\d\d-\d\dT[^\]]+\] \{[^}]+\} [A-Z]+ - (?P<msg>.*)$")
# Airflow 3 (structlog) line: "2026-11-24T18:50:09.008092Z [warning  ] message ...".
_LOG3 = re.compile(r"^\d{4}-\d\d-\d\dT\S+ \[(?P<level>[a-z]+)\s*\] (?P<msg>.*)$")
_NOISE_MESSAGES = re.compile(
    r"^(setup plugin |Filling up the DagBag from |Loaded API auth backend|DAG bundles loaded"
    r"|Loading plugins|Using executor |Could not import graphviz"
    # Airflow 3.0's providers manager, at every start without the FAB provider.
    r"|The hook_class '.*' is not fully initialized)"
)
# A structlog warning may span lines; its last line names the logger "[py.warnings]".
_PY_WARNINGS_LOGGER = "[py.warnings]"
_MAX_HELD_LINES = 8


class NoiseFilter:
    """Feed complete lines with :meth:`line`; each returns the lines that survive, in order.

    A multi-line structlog warning is recognised only at its end, so its first lines are held
    back until the block resolves (at most a few lines); :meth:`flush` releases held lines.
    """

    def __init__(self) -> None:
        self._held: list[str] = []
        self._after_warning = False

    def line(self, text: str) -> list[str]:
        """Take one line (with or without its newline); return the lines to pass on."""
        bare = text.rstrip("\r\n")
        if self._held:
            if _PY_WARNINGS_LOGGER in bare and not _LOG3.match(bare):
                self._held.clear()  # the whole held block was one Python warning
                return []
            if _LOG3.match(bare) or _LOG2.match(bare) or len(self._held) >= _MAX_HELD_LINES:
                released = self.flush()
                return released + self.line(text)
            self._held.append(text)
            return []
        if _PY_WARNING.match(bare):
            self._after_warning = True
            return []
        if self._after_warning and _WARNING_SOURCE.match(bare):
            self._after_warning = False
            return []
        self._after_warning = False
        match = _LOG2.match(bare) or _LOG3.match(bare)
        if match is None:
            return [text]
        message = match.group("msg")
        if _PY_WARNINGS_LOGGER in message:
            return []
        if match.re is _LOG3 and match.group("level") == "warning":
            self._held.append(text)  # may be the first line of a multi-line Python warning
            return []
        return [] if _NOISE_MESSAGES.match(message) else [text]

    def flush(self) -> list[str]:
        """Release whatever is held back (at the end of the output)."""
        held, self._held = self._held, []
        return held


def filter_text(text: str) -> str:
    """Filter a whole captured output at once (buffered responses)."""
    noise = NoiseFilter()
    kept: list[str] = []
    for line in text.splitlines(keepends=True):
        kept.extend(noise.line(line))
    kept.extend(noise.flush())
    return "".join(kept)


class StreamText:
    """Bytes of one output stream in, text out: UTF-8 decoded incrementally, noise removed,
    secrets masked (``mask``).

    With filtering or masking on, text is released a complete line at a time (a partial line
    waits for its newline, up to ``max_partial`` characters; past that it is passed on masked,
    all but its last ``hold`` characters, which may begin a secret the next read ends); with
    both off, as soon as it decodes.
    """

    def __init__(
        self,
        filtering: bool,
        max_partial: int = 64 * 1024,
        mask: Callable[[str], str] | None = None,
        hold: int = 0,
    ) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # Masking works on whole lines (a secret must not be split across two reads), so it
        # needs the line-by-line path even when noise filtering is off.
        self._filter = NoiseFilter() if filtering else None
        self._lines = filtering or mask is not None
        self._mask = mask
        self._partial = ""
        self._max_partial = max_partial
        self._hold = hold

    def feed(self, data: bytes) -> str:
        return self._masked(self._feed(data))

    def finish(self) -> str:
        return self._masked(self._finish())

    def _masked(self, text: str) -> str:
        return self._mask(text) if self._mask is not None and text else text

    def _pass(self, line: str) -> list[str]:
        return self._filter.line(line) if self._filter is not None else [line]

    def _feed(self, data: bytes) -> str:
        text = self._decoder.decode(data)
        if not self._lines:
            return text
        text = self._partial + text
        lines = text.splitlines(keepends=True)
        # A trailing '\r' may be half of a '\r\n' split across reads: wait for the rest.
        if lines and (not lines[-1].endswith("\n")):
            self._partial = lines.pop()
        else:
            self._partial = ""
        out = [kept for line in lines for kept in self._pass(line)]
        if len(self._partial) > self._max_partial:  # no newline in sight: pass it on
            out.extend(self._flush_held())  # held lines came first
            # Masked whole first, so that a secret inside it is gone before it is cut (and
            # masked again in feed(): masking what is masked changes nothing).
            text = self._masked(self._partial)
            cut = max(len(text) - self._hold, 0)
            out.append(text[:cut])
            self._partial = text[cut:]
        return "".join(out)

    def _flush_held(self) -> list[str]:
        return self._filter.flush() if self._filter is not None else []

    def _finish(self) -> str:
        text = self._decoder.decode(b"", final=True)
        if not self._lines:
            return text
        rest = self._partial + text
        self._partial = ""
        out = self._pass(rest) if rest else []
        return "".join(out + self._flush_held())


def parse_json_output(stdout: str) -> Any:
    """The JSON the CLI printed with ``-o json``; stray lines around it are skipped."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        stripped = line.strip()
        if stripped[:1] in "[{":
            try:
                return json.loads(stripped)
            except ValueError:
                continue
    return None
