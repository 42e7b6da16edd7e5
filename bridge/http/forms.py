"""Reading a request's arguments: the query string, then a urlencoded or multipart body.

A name in both must have the same values in both (a 400 otherwise: what a proxy checked in
one is what runs). Multipart text
fields are read under a size cap. A file part is taken only where the API's argument says so:
an upload (deploy_dag's ``dag_file``) is streamed to a staged temp file by
:mod:`bridge.deploy.staging` as it arrives, a document (``import``) is read as text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict

from bridge.catalogue.cli_commands import CliCommands
from bridge.catalogue.model import MAX_VALUE_LENGTH
from bridge.catalogue.table import APIS, BY_NAME
from bridge.config.settings import Settings
from bridge.deploy.staging import StagedUpload, stage_upload
from bridge.errors import RequestError
from bridge.http.bodies import UNNAMED_BODY, BodyBudget
from bridge.offload import in_thread
from bridge.text.redact import mask_arguments

MAX_FIELDS = 200
MAX_QUERY_STRING = 64 * 1024
FORM_FIELDS_ROOM = 1024 * 1024  # a form body's fields beside an import's JSON
# A body that stops arriving for this long (between two looks at its byte count) is a 408:
# it would otherwise hold its connection, and an upload its temp file, for ever.
BODY_STALL_SECONDS = 30.0
# A body that arrived whole is parsed without a pause of its own: past this many parts (or
# bytes of urlencoded text) the parsing lets other callbacks run, or goes to a thread.
PARTS_PER_TURN = 16
PARSE_ON_THE_LOOP = 64 * 1024
# Where a multipart file part is taken, from the catalogue's argument traits.
FILE_FIELDS = ", ".join(f"{a.name} ({g.name})" for a in APIS for g in a.args if g.takes_file_part)
# Read by the bridge itself, not by the catalogue (which checks only the APIs' arguments).
CONTROL_NAMES = ("api", "stream", "output", "detach")


@dataclass
class RequestInput:
    query: MultiDict[str]
    form: MultiDict[str] = field(default_factory=MultiDict)
    upload: StagedUpload | None = None

    def raw(self) -> dict[str, list[str]]:
        """Every argument name with its values, from the query string or the body; a name
        both give must have the same values in both (what a proxy checked in one is what
        runs)."""
        merged: dict[str, list[str]] = {}
        for source in (self.query, self.form):
            for name in source:
                values = source.getall(name)
                if name in merged and set(merged[name]) != set(values):
                    raise RequestError(
                        f"'{name}' has one value in the query string and another in the body"
                    )
                merged.setdefault(name, values)
        for name in CONTROL_NAMES:
            # api=version&api=pause: a proxy that checked one value must not see another run.
            if len(set(merged.get(name, ()))) > 1:
                raise RequestError(f"'{name}' was given {len(merged[name])} different values")
        return merged

    async def discard(self) -> None:
        """Remove a staged upload that was not installed."""
        if self.upload is not None:
            await in_thread(self.upload.discard)
            self.upload = None


def _strict_pairs(data: str | bytes, charset: str, what: str) -> list[tuple[str, str]]:
    """The name/value pairs of urlencoded text; bytes that are not text are a 400 (aiohttp
    would turn them into U+FFFD, or fail with a 500 on a body or an unknown charset)."""
    try:
        text = data.decode(charset) if isinstance(data, bytes) else data
        return parse_qsl(
            text.rstrip(),
            keep_blank_values=True,
            encoding=charset,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeError, LookupError):
        raise RequestError(f"{what} is not valid {charset} text") from None
    except ValueError:  # parse_qsl's max_num_fields
        raise RequestError(f"{what} has more than {MAX_FIELDS} fields") from None


def shown_arguments(
    args: Mapping[str, str],
    token: str | Sequence[str] | None,
    installed: CliCommands | None = None,
) -> dict[str, str]:
    """Arguments as envelopes and logs may show them: masked by the traits of the arguments
    of the API they name, a seed API or a command of the installed CLI (an unknown API's
    by their names alone)."""
    name = args.get("api", "").strip().lower()
    api = BY_NAME.get(name) or (installed.apis.get(name) if installed is not None else None)
    return mask_arguments(args, api.secrets if api is not None else {}, token)


def read_query(request: web.Request) -> MultiDict[str]:
    """The query string's arguments, strictly decoded (414 when too long)."""
    if len(request.query_string) > MAX_QUERY_STRING:
        raise RequestError(f"the query string is longer than {MAX_QUERY_STRING} bytes", 414)
    # request.query turns percent-encoded bytes that are not UTF-8 into U+FFFD, which would
    # reach the command as a value the caller never sent.
    _strict_pairs(request.rel_url.raw_query_string, "utf-8", "the query string")
    return MultiDict(request.query)


async def read(
    request: web.Request,
    settings: Settings,
    query: MultiDict[str],
    budget: BodyBudget,
    owner: str | None,
) -> RequestInput:
    """The arguments of the query (read_query) and of the body, which is read under the
    caps of bridge.http.bodies; RequestError (4xx) for bodies it will not take."""
    found = RequestInput(query=query)
    if request.method != "POST" or not request.body_exists:
        return found
    named = bool(query.get("api", "").strip())
    cap = settings.max_upload_size + FORM_FIELDS_ROOM if named else UNNAMED_BODY
    if request.content_length is not None and request.content_length > cap:
        raise RequestError(_too_large(cap, named), status=413, headers={"Connection": "close"})
    size = request.content_length if request.content_length is not None else cap
    with budget.reserved(size, owner, settings):
        try:
            async with asyncio.timeout(settings.body_timeout):
                await _while_the_body_arrives(request, _read_body(request, settings, found, cap))
        except TimeoutError:
            await found.discard()
            raise RequestError(
                f"the request body did not arrive within body_timeout "
                f"({settings.body_timeout:g} s)",
                status=408,
                headers={"Connection": "close"},
            ) from None
    return found


