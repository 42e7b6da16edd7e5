#!/usr/bin/env python3
"""A stand-in for the `airflow` executable, for fault injection only.

The bridge maps `api=test&dag_id=MARKER&task_id=MODE&execution_date=...` to
`fake_airflow.py tasks test -- MARKER MODE DATE`: MODE picks the fault, MARKER (unique per
test) appears in every process's command line so a test can look for leftovers in /proc.

With FAKE_AIRFLOW_RECORD=FILE every command's argv is appended to FILE as one JSON line, so
a test can see exactly what the bridge ran (or that it ran nothing). The until_gate mode
prints a tick a line until the file FAKE_AIRFLOW_GATE exists, then "done N"; with
FAKE_AIRFLOW_TICKS=FILE it also appends each tick to FILE, so that a test can see it run on
after its client left. `connections add` succeeds and echoes the URI, password included, as
Airflow's CLI does; `dags list --output=json` lists one DAG, fake_dag (or those of
FAKE_AIRFLOW_DAGS=a,b, with an import error naming the last on stderr), and `dags reserialize`
succeeds (fails with FAKE_AIRFLOW_RESERIALIZE=fails; with =gated it first waits for the
gate), for refresh_dag and refresh_all. DAG files are listed in FAKE_AIRFLOW_DAGS_FOLDER,
each in its own file or all in FAKE_AIRFLOW_DAG_FILE; `dags delete` succeeds. Run as the
interpreter of deploy_dag's import check, it reports the file's stem as its one DAG (with
FAKE_AIRFLOW_CHECK_GATE=FILE, first creating FILE.waiting, then waiting for FILE). Run as
deploy_dag&wait's parsed check, it says every DAG is parsed (not yet, with
FAKE_AIRFLOW_PARSED=no). The
errflood mode floods stderr as flood does stdout. `version` takes FAKE_AIRFLOW_SLOW_START
seconds when that is set (a slow startup). `scheduler --daemon` forks a service that lives
on, or that dies at once (FAKE_AIRFLOW_SERVICE=dies).
The dagbag mode logs on stdout, as Airflow 2 does, a DAG file of the folder that does not
import, unless --subdir names one file.
The lines mode prints numbered lines (lines500: 500 of them; errlines to stderr). The
environ mode prints the environment it was given as one JSON line; the say mode prints
FAKE_AIRFLOW_SAY (as `config get-value` prints a value it read): split across two writes on
stdout, whole on stderr, inside a JSON line, and in the middle of a line longer than the
bridge waits for a newline.
"""

import json
import os
import signal
import subprocess
import sys
import time


def shows_marker(child: subprocess.Popen[bytes], marker: str) -> bool:
    """Whether ``child`` lives with ``marker`` in its /proc command line, within 60 s."""
    cmdline = f"/proc/{child.pid}/cmdline"
    for _ in range(600):
        if child.poll() is not None:
            return False
        try:
            with open(cmdline, "rb") as seen:
                if marker.encode() in seen.read():
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def forever() -> None:
    while True:
        time.sleep(60)


def fake_service(argv: list[str]) -> int:
    """`scheduler --daemon`: fork a service that writes its pid file and lives on, or (with
    FAKE_AIRFLOW_SERVICE=dies) writes why it fails to its stderr file and exits at once.
    Without --daemon the scheduler is no fault to inject: the usage error answers."""
    options = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    home = os.environ.get("AIRFLOW_HOME", ".")
    pid_file = options.get("--pid", f"{home}/airflow-scheduler.pid")
    err_file = options.get("--stderr", f"{home}/airflow-scheduler.err")
    if os.fork() == 0:  # the service, as python-daemon makes it
        os.setsid()
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(quiet, fd)
        with open(pid_file, "w", encoding="ascii") as pid:
            pid.write(str(os.getpid()))
        if os.environ.get("FAKE_AIRFLOW_SERVICE") == "dies":
            with open(err_file, "a", encoding="utf-8") as err:
                err.write("kinit: no credentials cache found\n")
            os._exit(1)
        time.sleep(600)
        os._exit(0)
    print("forked the scheduler", flush=True)
    return 0


