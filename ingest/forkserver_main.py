"""The warm fork server's side of :mod:`hnn.ingest.forkserver`: fork one fresh, limited worker per request.

Started once by a long-lived process (``python -P -m hnn.ingest.forkserver_main``, isolated as
every worker is: hnn.isolation), it imports the ONNX ingestion stack and warms its caches, then
never opens a model itself. Each request (one JSON line on stdin: an id, the worker request of
hnn.ingest.worker, its scratch folder and limits) is served by ``fork``: the child resets what
it inherited (signal handlers, the protocol pipes), moves into the request's scratch folder,
sends its stderr to ``scratch/stderr``, applies the worker's limits (hnn.ingest.worker.apply_limits:
memory, CPU time, its own session, death with this server, an alarm) and runs
:func:`hnn.ingest.worker_main.convert`, then exits without returning here. This server answers
``{"id", "pid"}`` when the child starts and ``{"id", "exit"}`` (the exit code, negative for a
signal, as subprocess reports it) when it has been reaped. It exits, killing its children, when
stdin closes.

Single-threaded on purpose: a fork copies only the calling thread, so nothing here may start
threads (numpy's BLAS is held to one thread by the environment the parent gives this server).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import tempfile

from hnn.ingest import worker_main
from hnn.ingest.worker import apply_limits
from hnn.isolation import hide_environment_from_children

JOB_FIELDS = {"id", "request", "scratch", "max_memory", "timeout"}


def _warm() -> None:
    """Import and compute, once, what every conversion of an ONNX file needs (children inherit it)."""
    from hnn.ingest import pipeline  # noqa: F401  (onnx, numpy, the front-ends)
    from hnn.plugins.manager import get_plugin_manager
    from hnn.provenance import fingerprint

    get_plugin_manager()
    fingerprint._hyperplanes()


def _child(job: dict, wake_fds: tuple[int, int]) -> None:
    """In the forked child: become the worker of ``job``; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in wake_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)  # stdout is the server's protocol: never written by a worker
        err = os.open(os.path.join(job["scratch"], "stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 2)
        os.chdir(job["scratch"])
        os.environ["HNN_WORKER_MAX_MEMORY"] = str(job["max_memory"])
        os.environ["TMPDIR"] = job["scratch"]  # temporary files die with the request's folder
        tempfile.tempdir = None  # the server may have cached its own
        apply_limits(job["max_memory"], job["timeout"])
        code = worker_main.convert(job["request"])
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001  (whatever happens, the child must not return into the server)
        code = 1
    finally:
        os._exit(code)


def _serve() -> int:
    # Not dumpable (inherited by every child, which never execs): another process of the user, a
    # converter child included, cannot open this server's /proc entries, its protocol pipes among them.
    hide_environment_from_children()
    _warm()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select through the wakeup fd
    signal.set_wakeup_fd(wake_write)
    jobs: dict[int, int] = {}  # pid -> request id
    stdin = sys.stdin.buffer
    pending = b""

    def say(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    def reap() -> None:
        while jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in jobs:
                say({"id": jobs.pop(pid), "exit": os.waitstatus_to_exitcode(status)})

    while True:
        try:
            ready, _, _ = select.select([stdin, wake_read], [], [])
        except InterruptedError:
            continue
        if wake_read in ready:
            os.read(wake_read, 4096)
            reap()
        if stdin in ready:
            chunk = os.read(stdin.fileno(), 1 << 16)
            if not chunk:  # the parent is gone or done: so are the workers
                for pid in jobs:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return 0
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                try:
                    job = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(job, dict) or not JOB_FIELDS <= job.keys():  # only the parent writes here
                    continue
                pid = os.fork()
                if pid == 0:
                    _child(job, (wake_read, wake_write))
                jobs[pid] = job["id"]
                say({"id": job["id"], "pid": pid})
        reap()


if __name__ == "__main__":
    sys.exit(_serve())
