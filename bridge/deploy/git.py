"""The git deploy target: DAG files reach every Airflow host as commits on a branch that the
hosts sync from (git-sync, Airflow 3's GitDagBundle).

The bridge keeps a clone of its own (``Settings.git_clone_path``), used by one deploy at a
time. Each change starts from the branch as the remote has it now, is committed under the
caller's token name and pushed, never forced: when the branch moved on meanwhile, the commit
is replayed onto it; when it cannot be (the same lines changed), the change is a 409 and
nothing is pushed. Every git process goes through the command path, like any Airflow
command: audited (the URL masked, it may hold credentials), bounded by command_timeout,
stopped with the daemon. Request values reach git only as paths after ``--`` and as the
message's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bridge.config.settings import Settings
from bridge.errors import RequestError
from bridge.jobs.spool import CANNOT_LOCK
from bridge.offload import in_thread
from bridge.process.path import Captured, CommandPath, CommandSpec
from bridge.text.redact import mask_uri

log = logging.getLogger(__name__)

# git never asks a question on a terminal it does not have: a missing credential fails.
QUIET_GIT = (("GIT_TERMINAL_PROMPT", "0"), ("LC_ALL", "C"))
BRIDGE_EMAIL = "airflow-rest-bridge@localhost"
PUSH_TRIES = 3  # a branch that moves on this often while we replay is a 409


@dataclass(frozen=True)
class Pushed:
    """A change that reached the remote branch."""

    commit: str
    branch: str
    path: str  # the file, relative to the repository's root
    changed: bool  # False: the branch had this content already, nothing was committed


@dataclass(frozen=True)
class Author:
    """Who a commit names: the caller's token, and the client for the message."""

    name: str
    peer: str