def _too_large(cap: int, named: bool) -> str:
    if named:
        return f"the request body is larger than {cap} bytes"
    return (
        f"the request body is larger than {cap} bytes, as much as a call whose API the "
        "query string does not name may send: name it there (?api=NAME)"
    )


async def _while_the_body_arrives(request: web.Request, reading: Awaitable[None]) -> None:
    """Await ``reading``; give up with a 408 once no byte of the body arrived for
    BODY_STALL_SECONDS (cancelling it, so that whatever it staged is discarded)."""
    task = asyncio.ensure_future(reading)
    seen = -1
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=BODY_STALL_SECONDS)
            if done:
                return task.result()
            if request.content.total_bytes == seen:
                raise RequestError(
                    f"the request body stopped arriving (nothing for {BODY_STALL_SECONDS:g} s)",
                    status=408,
                    headers={"Connection": "close"},
                )
            seen = request.content.total_bytes
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _read_body(
    request: web.Request, settings: Settings, found: RequestInput, cap: int
) -> None:
    content_type = request.content_type
    if content_type == "multipart/form-data":
        try:
            await _read_multipart(request, settings, found, cap)
        except (ValueError, RuntimeError) as exc:
            await found.discard()
            if isinstance(exc, RequestError):
                raise
            # aiohttp's reader, inside a part: a body cut short, a bad _charset_ field.
            raise RequestError(f"malformed multipart/form-data body: {exc}") from None
        except BaseException:
            await found.discard()
            raise
    elif content_type in ("application/x-www-form-urlencoded", ""):
        # An import's JSON may come in the form: the upload cap in force now, plus room for
        # the other fields.
        body = await _read_capped(request, cap)
        charset = request.charset or "utf-8"
        if len(body) > PARSE_ON_THE_LOOP:
            pairs = await in_thread(_strict_pairs, body, charset, "the form body")
        else:
            pairs = _strict_pairs(body, charset, "the form body")
        found.form = MultiDict(pairs)
    else:
        raise RequestError(
            f"unsupported Content-Type {content_type!r}: send the query string, "
            "application/x-www-form-urlencoded or multipart/form-data",
            status=415,
        )


async def _read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is larger than ``limit``."""
    too_large = RequestError(f"the request body is larger than {limit} bytes", status=413)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def _read_multipart(
    request: web.Request, settings: Settings, found: RequestInput, cap: int
) -> None:
    try:
        reader = await request.multipart()
    except ValueError as exc:  # aiohttp's word for a Content-Type without a boundary
        raise RequestError(f"malformed multipart/form-data request: {exc}") from None
    parts = 0
    while (part := await _next_part(reader)) is not None:
        parts += 1
        if request.content.total_bytes > cap:
            raise RequestError(_too_large(cap, named=cap != UNNAMED_BODY), status=413)
        if parts % PARTS_PER_TURN == 0:
            # The parts of a body already buffered come without a pause: let others run.
            await asyncio.sleep(0)
        if not isinstance(part, BodyPartReader):
            raise RequestError("nested multipart bodies are not accepted")
        name = part.name or ""
        if len(found.form) >= MAX_FIELDS:
            raise RequestError(f"more than {MAX_FIELDS} form fields")
        if part.filename is None:
            found.form.add(name, await _read_field(part, name, MAX_VALUE_LENGTH * 4))
            continue
        # Only an upload whose API the query string names: its scope was checked before.
        api = BY_NAME.get(request.query.get("api", "").strip().lower())
        if api is None and found.form.get("api"):
            raise RequestError(
                f"file field {name!r}: name the API in the query string to send a file "
                "(?api=deploy_dag)"
            )
        arg = api.arg(name) if api is not None else None
        if arg is None or not arg.takes_file_part:
            raise RequestError(f"unexpected file field {name!r}: only {FILE_FIELDS} take a file")
        if not arg.is_upload:  # a document (JSON to import): read as text, under the cap
            found.form.add(name, await _read_field(part, name, settings.max_upload_size))
            continue
        if found.upload is not None:
            raise RequestError(f"only one {name} may be uploaded per request")
        found.upload = await stage_upload(
            part.headers.get("Content-Disposition", ""),
            part.filename,
            _chunks(part),
            settings.dags_folder,
            settings.max_upload_size,
        )


READ_CHUNK = 64 * 1024  # bytes of an uploaded file read at once


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    """A file part's bytes as they arrive (aiohttp's streaming reader)."""
    while chunk := await part.read_chunk(READ_CHUNK):
        yield chunk


async def _next_part(reader: MultipartReader) -> MultipartReader | BodyPartReader | None:
    try:
        return await reader.next()
    except (ValueError, HttpProcessingError) as exc:  # not after its boundary; bad part headers
        raise RequestError(f"malformed multipart/form-data body: {exc}") from None


async def _read_field(part: BodyPartReader, name: str, limit: int) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(16 * 1024):
        data += chunk
        if len(data) > limit:
            raise RequestError(f"form field {name!r} is larger than {limit} bytes", status=413)
    try:
        return data.decode(part.get_charset("utf-8"))
    except (UnicodeDecodeError, LookupError):
        raise RequestError(f"form field {name!r} is not valid UTF-8") from None
