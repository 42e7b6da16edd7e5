"""Jobs on disk and live (bridge.jobs): output kept in order with its streams, replayed from
any offset, cut at the limit with a marker, a full disk ending the spooling and never the
job, followers woken by every change, what a dead daemon left shown as lost (and only that:
never a live daemon's job, nor one that ended as it was loaded), a job made whole or not at
all, a filesystem that cannot lock, and finished jobs kept by count and age. The integration
suite runs real commands as jobs."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.jobs import spool
from bridge.jobs.board import Jobs
from bridge.jobs.job import Job
from bridge.jobs.spool import OUTPUT, RECORD, STREAMS, JobFiles, Piece, existing
from bridge.offload import in_thread

RECORD_FIELDS = {"api": "test", "arguments": {"api": "test"}}


_made: list[Jobs] = []


@pytest.fixture(autouse=True)
def close_files() -> Iterator[None]:
    """A job closes its files when it ends; these tests leave some running."""
    yield
    for jobs in _made:
        for job in jobs.jobs.values():
            job.files.close()
    _made.clear()


async def new_job(tmp_path: Path, limit: int = 1024) -> tuple[Jobs, Job]:
    jobs = Jobs(tmp_path / "jobs")
    _made.append(jobs)
    return jobs, await jobs.create(dict(RECORD_FIELDS), limit)


async def test_output_is_replayed_from_any_offset_with_its_streams(tmp_path: Path) -> None:
    jobs, job = await new_job(tmp_path)
    assert job.state == "queued" and jobs.get(job.job_id) is job
    await job.set_state("running")
    await job.write("stdout", "one\n")
    await job.write("stderr", "warning: ü\n")
    await job.write("stdout", "two\n")
    assert job.files.read(0) == [
        Piece("stdout", 0, b"one\n"),
        Piece("stderr", 4, "warning: ü\n".encode()),
        Piece("stdout", 16, b"two\n"),
    ]
    assert job.files.read(6, limit=5) == [Piece("stderr", 6, b"rning")]
    assert job.files.read(17) == [Piece("stdout", 17, b"wo\n")]
    assert job.files.read(99) == []
    assert job.size == 20 and job.describe()["output_size"] == 20


def replace_index(files_folder: Path, text: str) -> None:
    """Put a wrong index of stream switches where the job's is (a new file: a running job
    goes on writing to the one it has open)."""
    wrong = files_folder / "wrong"
    wrong.write_text(text)
    os.replace(wrong, files_folder / STREAMS)


async def test_a_running_job_reads_its_stream_switches_from_memory(tmp_path: Path) -> None:
    """The index file is written for the next daemon; a running job's followers read the
    switches it keeps in memory, so what the file says no longer matters to them."""
    _, job = await new_job(tmp_path)
    await job.set_state("running")
    await job.write("stdout", "one\n")
    await job.write("stderr", "two\n")
    assert (job.files.folder / STREAMS).read_text() == "0 stdout\n4 stderr\n"
    replace_index(job.files.folder, "0 stderr\n")  # read from the file, all would be stderr
    await job.write("stdout", "three\n")
    await job.write("stdout", "four\n")  # the same stream: no switch
    assert await in_thread(job.files.read, 0, job.size) == [  # as a follower reads
        Piece("stdout", 0, b"one\n"),
        Piece("stderr", 4, b"two\n"),
        Piece("stdout", 8, b"three\nfour\n"),
    ]
    assert job.files.read(5, limit=5) == [Piece("stderr", 5, b"wo\n"), Piece("stdout", 8, b"th")]
    (job.files.folder / STREAMS).unlink()
    assert job.files.read(7, limit=2) == [Piece("stderr", 7, b"\n"), Piece("stdout", 8, b"t")]


async def test_a_reloaded_job_reads_its_index_file_once(tmp_path: Path) -> None:
    _, job = await new_job(tmp_path)
    for number, stream in enumerate(["stdout", "stderr", "stderr", "stdout"]):
        await job.write(stream, f"{stream} {number}\n")
    await job.finish("failed", {"status": "ERROR"})
    assert (job.files.folder / STREAMS).read_text() == "0 stdout\n9 stderr\n27 stdout\n"
    after = Jobs(tmp_path / "jobs")
    await after.load(keep=10, max_age=3600)
    loaded = after.get(job.job_id)
    assert loaded is not None and loaded.size == 36
    replay = [
        Piece("stdout", 0, b"stdout 0\n"),
        Piece("stderr", 9, b"stderr 1\nstderr 2\n"),
        Piece("stdout", 27, b"stdout 3\n"),
    ]
    assert await in_thread(loaded.files.read, 0) == replay
    replace_index(job.files.folder, "0 stderr\n")  # read once: this is not read again
    assert loaded.files.read(0) == replay
    assert loaded.files.read(20, limit=10) == [
        Piece("stderr", 20, b"derr 2\n"),
        Piece("stdout", 27, b"std"),
    ]


async def test_a_follower_reading_as_the_job_writes_gets_each_byte_with_its_stream(
    tmp_path: Path,
) -> None:
    """A follower's thread reads (to the end of the file, past what the job has counted)
    while the job's thread adds output: every byte it gets is told with its own stream."""
    _, job = await new_job(tmp_path, limit=1 << 20)
    done = threading.Event()
    wrong: list[Piece] = []
    reads = 0

    def follower() -> None:
        nonlocal reads
        while not done.is_set():
            for piece in job.files.read(0):
                if piece.data.strip(b"oe") or (b"o" in piece.data) != (piece.stream == "stdout"):
                    wrong.append(piece)
            reads += 1

    reader = threading.Thread(target=follower)
    reader.start()
    try:
        for number in range(300):
            await job.write("stdout" if number % 2 else "stderr", ("o" if number % 2 else "e") * 7)
    finally:
        done.set()
        await in_thread(reader.join)
    assert reads and not wrong
    assert len(job.files.read(0)) == 300