class GitRepository:
    """The bridge's clone of ``deploy_git_url`` for one call, run through the command path."""

    def __init__(self, commands: CommandPath, settings: Settings, api: str, peer: str) -> None:
        if not settings.deploy_git_url:
            raise RequestError("deploy_target = git needs deploy_git_url", status=500)
        self.commands = commands
        self.settings = settings  # with deploy_bundle's connection URL, when it has one
        self.url = settings.deploy_git_url
        self.branch = settings.deploy_git_branch
        self.clone = settings.git_clone_path
        self.subdir = settings.deploy_git_subdir
        self.timeout = settings.command_timeout
        self.api = api
        self.peer = peer

    @property
    def dags_root(self) -> Path:
        """The folder of the clone that holds the DAG files."""
        return self.clone / self.subdir if self.subdir else self.clone

    def relative(self, name: str) -> str:
        """A DAG file's path in the repository."""
        return f"{self.subdir}/{name}" if self.subdir else name

    async def sync(self) -> None:
        """The clone as the remote branch is now: cloned the first time, then fetched and
        reset, so nothing a failed deploy left behind is ever pushed."""
        if not await in_thread((self.clone / ".git").is_dir):
            await self._clone()
        await self._fetch()
        await self._git("reset", "reset", "--hard", f"origin/{self.branch}")
        await self._git("clean", "clean", "-fdx", "--quiet")

    async def commit_and_push(self, paths: list[str], message: str, author: Author) -> Pushed:
        """Commit ``paths`` (already changed in the clone) and push the commit; replayed onto
        the branch when it moved on, a 409 when that conflicts."""
        await self._git("stage", "add", "--all", "--", *paths)
        staged = await self._git(
            "diff", "diff", "--cached", "--quiet", "--", *paths, allowed=(0, 1)
        )
        if staged.exit_code == 0:  # the branch already holds exactly this
            return Pushed(await self.head(), self.branch, paths[0], changed=False)
        who = (
            ("GIT_AUTHOR_NAME", author.name),
            ("GIT_AUTHOR_EMAIL", BRIDGE_EMAIL),
            ("GIT_COMMITTER_NAME", "airflow-rest-bridge"),
            ("GIT_COMMITTER_EMAIL", BRIDGE_EMAIL),
        )
        await self._git(
            "commit", "commit", "--quiet", "--no-verify", "-m", message, "--", *paths, env=who
        )
        for _ in range(PUSH_TRIES):
            pushed = await self._git(
                "push",
                "push",
                "--quiet",
                "--",
                "origin",
                f"HEAD:refs/heads/{self.branch}",
                allowed=None,
            )
            if pushed.exit_code == 0:
                return Pushed(await self.head(), self.branch, paths[0], changed=True)
            await self._fetch()
            moved = await self._git(
                "compare",
                "merge-base",
                "--is-ancestor",
                f"origin/{self.branch}",
                "HEAD",
                allowed=(0, 1),
            )
            if moved.exit_code == 0:  # not a branch that moved on: refused for another reason
                raise RequestError(
                    f"git push to {self.branch} was refused; nothing was deployed: "
                    f"{self._said(pushed)}",
                    status=502,
                )
            replayed = await self._git(
                "replay", "rebase", "--quiet", f"origin/{self.branch}", allowed=None, env=who
            )
            if replayed.exit_code != 0:
                await self._git("abort the replay", "rebase", "--abort", allowed=None)
                raise RequestError(
                    f"{', '.join(paths)} changed on {self.branch} since this deploy began, "
                    "and the change cannot be replayed onto it; nothing was pushed",
                    status=409,
                )
        raise RequestError(
            f"{self.branch} kept moving on while this change was replayed {PUSH_TRIES} "
            "times; nothing was pushed",
            status=409,
        )

    async def head(self) -> str:
        found = await self._git("look up", "rev-parse", "HEAD")
        return found.stdout.strip()

    async def _clone(self) -> None:
        """A fresh clone of the branch, made beside its place and moved there whole."""
        parent = self.clone.parent
        await in_thread(parent.mkdir, mode=0o700, parents=True, exist_ok=True)
        partial = parent / f".{self.clone.name}.partial"
        await in_thread(shutil.rmtree, partial, ignore_errors=True)
        try:
            argv = ["clone", "--quiet", "--branch", self.branch, "--single-branch"]
            await self._run("clone", [*argv, "--", self.url, str(partial)], cwd=None)
            await in_thread(os.replace, partial, self.clone)
        finally:
            await in_thread(shutil.rmtree, partial, ignore_errors=True)
        log.info("cloned the deploy repository's %s into %s", self.branch, self.clone)

    async def _fetch(self) -> None:
        refspec = f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"
        await self._git("fetch", "fetch", "--quiet", "--", "origin", refspec)

    async def _git(
        self,
        purpose: str,
        *args: str,
        allowed: tuple[int, ...] | None = (0,),
        env: tuple[tuple[str, str], ...] = (),
    ) -> Captured:
        return await self._run(purpose, list(args), cwd=self.clone, allowed=allowed, env=env)

    async def _run(
        self,
        purpose: str,
        args: list[str],
        cwd: Path | None,
        allowed: tuple[int, ...] | None = (0,),
        env: tuple[tuple[str, str], ...] = (),
    ) -> Captured:
        """One git command; an exit code outside ``allowed`` (None: any) is a 502."""
        git = shutil.which("git")
        if git is None:
            raise RequestError("deploy_target = git, but git is not installed", status=500)
        where = ["-C", str(cwd)] if cwd is not None else []
        spec = CommandSpec(
            [git, *where, *args],
            self.api,
            f"git {purpose}",
            self.peer,
            timeout=self.timeout,
            warm=False,
            env=(*QUIET_GIT, *env),
        )
        result = await self.commands.capture(spec)
        if self.commands.stopping:
            raise RequestError("the daemon is stopping: nothing was deployed", status=503)
        if result.timed_out:
            raise RequestError(
                f"git {purpose} took longer than command_timeout; nothing was deployed",
                status=504,
            )
        if allowed is not None and result.exit_code not in allowed:
            raise RequestError(
                f"git {purpose} failed (exit code {result.exit_code}); nothing was deployed: "
                f"{self._said(result)}",
                status=502,
            )
        return result

    def _said(self, result: Captured) -> str:
        """What git said, the repository's URL (and any credentials in it) masked."""
        text = (result.stderr or result.stdout).strip()[-1000:]
        return mask_uri(text.replace(self.url, "<deploy_git_url>"))


@contextlib.asynccontextmanager
async def locked(locks: dict[str, asyncio.Lock], settings: Settings) -> AsyncIterator[None]:
    """One change at a time in a clone: in this daemon (an asyncio lock), and among the
    daemons that share the Airflow home and so the clone (``flock`` on a file beside it,
    which the kernel lets go when the holder dies, however). Waiting for another daemon is
    bounded by command_timeout: then a 503."""
    async with locks.setdefault(f"git:{settings.git_clone_path}", asyncio.Lock()):
        fd = await in_thread(_lock_file, settings.git_clone_path)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + settings.command_timeout
            pause = 0.05
            while not await in_thread(_try_lock, fd):
                if loop.time() >= deadline:
                    raise RequestError(
                        "another bridge on this Airflow home has been changing the git "
                        f"clone for command_timeout ({settings.command_timeout:g} s); "
                        "nothing was changed, try again",
                        503,
                        headers={"Retry-After": "10"},
                    )
                await asyncio.sleep(pause)  # a retry, not a synchronisation: flock has no event
                pause = min(pause * 2, 1.0)
            yield
        finally:
            await in_thread(os.close, fd)  # closing it lets go of the lock


def _lock_file(clone: Path) -> int:
    clone.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(clone.with_name(clone.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)


def _try_lock(fd: int) -> bool:
    """True once this process holds the lock; False while another does. A filesystem that
    cannot lock at all counts as held: the in-process lock still keeps this daemon's own
    changes apart."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno not in CANNOT_LOCK:
            raise
        log.warning("the git clone's lock cannot be taken here (%s): changed unlocked", exc)
    return True
