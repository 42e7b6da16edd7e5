"""The warm Airflow interpreter: import Airflow and its CLI once, then fork one child per command.

    <airflow's python> warm_helper.py CONTROL_FD

Run by the daemon with the Python behind the configured ``airflow`` executable; never imported
by the daemon. Standard library and Airflow only: it is not installed beside Airflow.

Why: a cold ``airflow`` pays seconds for importing Airflow on every call. Airflow's own task
runner avoids that by forking a pre-imported interpreter; this does the same for CLI commands
(what is done once beforehand: warm_up.py). A child runs ``airflow.__main__.main()`` with the
request's argv and environment, in a session of its own, writing to the pipes the daemon
reads, exactly as a cold ``airflow`` would. One child is forked ahead of need and waits.
Commands that only read go to a worker (warm_worker.py), a child that stays, instead.

Protocol, on the SOCK_SEQPACKET socket CONTROL_FD (one message per datagram):

- helper -> daemon, once warm: ``{"ready": true, "version": ..., "watch": [paths], ...}``
- daemon -> helper, per command: ``{"argv": [...], "env": {...}}`` with three
  file descriptors attached: the child's stdout, its stderr and a report socket.
- on the report socket, lines of JSON: the child writes ``{"pid": N}`` once it leads its own
  session (so the daemon can always stop it); the helper writes ``{"pid": N, "exit": code,
  "seconds": s}`` when it has reaped it. ``exit`` is negative for a signal, as in asyncio.
  For a worker's command the helper writes both, the first as ``{"pid": N, "worker": true}``
  (the process outlives the command: once ``exit`` came, its session is not the command's).

A ``{"retire": true}`` message (a newer helper took over) makes it exit once its children are
done. When the daemon goes away (EOF on the control socket) it stops its children and exits.
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

if __package__:  # imported as part of the bridge (its tests)
    from bridge.airflow_side import warm_child, warm_up, warm_worker
else:  # run by path, as the daemon runs it: this folder is sys.path[0]
    import warm_child  # type: ignore[import-not-found, no-redef]
    import warm_up  # type: ignore[import-not-found, no-redef]
    import warm_worker  # type: ignore[import-not-found, no-redef]

STOP_GRACE = 5.0  # seconds children get after SIGTERM when the daemon is gone
# Workers for read-only commands: as many as the daemon runs commands at once by default
# (max_concurrent_commands); a read beyond that gets a forked child.
MAX_WORKERS = 4


def main(control_fd: int) -> int:
    started = time.monotonic()
    control = socket.socket(fileno=control_fd)
    try:
        facts = warm_up.warm_up()
    except BaseException:
        control.send(json.dumps({"ready": False, "error": traceback.format_exc()}).encode())
        return 1
    # The imported objects live as long as the helper: keep the collector off them, so that
    # children do not copy pages the collector would touch.
    gc.freeze()
    warm_child.show_command([f"airflow-rest-bridge warm helper (Airflow {facts['version']})"])
    facts.update(ready=True, pid=os.getpid(), warmup_seconds=time.monotonic() - started)
    control.send(json.dumps(facts).encode())
    return Helper(control).serve()


class Helper:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: dict[int, tuple[socket.socket, float]] = {}
        self.retiring = False  # a newer helper took over: exit once the children are done
        self.wakeup_read, self.wakeup_write = os.pipe()
        os.set_blocking(self.wakeup_write, False)
        # A child forked ahead of need, waiting on its end of this socket for a command: the
        # fork (5-13 ms here) and the database connection are paid between requests. None
        # after a failure: the next request forks its own child, then a new spare is forked.
        self.spare: tuple[int, socket.socket] | None = None
        self.workers: dict[int, warm_worker.Worker] = {}
        self.selector = selectors.DefaultSelector()

    def serve(self) -> int:
        signal.set_wakeup_fd(self.wakeup_write)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select()
        self.selector.register(self.control, selectors.EVENT_READ)
        self.selector.register(self.wakeup_read, selectors.EVENT_READ)
        self.fork_spare()
        while not (self.retiring and not self.children and not self.workers):
            for key, _ in self.selector.select():
                if key.fileobj == self.wakeup_read:
                    os.read(self.wakeup_read, 4096)
                    self.reap()
                elif isinstance(key.data, int):
                    self.worker_done(key.data)
                elif not self.take_request():
                    self.stop_children()
                    return 0
                elif self.retiring and self.control.fileno() != -1:
                    self.selector.unregister(self.control)
                    self.control.close()
                    self.drop_spare()
                    for pid, worker in list(self.workers.items()):
                        if worker.ready:
                            self.drop_worker(pid)
        return 0

    def take_request(self) -> bool:
        """Read one request and start its child; False when the daemon has gone."""
        message, fds = warm_child.receive(self.control)
        if not message:
            return False
        request = json.loads(message)
        if request.get("retire"):
            self.retiring = True
            return True
        if len(fds) != warm_child.FDS_PER_COMMAND:
            for fd in fds:
                os.close(fd)
            return True
        begun = time.monotonic()
        if warm_worker.takes(request.get("argv") or []) and self.hand_to_worker(message, fds):
            return True
        pid = self.hand_to_spare(message, fds)
        if pid is None:
            pid = self.fork_child(request, fds)
        for fd in fds[:2]:
            os.close(fd)
        report = socket.socket(fileno=fds[2])
        report.setblocking(False)
        self.children[pid] = (report, begun)
        self.fork_spare()
        return True

    def hand_to_spare(self, message: bytes, fds: array.array[int]) -> int | None:
        """Give the request and its descriptors to the spare child; its pid, or None."""
        if self.spare is None:
            return None
        pid, handoff = self.spare
        self.spare = None
        try:
            handoff.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError:
            handoff.close()  # too big for the socket, or the spare died: it exits on EOF
            return None
        handoff.close()
        return pid

    def hand_to_worker(self, message: bytes, fds: array.array[int]) -> bool:
        """To an idle worker, else one putting things back (it reads it in a moment), else a
        new one (up to MAX_WORKERS); False: all busy, a child runs it."""
        ready = [pid for pid, worker in self.workers.items() if worker.ready]
        soon = [pid for pid, worker in self.workers.items() if worker.report is None]
        if not ready + soon and len(self.workers) < MAX_WORKERS and not self.retiring:
            soon = [self.fork_worker(fds)]
        if not ready + soon:
            return False
        pid = (ready + soon)[0]
        worker = self.workers[pid]
        try:
            worker.channel.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds[:2])])
        except OSError:
            self.drop_worker(pid)  # died, or the message is too big: a child runs it
            return False
        worker.ready = False
        worker.report, worker.begun = socket.socket(fileno=fds[2]), time.monotonic()
        for fd in fds[:2]:
            os.close(fd)
        with contextlib.suppress(OSError):  # else the daemon gave up on it already
            worker.report.sendall(json.dumps({"pid": pid, "worker": True}).encode() + b"\n")
        worker.report.setblocking(False)
        return True

    def worker_done(self, pid: int) -> None:
        if (worker := self.workers.get(pid)) is not None:
            self.take_answer(pid, worker, warm_worker.answer_of(worker.channel))

    def take_answer(
        self, pid: int, worker: warm_worker.Worker, answer: dict[str, Any] | None
    ) -> None:
        """A worker's command's exit (pipes closed by now), its being ready, or {}: its end."""
        if answer is None:
            return
        if "exit" in answer:
            self.report_exit(worker, pid, int(answer["exit"]))
            if answer.get("last"):  # it takes no more: gone once it sees its socket close
                self.drop_worker(pid)
        elif answer.get("ready"):
            worker.ready = worker.report is None  # else it was given the next one already
            if self.retiring:
                self.drop_worker(pid)
        else:
            self.selector.unregister(worker.channel)

    def report_exit(self, worker: warm_worker.Worker, pid: int, code: int) -> None:
        if worker.report is not None:
            _send_exit(worker.report, pid, code, worker.begun)
            worker.report = None

    def fork_worker(self, in_flight: array.array[int]) -> int:
        """A new worker, without ``in_flight`` (the request's descriptors the helper holds
        now): kept open, the daemon would not see the end of that command's output."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

        def serve_commands() -> int:
            ours.close()
            for fd in in_flight:
                os.close(fd)
            warm_child.show_command(["airflow-rest-bridge warm helper: worker"])
            return warm_worker.serve(theirs)

        pid = self.fork(serve_commands)
        theirs.close()
        self.workers[pid] = warm_worker.Worker(ours)
        self.selector.register(ours, selectors.EVENT_READ, pid)
        return pid

    def drop_worker(self, pid: int) -> None:
        """Forget a worker; it exits when its socket closes (once its command is over)."""
        if (worker := self.workers.pop(pid, None)) is not None:
            with contextlib.suppress(KeyError):  # not if it died
                self.selector.unregister(worker.channel)
            worker.channel.close()
            if worker.report is not None:
                worker.report.close()

    def fork_child(self, request: dict[str, Any], fds: array.array[int]) -> int:
        return self.fork(lambda: warm_child.run_command(request, *fds))

    def fork_spare(self) -> None:
        if self.spare is not None or self.retiring:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

        def wait_for_its_command() -> int:
            ours.close()
            warm_child.show_command(["airflow-rest-bridge warm helper: spare child"])
            warm_child.connect_ahead()
            return warm_child.wait_for_command(theirs)

        pid = self.fork(wait_for_its_command)
        theirs.close()
        self.spare = (pid, ours)

    def fork(self, life: Callable[[], int]) -> int:
        """Fork a child that leaves the helper behind, lives ``life`` and exits with its code."""
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self.become_child()
                code = life()
            finally:
                os._exit(code)
        return pid

    def drop_spare(self) -> None:
        """The spare exits when its socket closes (as it does when the helper dies)."""
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None

    def become_child(self) -> None:
        """Leave the helper behind: a session of its own (the daemon stops a command by its
        process group), default signals, none of the helper's descriptors."""
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self.wakeup_read)
        os.close(self.wakeup_write)
        self.control.close()
        for sibling, _ in self.children.values():
            sibling.close()
        for worker in self.workers.values():
            worker.channel.close()
            if worker.report is not None:
                worker.report.close()
        self.selector.close()
        if self.spare is not None:
            self.spare[1].close()  # else the spare would not see EOF when the helper goes
        warm_child.fresh_database_connections()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and self.spare[0] == pid:
                # It died waiting (killed from outside): the next request forks its own.
                self.spare[1].close()
                self.spare = None
                continue
            worker = self.workers.get(pid)
            if worker is not None:  # killed (a stopped command), or gone on its own
                # The exit it sent before it went, if any, is its command's.
                while worker.report is not None and (said := warm_worker.answer_of(worker.channel)):
                    self.take_answer(pid, worker, said)
                self.report_exit(worker, pid, os.waitstatus_to_exitcode(status))
                self.drop_worker(pid)
            elif pid in self.children:
                report, begun = self.children.pop(pid)
                _send_exit(report, pid, os.waitstatus_to_exitcode(status), begun)

    def stop_children(self) -> None:
        """The daemon is gone: nobody reads these commands any more."""
        self.drop_spare()
        for pid, worker in list(self.workers.items()):
            if worker.report is None:
                self.drop_worker(pid)  # idle: it exits on EOF
        for pid in [*self.children, *self.workers]:
            _signal_group(pid, signal.SIGTERM)
        give_up = time.monotonic() + STOP_GRACE
        while (self.children or self.workers) and time.monotonic() < give_up:
            time.sleep(0.05)
            self.reap()
        for pid in [*self.children, *self.workers]:
            _signal_group(pid, signal.SIGKILL)


def _send_exit(report: socket.socket, pid: int, code: int, begun: float) -> None:
    """The last line on a command's report socket, then close it."""
    line = {"pid": pid, "exit": code, "seconds": time.monotonic() - begun}
    try:
        report.send(json.dumps(line).encode() + b"\n")
    except OSError:
        pass  # the daemon stopped listening; it stopped the command itself
    report.close()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
