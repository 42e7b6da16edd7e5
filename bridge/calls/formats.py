"""The one registry of stream formats: how a use case's events become the bytes of a stream.

:data:`FORMATS` holds every format by its query word, with the words and the ``Accept`` type
that choose it, its content type, its encoder and what its records look like in words. The
API view, the job views, the HTTP answer and the OpenAPI document all read it: a new format
is one entry. Encoders know no HTTP framework; :mod:`bridge.http.answers` writes what they
make into a chunked response.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bridge.calls.events import Event, JobNamed, Note, Output
from bridge.calls.jobs import location
from bridge.config.parsers import is_false_word
from bridge.errors import RequestError

TEXT_RESULT_PREFIX = "airflow-rest-bridge-result: "


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def json_line(value: dict[str, Any]) -> bytes:
    return (dumps(value) + "\n").encode()


class Encoder:
    """One stream's records, made as its events come (one encoder per stream: it may keep
    state between pieces); subclasses say how records look."""

    def job(self, job_id: str) -> bytes:
        """Name the job first, where the format has room (its id is in X-Job-Id anyway)."""
        return b""

    def output(self, stream: str, text: str) -> bytes:
        raise NotImplementedError

    def result(self, result: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def encode(self, event: Event) -> bytes:
        if isinstance(event, Output):
            return self.output(event.stream, event.text)
        if isinstance(event, Note):
            return self.output("stdout", event.text)
        if isinstance(event, JobNamed):
            return self.job(event.job_id)
        return self.result(event.envelope)


class TextEncoder(Encoder):
    """The output as the command wrote it, then one line: a fixed prefix and the envelope
    without ``output``, which a script can find and parse. No output line can pass for it:
    one that starts with the prefix is sent with a space in front (the start of a line that
    may still become the prefix waits for its next piece)."""

    def __init__(self) -> None:
        self._at_line_start = True
        self._held = ""  # the start of a line that may still become the prefix

    def output(self, stream: str, text: str) -> bytes:
        text, self._held = self._held + text, ""
        parts: list[str] = []
        at = 0
        while at < len(text):
            if self._at_line_start:
                rest = text[at:]
                if len(rest) < len(TEXT_RESULT_PREFIX) and TEXT_RESULT_PREFIX.startswith(rest):
                    self._held = rest
                    break
                if rest.startswith(TEXT_RESULT_PREFIX):
                    parts.append(" ")
                self._at_line_start = False
            end = text.find("\n", at)
            end = len(text) if end < 0 else end + 1
            parts.append(text[at:end])
            self._at_line_start = text[end - 1] == "\n"
            at = end
        return "".join(parts).encode()

    def result(self, result: dict[str, Any]) -> bytes:
        held, self._held = self._held, ""
        separator = "" if self._at_line_start and not held else "\n"
        return (held + separator + TEXT_RESULT_PREFIX + dumps(result) + "\n").encode()


class NdjsonEncoder(Encoder):
    """One JSON object a line: output events, then a result event."""

    def job(self, job_id: str) -> bytes:
        return json_line({"event": "job", "job_id": job_id, "location": location(job_id)})

    def output(self, stream: str, text: str) -> bytes:
        return json_line({"event": "output", "stream": stream, "text": text})

    def result(self, result: dict[str, Any]) -> bytes:
        return json_line({"event": "result", **result})


@dataclass(frozen=True)
class Format:
    """A stream format: the query words that choose it (``stream=WORD``), the ``Accept``
    media type that does when no word is given, its content type, its encoder, and its
    records in words for the OpenAPI document (in a call's answer, in a job's output)."""

    name: str
    words: tuple[str, ...]
    accept: str | None
    content_type: str
    encoder: type[Encoder]
    records: str = ""  # empty: named by its media type
    job_records: str = ""

    @property
    def media_type(self) -> str:
        return self.content_type.partition(";")[0]


FORMATS: dict[str, Format] = {
    "text": Format(
        "text",
        ("true", "text"),
        None,
        "text/plain; charset=utf-8",
        TextEncoder,
        records=f"the output as it comes, then a last line '{TEXT_RESULT_PREFIX}' + StreamResult",
        job_records=f"the output, then a last line '{TEXT_RESULT_PREFIX}' + the job",
    ),
    "ndjson": Format(
        "ndjson",
        ("ndjson",),
        "application/x-ndjson",
        "application/x-ndjson; charset=utf-8",
        NdjsonEncoder,
        records="one StreamEvent a line",
        job_records="StreamEvent lines",
    ),
}


JOB_OUTPUT_FORMAT = "text"  # a job's output without stream= or an Accept type


def stream_words(formats: Iterable[Format] | None = None) -> list[str]:
    """Every word ``stream=`` takes, in the registry's order (or of ``formats``)."""
    chosen = FORMATS.values() if formats is None else formats
    return [word for fmt in chosen for word in fmt.words]


def chosen_format(word: str, accept: str, default: str | None) -> Format | None:
    """The format ``stream=word`` (or, without a word, the ``Accept`` header) chooses;
    ``default`` when neither chooses one (None: one envelope, which ``stream=false`` asks
    for too)."""
    word = word.strip().lower()
    if default is None and is_false_word(word):
        word = ""
    for fmt in FORMATS.values():
        if word in fmt.words or (not word and fmt.accept and fmt.accept in accept):
            return fmt
    if word:
        *others, last = stream_words()
        also = " (or false)" if default is None else ""
        raise RequestError(f"stream must be {', '.join(others)} or {last}{also}")
    return FORMATS[default] if default is not None else None
