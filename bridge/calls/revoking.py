"""What a reload does at once for the tokens it revoked (``token revoke``, then SIGHUP): every
named token that the tokens file no longer holds loses its follows and waits, and its
running jobs say so in their record.

- Its follows and waits (bridge.calls.follows) end within a poll interval, with a warning
  that names the token and http code 403; what they waited on (a run, a task, a job) goes on.
- Its running jobs get a warning in their record (and ``token_revoked_at``, Unix time), and
  their commands run on to their end: a revocation stops no command; admin sees the job and
  may cancel it. A stream's job no longer waits for its client to come back (no client of
  that token can): it runs on as a detached job does.
"""

from __future__ import annotations

import logging
import time

from bridge.calls import envelope
from bridge.calls.call import Daemon
from bridge.config.tokens import TokenTable
from bridge.jobs.job import Job

log = logging.getLogger(__name__)


async def revoke(daemon: Daemon, tokens: TokenTable) -> None:
    """End the follows and mark the running jobs of the tokens ``tokens`` no longer hold."""
    marked = [job for job in daemon.jobs.jobs.values() if _revoked_job(job, tokens)]
    for job in marked:  # before its stream's follower ends, which would start that wait
        job.reattach_wait = None
    ended = daemon.follows.revoke(tokens)
    when = time.time()
    said = envelope.http_date(envelope.now())
    for job in marked:
        await job.note(
            f"its token '{job.record.get('token')}' was revoked at {said}; the command runs "
            "on to its end (admin may cancel it)",
            token_revoked_at=when,
        )
    if ended or marked:
        log.warning(
            "revoked tokens: %d follow(s) ended, %d running job(s) marked (their commands run on)",
            ended,
            len(marked),
        )


def _revoked_job(job: Job, tokens: TokenTable) -> bool:
    """A running job of a revoked token, not marked at an earlier reload."""
    owner = job.record.get("owner")
    if job.ended or not isinstance(owner, str) or "token_revoked_at" in job.record:
        return False
    return tokens.revoked(owner)