async def test_followers_wake_at_every_change(tmp_path: Path) -> None:
    _, job = await new_job(tmp_path)
    pulse = job.pulse
    waiting = asyncio.ensure_future(pulse.wait())
    await job.write("stdout", "line\n")
    await asyncio.wait_for(waiting, timeout=5)
    pulse = job.pulse
    assert not pulse.is_set()  # a new one for the next change
    ending = asyncio.ensure_future(job.changed())
    await job.finish("succeeded", {"status": "OK", "exit_code": 0})
    await asyncio.wait_for(ending, timeout=5)
    await job.changed()  # an ended job: returns at once
    assert pulse.is_set()
    record = json.loads((job.files.folder / RECORD).read_text())
    assert record["state"] == "succeeded" and record["exit_code"] == 0
    assert record["output_size"] == 5 and record["ended_at"] >= record["created_at"]


async def test_output_past_the_limit_is_cut_with_a_marker(tmp_path: Path) -> None:
    _, job = await new_job(tmp_path, limit=10)
    await job.write("stdout", "12345678")
    await job.write("stdout", "9äbcdef")  # cut inside the ä: no half character is kept
    await job.write("stdout", "never kept")  # nobody follows: handed to no one
    await job.finish("succeeded", {"status": "OK"})
    text = (job.files.folder / OUTPUT).read_text()
    assert text.startswith("123456789\n[airflow-rest-bridge: the output kept ends here, at 10")
    assert "never kept" not in text and job.record["output_cut"] is True


async def test_past_the_limit_followers_get_every_piece_live(tmp_path: Path) -> None:
    """A stream is never cut: what the spool does not keep is handed to each follower, and
    the command waits until every one took it."""
    _, job = await new_job(tmp_path, limit=4)
    got: list[tuple[str, str]] = []

    async def follower() -> None:
        taken = 0
        while not job.ended:
            pulse = job.pulse
            if job.live is not None and job.live_number > taken:
                taken = job.live_number
                got.append(job.live)
                job.took_live()
                continue
            await pulse.wait()

    job.followers = 1
    following = asyncio.ensure_future(follower())
    await job.write("stdout", "1234abc")  # 4 kept, "abc" live
    for number in range(3):
        await job.write("stderr", f"live {number}\n")
        assert got[-1] == ("stderr", f"live {number}\n")  # taken before write() returned
    await job.finish("succeeded", {"status": "OK"})
    await asyncio.wait_for(following, timeout=5)
    assert got == [("stdout", "abc"), *(("stderr", f"live {n}\n") for n in range(3))]
    assert job.size == len((job.files.folder / OUTPUT).read_bytes())


async def test_a_full_disk_ends_the_spooling_with_a_warning(tmp_path: Path) -> None:
    _, job = await new_job(tmp_path)
    job.files.close()
    (job.files.folder / OUTPUT).unlink()
    (job.files.folder / OUTPUT).symlink_to("/dev/full")
    job.files.open()
    await job.write("stdout", "lost to a full disk\n")
    await job.write("stdout", "not tried again\n")
    assert job.size == 0
    assert "spooling the output stopped at byte 0" in job.record["warning"]
    await job.finish("succeeded", {"status": "OK", "warning": "the command's own"})
    assert "the command's own" in job.record["warning"]
    assert "spooling the output stopped" in job.record["warning"]


