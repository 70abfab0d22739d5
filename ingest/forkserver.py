"""Warm workers for a long-lived process: each conversion is a fresh process forked from a warm one.

A conversion in a new interpreter (hnn.ingest.worker's :func:`~hnn.ingest.worker.spawn_worker`)
spends most of a small model's time starting Python and importing onnx and numpy (about
0.8 s here, most of it ``ml_dtypes``), every time. A service checks many uploads, so it
starts one *fork server* (hnn.ingest.forkserver_main) that has imported all that once, and
has it fork a child per conversion. The isolation is the same as a fresh worker's: the fork
server is started as every worker is (``python -P``, the cleaned environment, a private
scratch folder, its own session, death with its parent) and never opens an upload; each child
is a new process with the worker's limits (memory, CPU and wall time, its own session), in
the request's own scratch folder, and nothing of one upload's conversion reaches another's.

:class:`WarmWorkers` is a launcher for :func:`hnn.ingest.worker.ingest_in_worker`
(``launcher=``, or ``worker=`` through ``ingest_safely`` and ``hash_with``). A supervisor
thread starts the server, reads its answers and starts it again if it dies (the requests in
flight then fail as crashed converters); the server is started from that thread, which lives
as long as the launcher, because Linux ties a child's death signal to the thread that
started it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from hnn.errors import HnnError
from hnn.ingest.worker import Limits, _environment
from hnn.isolation import die_with_parent, hide_environment_from_children, python_command

log = logging.getLogger("hnn.ingest.forkserver")
START_TIMEOUT_S = 120  # the server's imports, on a loaded machine


class WorkerUnavailable(HnnError):
    """The conversion could not run: the fork server died under it or could not be started. Not the
    upload's fault (a service answers 503); the same request may succeed when retried."""


_SERVER_DIED = object()  # what a request's futures get when the fork server died under it


def _server_setup() -> None:
    die_with_parent()  # one prctl between fork and exec: safe in a process with threads


class WarmWorkers:
    """One fork server; call it as ``launcher(request, scratch, limits) -> exit code or None (timed out)``."""

    def __init__(self):
        hide_environment_from_children()  # before the server starts: it must not read this process's secrets
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, tuple[Future, Future]] = {}  # id -> (pid, exit code)
        self._process: subprocess.Popen | None = None
        self._ready = threading.Event()
        self._closed = False
        self._scratch = Path(tempfile.mkdtemp(prefix="hnn-forkserver-"))
        self._supervisor = threading.Thread(target=self._supervise, name="hnn-forkserver", daemon=True)
        self._supervisor.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise WorkerUnavailable("the conversion fork server did not start")

    def _supervise(self) -> None:
        """Start the server, relay its answers; start it again when it dies, until closed."""
        while not self._closed:
            env = {**_environment(Limits()), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1"}  # no BLAS threads in a process that forks
            try:
                process = subprocess.Popen(python_command("-m", "hnn.ingest.forkserver_main"), stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self._scratch,
                                           env=env, start_new_session=True,
                                           preexec_fn=_server_setup)  # noqa: PLW1509
            except OSError as exc:  # out of processes or memory: try again, the requests meanwhile get 503
                log.warning("cannot start the conversion fork server (%s); retrying", exc)
                time.sleep(1)
                continue
            with self._lock:
                self._process = process
            self._ready.set()
            for line in process.stdout:
                self._relay(line)
            process.wait()
            with self._lock:
                self._ready.clear()
                self._process = None
                orphans, self._pending = self._pending, {}
            for started, finished in orphans.values():  # their server died under them
                for future in (started, finished):
                    if not future.done():
                        future.set_result(_SERVER_DIED)
            if not self._closed:
                log.warning("the conversion fork server exited (%s); starting it again", process.returncode)

    def _relay(self, line: bytes) -> None:
        """One answer of the server to the request it names. Anything else (a malformed line, a second
        answer) is dropped: a line this thread cannot read must never stop it."""
        try:
            message = json.loads(line)
            futures = self._pending.get(int(message["id"]))
            if futures is None:
                return
            if "pid" in message and not futures[0].done():
                futures[0].set_result(int(message["pid"]))
            elif "exit" in message and futures[0].done() and not futures[1].done():
                futures[1].set_result(int(message["exit"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return

    def __call__(self, request: dict, scratch: Path, limits: Limits) -> int | None:
        started, finished = Future(), Future()
        if self._closed or not self._ready.wait(START_TIMEOUT_S):  # closed, or being started again
            raise WorkerUnavailable("the conversion fork server is not running; retry later")
        with self._lock:
            process = self._process
            if process is None or self._closed:
                raise WorkerUnavailable("the conversion fork server is not running; retry later")
            self._next_id += 1
            job_id = self._next_id
            self._pending[job_id] = (started, finished)
            job = {"id": job_id, "request": request, "scratch": str(scratch), "max_memory": limits.max_memory,
                   "timeout": limits.timeout}
            try:
                process.stdin.write((json.dumps(job) + "\n").encode())
                process.stdin.flush()
            except OSError:  # it died just now: the supervisor answers for it
                pass
        died = WorkerUnavailable("the conversion fork server stopped during the conversion; retry")
        try:
            try:
                pid = started.result(START_TIMEOUT_S)
            except FutureTimeout:
                raise WorkerUnavailable("the conversion fork server did not answer; retry later") from None
            if pid is _SERVER_DIED:
                raise died
            try:
                code = finished.result(limits.timeout)
            except FutureTimeout:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    code = finished.result(START_TIMEOUT_S)  # reaped by the server
                except FutureTimeout:
                    raise died from None
                if code is _SERVER_DIED:
                    raise died from None
                return None
            if code is _SERVER_DIED:
                raise died
            return code
        finally:
            with self._lock:
                self._pending.pop(job_id, None)

    def __enter__(self) -> WarmWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server (it kills its workers) and wait for the supervisor."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            process = self._process
        if process is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self._supervisor.join(10)
        shutil.rmtree(self._scratch, ignore_errors=True)


_SHARED: WarmWorkers | None = None
_SHARED_LOCK = threading.Lock()


def shared_workers() -> WarmWorkers:
    """This process's fork server, started on first use and stopped when the process exits: for a
    process that converts many models (a batch's pool or Ray worker)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            import atexit

            _SHARED = WarmWorkers()
            atexit.register(_SHARED.close)
        return _SHARED