def main(argv: list[str]) -> int:
    record = os.environ.get("FAKE_AIRFLOW_RECORD")
    if record:
        with open(record, "a", encoding="utf-8") as out:
            out.write(json.dumps(argv) + "\n")
    if argv[:1] == ["version"]:
        time.sleep(float(os.environ.get("FAKE_AIRFLOW_SLOW_START", "0")))
        print("3.3.2")
        return 0
    if argv[:1] == ["--help"]:
        print("Groups:\n      dags      Manage DAGs\n      tasks     Manage tasks")
        return 0
    if argv[:1] == ["scheduler"] and "--daemon" in argv:
        return fake_service(argv)
    if argv[:1] and argv[0].endswith("dag_check.py"):  # run as deploy_dag's interpreter
        name = os.path.basename(argv[1]).rsplit(".", 1)[0]
        gate = os.environ.get("FAKE_AIRFLOW_CHECK_GATE")  # say it checks, wait for the gate
        if gate:
            open(gate + ".waiting", "w").close()
            while not os.path.exists(gate):
                time.sleep(0.05)
        print(json.dumps({"dag_ids": [name], "import_errors": {}}))
        return 0
    if argv[:1] and argv[0].endswith("parsed_check.py"):  # deploy_dag&wait's interpreter
        parsed = os.environ.get("FAKE_AIRFLOW_PARSED", "yes") == "yes"
        dags = {d: {"known": True, "source_matches": parsed} for d in argv[argv.index("--") + 1 :]}
        print(json.dumps({"dags": dags, "import_errors": []}))
        return 0
    if argv[:2] == ["dags", "list"]:
        dag_ids = os.environ.get("FAKE_AIRFLOW_DAGS", "fake_dag").split(",")
        folder = os.environ.get("FAKE_AIRFLOW_DAGS_FOLDER", "/dags")
        shared = os.environ.get("FAKE_AIRFLOW_DAG_FILE")  # one file defines them all
        rows = [{"dag_id": d, "fileloc": f"{folder}/{shared or d + '.py'}"} for d in dag_ids]
        print(json.dumps(rows))
        if "FAKE_AIRFLOW_DAGS" in os.environ:  # as Airflow logs a file that does not import
            print(f"Failed to import: /dags/{dag_ids[-1]}_v2.py", file=sys.stderr)
        return 0
    if argv[:2] == ["dags", "reserialize"]:
        if os.environ.get("FAKE_AIRFLOW_RESERIALIZE") == "fails":
            print("Broken DAG: the bundle could not be read", file=sys.stderr)
            return 1
        if os.environ.get("FAKE_AIRFLOW_RESERIALIZE") == "gated":
            print("reserializing", flush=True)
            while not os.path.exists(os.environ["FAKE_AIRFLOW_GATE"]):
                time.sleep(0.05)
        print("serialized", flush=True)
        return 0
    if argv[:2] == ["dags", "delete"]:
        print(f"Removed 3 record(s) of {argv[-1]}", flush=True)
        return 0
    if argv[:2] == ["connections", "add"]:  # like Airflow: echoes the URI, password and all
        uri = next((a.split("=", 1)[1] for a in argv if a.startswith("--conn-uri=")), "")
        print(f"Successfully added `conn_id`={argv[-1]} : {uri}", flush=True)
        return 0
    if "--" not in argv:
        print("usage: fake_airflow.py tasks test -- MARKER MODE DATE", file=sys.stderr)
        return 2
    marker, mode = argv[argv.index("--") + 1 : argv.index("--") + 3]
    print(f"started {marker} {mode}", flush=True)
    if mode == "ok":
        print("hello", flush=True)
        return 0
    if mode == "crash":
        print("something went wrong", file=sys.stderr, flush=True)
        return 3
    if mode == "short":  # a few lines over about a second, then success
        for n in range(3):
            time.sleep(0.3)
            print(f"tick {n}", flush=True)
        return 0
    if mode == "until_gate":
        gate = os.environ["FAKE_AIRFLOW_GATE"]
        tick_file = os.environ.get("FAKE_AIRFLOW_TICKS")
        ticks = 0
        while not os.path.exists(gate):
            print(f"tick {ticks}", flush=True)
            if tick_file:
                with open(tick_file, "a", encoding="utf-8") as out:
                    out.write(f"{ticks}\n")
            ticks += 1
            time.sleep(0.1)
        print(f"done {ticks}", flush=True)
        return 0
    if mode == "dagbag":  # as Airflow 2 loads a dags folder: logs, on stdout, what fails
        subdir = next((a.split("=", 1)[1] for a in argv if a.startswith("--subdir=")), "")
        if not subdir.endswith(".py"):
            print("{dagbag.py:387} ERROR - Failed to import: /dags/zeta_secret.py", flush=True)
        print(f"loaded {subdir or 'the dags folder'}", flush=True)
        return 0
    if mode == "environ":
        print(json.dumps(dict(os.environ)), flush=True)
        return 0
    if mode == "say":
        said = os.environ.get("FAKE_AIRFLOW_SAY", "")
        half = len(said) // 2
        print(f"value = {said[:half]}", end="", flush=True)
        time.sleep(0.2)  # the rest in another read of the pipe
        print(f"{said[half:]}", flush=True)
        print(said, file=sys.stderr, flush=True)
        print(json.dumps({"value": said}), flush=True)
        print("y" * (100 * 1024) + said + "y" * (100 * 1024), flush=True)
        return 0
    if mode == "hang":
        forever()
    if mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        forever()
    if mode == "grandchildren":
        children = [
            subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(600)", marker],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        # "spawned" promises a test that both children show the marker in /proc (a test
        # counts them there); a child that died or never shows it is said instead.
        for child in children:
            if not shows_marker(child, marker):
                print(f"child {child.pid} not seen: exit {child.poll()}", flush=True)
                return 1
        print("spawned", flush=True)
        forever()
    if mode.startswith(("lines", "errlines")):  # lines5000: numbered lines, on stdout
        count = int(mode.removeprefix("err").removeprefix("lines"))
        stream = sys.stderr if mode.startswith("err") else sys.stdout
        for number in range(count):
            print(f"line {number} of {count}", file=stream)
        return 0
    if mode.startswith(("flood", "errflood")):  # flood5: 5 MiB of lines to stdout
        megabytes = int(mode.removeprefix("err").removeprefix("flood") or 1)
        line = ("x" * 1023 + "\n").encode()
        stream = sys.stderr if mode.startswith("err") else sys.stdout
        with os.fdopen(stream.fileno(), "wb", closefd=False) as raw:
            for _ in range(megabytes * 1024):
                raw.write(line)
        return 0
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