async def test_a_job_running_when_the_daemon_died_is_lost_with_its_output(
    tmp_path: Path,
) -> None:
    _, job = await new_job(tmp_path)
    await job.set_state("running")
    await job.write("stdout", "so far\n")
    _, finished = await new_job(tmp_path)
    await finished.finish("succeeded", {"status": "OK"})
    # The daemon is SIGKILLed here: nothing more is written, and the kernel closes its files
    # (letting go of the running job's lock). The next one loads the folder.
    job.files.close()
    after = Jobs(tmp_path / "jobs")
    await after.load(keep=10, max_age=3600)
    lost = after.get(job.job_id)
    assert lost is not None and lost.state == "lost" and lost.ended
    assert "the daemon stopped while the job ran" in lost.record["warning"]
    assert lost.size == 7 and lost.files.read(0) == [Piece("stdout", 0, b"so far\n")]
    assert json.loads((job.files.folder / RECORD).read_text())["state"] == "lost"
    kept = after.get(finished.job_id)
    assert kept is not None and kept.state == "succeeded"
    assert [j.job_id for j in after.newest_first()] == [finished.job_id, job.job_id]


async def test_a_job_another_live_daemon_runs_is_left_to_it(tmp_path: Path) -> None:
    """Two daemons on one jobs folder: the running job of the live one is not loaded (it is
    not lost, and not the second daemon's to show); its finished jobs are."""
    _, job = await new_job(tmp_path)
    await job.set_state("running")
    _, finished = await new_job(tmp_path)
    await finished.finish("succeeded", {"status": "OK"})
    second = Jobs(tmp_path / "jobs")
    await second.load(keep=10, max_age=3600)
    assert [j.job_id for j in second.newest_first()] == [finished.job_id]
    assert json.loads((job.files.folder / RECORD).read_text())["state"] == "running"


async def test_a_job_ending_as_a_second_daemon_loads_is_never_marked_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock goes when the job's files close: a daemon sharing the folder that loads just
    then finds it free, and must find the record that says how the job ended."""
    _, job = await new_job(tmp_path)
    await job.set_state("running")
    loop = asyncio.get_running_loop()
    second = Jobs(tmp_path / "jobs")
    close = job.files.close

    def close_then_load() -> None:  # in the job's worker thread, as finish() closes
        close()
        loading = asyncio.run_coroutine_threadsafe(second.load(keep=10, max_age=3600), loop)
        loading.result(timeout=60)

    monkeypatch.setattr(job.files, "close", close_then_load)
    await job.finish("succeeded", {"status": "OK", "exit_code": 0})
    loaded = second.get(job.job_id)
    assert loaded is not None and loaded.state == "succeeded", loaded and loaded.record
    assert json.loads((job.files.folder / RECORD).read_text())["state"] == "succeeded"


async def test_a_job_that_ended_before_its_lock_was_taken_is_left_as_it_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loading daemon reads a record that says running; the job ends (its last record,
    then its lock let go) before that daemon takes the lock: read again under the lock, the
    record says how it ended, and it stays so."""
    _, job = await new_job(tmp_path)
    await job.set_state("running")
    loop = asyncio.get_running_loop()
    read_record = JobFiles.read_record
    reads: list[str] = []

    def read_then_let_it_end(files: JobFiles) -> dict[str, Any]:
        record = read_record(files)
        reads.append(record["state"])
        if len(reads) == 1:  # the job ends now, between this read and the lock
            ending = asyncio.run_coroutine_threadsafe(job.finish("failed", {"exit_code": 1}), loop)
            ending.result(timeout=60)
        return record

    monkeypatch.setattr(JobFiles, "read_record", read_then_let_it_end)
    second = Jobs(tmp_path / "jobs")
    await second.load(keep=10, max_age=3600)
    loaded = second.get(job.job_id)
    assert loaded is not None and loaded.state == "failed" and loaded.record["exit_code"] == 1
    assert reads == ["running", "failed"]  # it did end in between
    assert json.loads((job.files.folder / RECORD).read_text())["state"] == "failed"


async def test_a_job_is_marked_lost_under_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the loading daemon writes ``lost``, it holds the output's lock: no daemon can
    be running the job then (and end it, its record replaced by ``lost``)."""
    _, job = await new_job(tmp_path)
    await job.set_state("running")
    job.files.close()  # its daemon died
    write_record = JobFiles.write_record
    locked_while_lost: list[bool] = []

    def write_and_look(files: JobFiles, record: dict[str, Any]) -> None:
        if record["state"] == "lost":
            with open(files.folder / OUTPUT, "rb") as output:  # as another daemon would
                try:
                    fcntl.flock(output.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    locked_while_lost.append(True)
                else:
                    locked_while_lost.append(False)
        write_record(files, record)

    monkeypatch.setattr(JobFiles, "write_record", write_and_look)
    after = Jobs(tmp_path / "jobs")
    await after.load(keep=10, max_age=3600)
    assert locked_while_lost == [True]
    lost = after.get(job.job_id)
    assert lost is not None and lost.state == "lost"
    with open(job.files.folder / OUTPUT, "rb") as output:  # and let go of it after
        fcntl.flock(output.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def open_under(folder: Path) -> list[str]:
    """This process's open files in ``folder`` (a removed file's link still names it)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd, closed by now
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{folder}/"):
                found.append(target)
    return found


