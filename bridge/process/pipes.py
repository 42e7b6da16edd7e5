"""The two pipes a command writes its stdout and stderr into.

The daemon makes them itself, for an exec'd command and for one forked by the warm helper
alike: the child gets the write ends, the daemon reads the read ends through asyncio's pipe
transports, which it owns and can close even while something the command left behind still
holds a write end (asyncio's own subprocess pipes offer no public way to do that).
"""

from __future__ import annotations

import asyncio
import functools
import os

# asyncio's StreamReader buffer before it pauses reading; a slow client slows the child.
READER_LIMIT = 256 * 1024


class OutputPipes:
    """Make with ``OutputPipes()``; hand :attr:`child_ends` to the child, then
    :meth:`close_child_ends`; :meth:`connect` for the readers; :meth:`close` at the end."""

    def __init__(self) -> None:
        self._out_read, self._out_write = os.pipe()
        self._err_read, self._err_write = os.pipe()
        self._transports: list[asyncio.BaseTransport] = []
        self._read_ends = [self._out_read, self._err_read]
        self._write_ends = [self._out_write, self._err_write]

    @property
    def child_ends(self) -> tuple[int, int]:
        """The child's stdout and stderr."""
        return self._out_write, self._err_write

    def close_child_ends(self) -> None:
        """Our copies of the write ends: once the child has its own, EOF means it is done."""
        for fd in self._write_ends:
            os.close(fd)
        self._write_ends = []

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamReader]:
        """Readers of the child's stdout and stderr."""
        loop = asyncio.get_running_loop()
        readers = []
        while self._read_ends:
            reader = asyncio.StreamReader(limit=READER_LIMIT, loop=loop)
            pipe = os.fdopen(self._read_ends.pop(0), "rb", buffering=0)
            try:
                protocol = functools.partial(asyncio.StreamReaderProtocol, reader, loop=loop)
                transport, _ = await loop.connect_read_pipe(protocol, pipe)
            except BaseException:
                pipe.close()
                raise
            self._transports.append(transport)  # it owns the read end now
            readers.append(reader)
        return readers[0], readers[1]

    def close(self) -> None:
        """Close every end still ours."""
        self.close_child_ends()
        for transport in self._transports:
            transport.close()
        self._transports = []
        for fd in self._read_ends:
            os.close(fd)
        self._read_ends = []
