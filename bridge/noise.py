"""Removing Airflow's loading noise from CLI output, line by line, without touching real output.

The seed dropped every line up to the last one starting with '[', which also dropped task
output. Here only lines that are recognisably noise go: Python warnings printed while Airflow
imports, and the handful of log messages every CLI start prints (plugin setup, DagBag filling,
bundle loading). Everything else, task logs included, is kept.
"""

from __future__ import annotations

import codecs
import re

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
    r"|Loading plugins|Using executor |Could not import graphviz)"
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
    """Bytes of one output stream in, text out: UTF-8 decoded incrementally, noise removed.

    With filtering on, text is released a complete line at a time (a partial line waits for
    its newline, up to ``max_partial`` characters); with filtering off, as soon as it decodes.
    """

    def __init__(self, filtering: bool, max_partial: int = 64 * 1024) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._filter = NoiseFilter() if filtering else None
        self._partial = ""
        self._max_partial = max_partial

    def feed(self, data: bytes) -> str:
        text = self._decoder.decode(data)
        if self._filter is None:
            return text
        text = self._partial + text
        lines = text.splitlines(keepends=True)
        # A trailing '\r' may be half of a '\r\n' split across reads: wait for the rest.
        if lines and (not lines[-1].endswith("\n")):
            self._partial = lines.pop()
        else:
            self._partial = ""
        out = [kept for line in lines for kept in self._filter.line(line)]
        if len(self._partial) > self._max_partial:  # no newline in sight: pass it on as is
            out.extend(self._filter.flush())  # held lines came first
            out.append(self._partial)
            self._partial = ""
        return "".join(out)

    def finish(self) -> str:
        text = self._decoder.decode(b"", final=True)
        if self._filter is None:
            return text
        rest = self._partial + text
        self._partial = ""
        out = self._filter.line(rest) if rest else []
        return "".join(out + self._filter.flush())
