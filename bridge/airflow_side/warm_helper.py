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

The protocol, on the control socket CONTROL_FD and the sockets to its children and workers,
is warm_protocol.py. A Retire (a newer helper took over) makes it exit once its children are
done. When the daemon goes away (EOF on the control socket) it stops its children and exits.
"""

from __future__ import annotations

import contextlib
import gc
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable

if __package__:  # imported as part of the bridge (its tests)
    from bridge.airflow_side import warm_child, warm_up, warm_worker
    from bridge.airflow_side import warm_protocol as protocol
else:  # run by path, as the daemon runs it: this folder is sys.path[0]
    import warm_child  # type: ignore[import-not-found, no-redef]
    import warm_protocol as protocol  # type: ignore[import-not-found, no-redef]
    import warm_up  # type: ignore[import-not-found, no-redef]
    import warm_worker  # type: ignore[import-not-found, no-redef]

State = protocol.WorkerState

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
        protocol.send(control, protocol.HelperFailed(traceback.format_exc()))
        return 1
    # The imported objects live as long as the helper: keep the collector off them, so that
    # children do not copy pages the collector would touch.
    gc.freeze()
    warm_child.show_command([f"airflow-rest-bridge warm helper (Airflow {facts['version']})"])
    ready = protocol.HelperReady(
        pid=os.getpid(),
        airflow_version=facts["version"],
        watch=facts["watch"],
        failed_imports=facts["failed_imports"],
        skipped_patches=facts["skipped_patches"],
        warmup_seconds=time.monotonic() - started,
    )
    protocol.send(control, ready)
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
                    self.worker_said(key.data)
                elif not self.take_request():
                    self.stop_children()
                    return 0
                elif self.retiring and self.control.fileno() != -1:
                    self.selector.unregister(self.control)
                    self.control.close()
                    self.drop_spare()
                    for pid, worker in list(self.workers.items()):
                        if worker.state is State.IDLE:
                            self.drop_worker(pid)
        return 0

    def take_request(self) -> bool:
        """Read one request and start its child; False when the daemon has gone."""
        try:
            request, fds = protocol.receive(
                self.control, protocol.HANDOVER_FDS, protocol.Command, protocol.Retire
            )
        except protocol.ProtocolError as exc:
            protocol.refused("the helper", exc)  # the daemon sees the report socket close
            return True
        if request is None:
            return False
        if isinstance(request, protocol.Retire):
            self.retiring = True
            return True
        begun = time.monotonic()
        if warm_worker.takes(request.argv) and self.hand_to_worker(request, fds):
            return True
        pid = self.hand_to_spare(request, fds)
        if pid is None:
            pid = self.fork_child(request, fds)
        for fd in fds[:2]:
            os.close(fd)
        report = socket.socket(fileno=fds[2])
        report.setblocking(False)
        self.children[pid] = (report, begun)
        self.fork_spare()
        return True

    def hand_to_spare(self, command: protocol.Command, fds: list[int]) -> int | None:
        """Give the command and its descriptors to the spare child; its pid, or None."""
        if self.spare is None:
            return None
        pid, handoff = self.spare
        self.spare = None
        try:
            protocol.send(handoff, command, fds)
        except OSError:
            handoff.close()  # too big for the socket, or the spare died: it exits on EOF
            return None
        handoff.close()
        return pid

    def hand_to_worker(self, command: protocol.Command, fds: list[int]) -> bool:
        """To an idle worker, else one about to be ready (it reads it in a moment), else a
        new one (up to MAX_WORKERS); False: all busy, a child runs it."""
        idle = [pid for pid, worker in self.workers.items() if worker.state is State.IDLE]
        soon = [pid for pid, worker in self.workers.items() if worker.state is State.RESTORING]
        if not idle + soon and len(self.workers) < MAX_WORKERS and not self.retiring:
            idle = [self.fork_worker(fds)]
        if not idle + soon:
            return False
        pid = (idle + soon)[0]
        worker = self.workers[pid]
        try:
            protocol.send(worker.channel, command, fds[: protocol.WORKER_FDS])
        except OSError:
            self.drop_worker(pid)  # died, or the message is too big: a child runs it
            return False
        report = socket.socket(fileno=fds[2])
        worker.give(report)
        for fd in fds[: protocol.WORKER_FDS]:
            os.close(fd)
        with contextlib.suppress(OSError):  # else the daemon gave up on it already
            report.sendall(protocol.CommandStarted(pid, outlives_command=True).line())
        report.setblocking(False)
        return True

    def worker_said(self, pid: int) -> bool:
        """Take a worker's next answer; False if there is none (yet, or any more)."""
        if (worker := self.workers.get(pid)) is None:
            return False
        try:
            answer = protocol.answer_of(worker.channel)
        except (EOFError, protocol.ProtocolError) as exc:
            if isinstance(exc, protocol.ProtocolError):  # it cannot be trusted to go on
                protocol.refused("the helper", exc)
                warm_child.signal_group(pid, signal.SIGKILL)
            with contextlib.suppress(KeyError):  # it is reaped soon
                self.selector.unregister(worker.channel)
            return False
        if answer is not None:
            self.take_answer(pid, worker, answer)
        return answer is not None

    def take_answer(
        self,
        pid: int,
        worker: warm_worker.Worker,
        answer: protocol.CommandDone | protocol.WorkerReady,
    ) -> None:
        """A worker's command's exit (pipes closed by now), or its being ready."""
        worker.state = worker.state.after(answer)
        if isinstance(answer, protocol.CommandDone):
            self.report_exit(worker, pid, answer.code)
            if answer.last:  # it takes no more: gone once it sees its socket close
                self.drop_worker(pid)
        elif self.retiring and worker.state is State.IDLE:
            self.drop_worker(pid)

    def report_exit(self, worker: warm_worker.Worker, pid: int, code: int) -> None:
        if worker.report is not None:
            protocol.send_exit(worker.report, pid, code, worker.begun)
            worker.report = None

    def fork_worker(self, in_flight: list[int]) -> int:
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

    def fork_child(self, command: protocol.Command, fds: list[int]) -> int:
        return self.fork(lambda: warm_child.run_command(command, *fds))

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
                while worker.state is State.BUSY and self.worker_said(pid):
                    pass
                self.report_exit(worker, pid, os.waitstatus_to_exitcode(status))
                self.drop_worker(pid)
            elif pid in self.children:
                report, begun = self.children.pop(pid)
                protocol.send_exit(report, pid, os.waitstatus_to_exitcode(status), begun)

    def stop_children(self) -> None:
        """The daemon is gone: nobody reads these commands any more."""
        self.drop_spare()
        for pid, worker in list(self.workers.items()):
            if worker.state is not State.BUSY:
                self.drop_worker(pid)  # it exits on EOF
        for pid in [*self.children, *self.workers]:
            warm_child.signal_group(pid, signal.SIGTERM)
        give_up = time.monotonic() + STOP_GRACE
        while (self.children or self.workers) and time.monotonic() < give_up:
            time.sleep(0.05)
            self.reap()
        for pid in [*self.children, *self.workers]:
            warm_child.signal_group(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
