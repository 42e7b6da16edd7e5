"""The daemon's first lines, run before the imports that take most of a second.

SIGHUP's default action ends a process, and the daemon's own handler (bridge.service.serve)
is in place only once the event loop runs. Until then a SIGHUP is remembered here: one that
came before the settings were read is answered by that read (bridge.cli forgets it), one that
came after is a reload as soon as the daemon's handler is in place. Standard library only,
so that nothing is imported before the handler is set.
"""

from __future__ import annotations

import signal
from types import FrameType

_pending = False


def _remember(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True


def catch_early_sighups() -> None:
    signal.signal(signal.SIGHUP, _remember)


def sighup_pending() -> bool:
    """Whether a SIGHUP came since the last look; the look forgets it."""
    global _pending
    pending, _pending = _pending, False
    return pending


def main() -> int:
    """The console script and ``python -m bridge``: the handler first, then the daemon."""
    catch_early_sighups()
    from bridge.cli import main as run_the_daemon  # after the handler, on purpose

    return run_the_daemon()
