"""The output a buffered envelope keeps of one stream, within ``max_output_size``: all of it
when it fits; else its head and its tail, cut at line ends where a line end is near, with a
line between them that says how much was left out. A task's result printed at the end is
then kept as well as what it started with (``task_log`` keeps the end of a log for the same
reason). The command is read to its end either way, so that it never blocks on a full pipe.
"""

from __future__ import annotations

from collections import deque

GAP = "[airflow-rest-bridge] ... {} characters left out (max_output_size) ...\n"
# Room the gap's line may take: with the longest count a stream can have, and the newline
# put before it when the head ends inside a line.
GAP_ROOM = 1 + len(GAP.format(10**20))


class CappedOutput:
    """One stream's text, capped at ``limit`` characters, the gap's line included."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0  # characters added
        self._head: list[str] = []  # everything, until the text outgrows the limit
        self._head_size = 0
        self._tail: deque[str] = deque()  # the latest pieces once it did
        self._tail_size = 0
        self._ends_now: tuple[str, str] | None = None  # _ends() until more text comes
        budget = limit - GAP_ROOM
        if budget >= 2:
            self.head_room, self.tail_room = budget - budget // 2, budget // 2
        else:  # no room for a gap's line: the head alone, as much as fits
            self.head_room, self.tail_room = limit, 0

    @property
    def cut(self) -> bool:
        return self.seen > self.limit

    def add(self, text: str) -> None:
        if not text:
            return
        self._ends_now = None
        was_cut = self.cut
        self.seen += len(text)
        if was_cut:
            self._keep_tail(text)
            return
        self._head.append(text)
        self._head_size += len(text)
        if not self.cut:
            return
        # It just outgrew the limit: head_room characters stay the head, the rest is tail.
        pieces, self._head, self._head_size = self._head, [], 0
        for piece in pieces:
            taken = piece[: max(self.head_room - self._head_size, 0)]
            if taken:
                self._head.append(taken)
                self._head_size += len(taken)
            if len(taken) < len(piece):
                self._keep_tail(piece[len(taken) :])

    def _keep_tail(self, text: str) -> None:
        self._tail.append(text)
        self._tail_size += len(text)
        # One character more than tail_room: whether the tail starts a line.
        while self._tail and self._tail_size - len(self._tail[0]) > self.tail_room:
            self._tail_size -= len(self._tail.popleft())

    def _ends(self) -> tuple[str, str]:
        """The head and the tail kept, each cut at a line end when it holds one."""
        if self._ends_now is None:
            self._ends_now = self._cut_ends()
        return self._ends_now

    def _cut_ends(self) -> tuple[str, str]:
        head = "".join(self._head)
        if "\n" in head:
            head = head[: head.rindex("\n") + 1]
        if self.tail_room == 0:
            return head, ""
        tail = "".join(self._tail)[-(self.tail_room + 1) :]
        starts_a_line, tail = tail[0] == "\n", tail[1:]
        if not starts_a_line and "\n" in tail:
            tail = tail[tail.index("\n") + 1 :]
        return head, tail

    @property
    def dropped(self) -> int:
        """Characters left out (0: nothing was)."""
        if not self.cut:
            return 0
        head, tail = self._ends()
        return self.seen - len(head) - len(tail)

    def text(self) -> str:
        if not self.cut:
            return "".join(self._head)
        head, tail = self._ends()
        if self.tail_room == 0:
            return head
        gap = GAP.format(self.seen - len(head) - len(tail))
        return head + ("" if head.endswith("\n") else "\n") + gap + tail

    def kept(self) -> str:
        """What was kept of a stream that was cut, in words (for the envelope's warning)."""
        head, tail = self._ends()
        if self.tail_room == 0:
            return f"the first {len(head)} are kept, {self.dropped} more were dropped"
        return (
            f"its first {len(head)} and last {len(tail)} characters are kept, the "
            f"{self.dropped} between them left out (a line in it says where)"
        )