@pytest.mark.parametrize("failing", ["lock", "record"])
async def test_a_job_whose_making_fails_part_way_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Whatever fails (the lock, a full disk under the first record), the call gets the
    error, and no file stays open and no folder without a record stays behind."""

    def refuse_lock(fd: int, operation: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    def half_a_record(record: object, out: Any, **options: Any) -> None:
        out.write('{"state": ')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if failing == "lock":
        monkeypatch.setattr(fcntl, "flock", refuse_lock)
    else:
        monkeypatch.setattr(spool.json, "dump", half_a_record)
    jobs = Jobs(tmp_path / "jobs")
    # The error (and with it the frames of the failed call) is kept while the files are
    # looked at: what only those frames hold is not closed behind the test's back.
    with pytest.raises(OSError) as failed:
        await jobs.create(dict(RECORD_FIELDS), 1024)
    assert failed.value.errno == (errno.EIO if failing == "lock" else errno.ENOSPC)
    assert open_under(tmp_path / "jobs") == []
    assert list((tmp_path / "jobs").iterdir()) == [] and jobs.jobs == {}


@pytest.mark.parametrize("error", [errno.ENOLCK, errno.EOPNOTSUPP])
async def test_where_nothing_can_be_locked_jobs_run_without_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: int
) -> None:
    """NFS without lock support: jobs run and end as ever, and one warning (not one a job)
    says that a second daemon on the folder can no longer tell them from a dead one's."""

    def cannot_lock(fd: int, operation: int) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(fcntl, "flock", cannot_lock)
    monkeypatch.setattr(spool, "_told_cannot_lock", False)  # as in a new daemon
    caplog.set_level(logging.WARNING, logger=spool.__name__)
    _, running = await new_job(tmp_path)
    await running.set_state("running")
    await running.write("stdout", "runs\n")
    _, finished = await new_job(tmp_path)
    await finished.write("stdout", "done\n")
    await finished.finish("succeeded", {"status": "OK"})
    assert finished.files.read(0) == [Piece("stdout", 0, b"done\n")]
    second = Jobs(tmp_path / "jobs")
    await second.load(keep=10, max_age=3600)
    told = [record.getMessage() for record in caplog.records if "locked" in record.getMessage()]
    assert len(told) == 1 and os.strerror(error) in told[0], told
    assert "may mark them lost" in told[0]
    # What the warning says: the running job is taken for a dead daemon's.
    lost = second.get(running.job_id)
    assert lost is not None and lost.state == "lost"


async def test_finished_jobs_are_kept_by_count_and_age(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path / "jobs")
    _made.append(jobs)
    made = [await jobs.create(dict(RECORD_FIELDS), 100) for _ in range(4)]
    for job in made[:3]:
        await job.finish("succeeded", {"status": "OK"})
    await jobs.prune(keep=2, max_age=3600)
    assert [j.job_id for j in jobs.newest_first()] == [j.job_id for j in reversed(made[1:])]
    assert not made[0].files.folder.exists()
    made[1].record["ended_at"] = time.time() - 7200
    await jobs.prune(keep=0, max_age=3600)  # 0: any number, by age only
    assert [j.job_id for j in jobs.newest_first()] == [made[3].job_id, made[2].job_id]
    assert [f.job_id for f in existing(tmp_path / "jobs")] == [made[2].job_id, made[3].job_id]


@pytest.mark.parametrize("job_id", ["../../etc", "", "0" * 19, "g" * 20, "0" * 21])
async def test_only_a_job_id_names_a_job(tmp_path: Path, job_id: str) -> None:
    jobs, job = await new_job(tmp_path)
    (tmp_path / "jobs" / ("0" * 20)).mkdir()  # a folder of that shape, but no job of ours
    assert jobs.get(job_id) is None and jobs.get(job.job_id) is job
    job.files.close()  # its daemon is gone
    after = Jobs(tmp_path / "jobs")
    await after.load(keep=10, max_age=3600)  # the folder without a record is skipped
    assert [j.job_id for j in after.newest_first()] == [job.job_id]
