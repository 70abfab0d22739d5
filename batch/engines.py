"""Where the tasks of a batch run: in the driver, on a local process pool, or on Ray.

Every engine takes the run's :class:`~hnn.batch.tasks.TaskContext` once
(:meth:`start`: an argument of the pool's initializer, one ``ray.put``), then
runs a task function on ``(key, model)`` pairs and yields ``(key, Outcome)`` as
each is done, in the order they finish, with at most ``window`` tasks in flight
(``INFLIGHT_PER_WORKER`` per worker by default): a store of a million models is
read lazily, never submitted at once. A worker that dies (a crash, a kill, the
out-of-memory killer) becomes a failed Outcome of the model it was running, and
the run goes on. None of them writes the index: the driver (hnn.batch.run) does.

``sequential``: a loop in the driver, the baseline. ``local``: a
``concurrent.futures.ProcessPoolExecutor`` of ``spawn`` processes. ``ray``: Ray
tasks, on a local instance started for the run or on a cluster joined by
address; Ray is imported only here, when the engine is made.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from hnn.batch.tasks import Outcome, TaskContext
from hnn.errors import UsageError, first_line, summary
from hnn.isolation import die_with_parent

ENGINES = ("local", "ray", "sequential")
INFLIGHT_PER_WORKER = 2
RAY_MISSING = "--engine ray needs Ray: pip install 'hnn[ray]'"
RAY_TASK_RETRIES = 1  # a task whose worker died runs once more (a lost node), then fails
WORKER_DIED = ("its worker process died while hashing it (a crash, or a kill such as the out-of-memory "
               "killer's); the model may be malformed or hostile")

Task = Callable[[str, TaskContext], Outcome]
Work = Iterable[tuple[Any, str]]


def make_engine(name: str, workers: int | None = None, address: str | None = None, window: int | None = None):
    """The engine ``name`` (ENGINES); ``workers``: processes (default: the CPU count; on a Ray
    cluster joined by ``address``, its CPUs); ``window``: tasks in flight at most."""
    if name not in ENGINES:
        raise UsageError(f"--engine {name!r}: choose {', '.join(ENGINES)}")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers}: must be at least 1")
    if window is not None and window < 1:
        raise UsageError(f"window {window}: must be at least 1")
    if address is not None and name != "ray":
        raise UsageError("--address joins a Ray cluster: it needs --engine ray")
    if name == "sequential":
        return SequentialEngine()
    if name == "local":
        return LocalEngine(workers, window)
    return RayEngine(workers, address, window)


class SequentialEngine:
    """One task after another, in the driver's process."""

    name = "sequential"

    def __init__(self):
        self.workers = 1
        self.startup_s = 0.0
        self.context: TaskContext | None = None

    def start(self, context: TaskContext) -> None:
        self.context = context

    def run(self, task: Task, work: Work) -> Iterator[tuple[Any, Outcome]]:
        for key, model in work:
            yield key, task(model, self.context)

    def close(self) -> None:
        pass


# --- local: a process pool ------------------------------------------------------------------

_CONTEXT: TaskContext | None = None  # in each pool process: the run's context, set once by _initialize


def _initialize(context: TaskContext, driver: int) -> None:
    global _CONTEXT
    # A driver killed outright (SIGKILL, SIGTERM) cannot stop its pool: the workers die with it
    # (and their sandboxed conversions with them), never left waiting on a queue nobody feeds.
    die_with_parent()
    if os.getppid() != driver:  # it died before that took hold
        os._exit(1)
    _CONTEXT = context
    # Ctrl-C reaches the whole process group: the driver stops the pool; a worker must not die of it mid-task.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call(task: Task, model: str) -> Outcome:
    return task(model, _CONTEXT)


class LocalEngine:
    """A ProcessPoolExecutor of ``workers`` spawned processes (no fork: the driver's threads and open
    index never reach a worker). When a worker dies, the pool breaks and every task in flight with
    it fails: those are run again, one at a time in a fresh pool, so only the model that kills its
    worker fails (alone, it is the one)."""

    name = "local"

    def __init__(self, workers: int | None = None, window: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self.window = window or INFLIGHT_PER_WORKER * self.workers
        self.startup_s = 0.0
        self.context: TaskContext | None = None
        self.pool: ProcessPoolExecutor | None = None

    def start(self, context: TaskContext) -> None:
        started = time.perf_counter()
        self.context = context
        self.pool = self._new_pool()
        self.startup_s = time.perf_counter() - started

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_initialize, initargs=(self.context, os.getpid()))

    def run(self, task: Task, work: Work) -> Iterator[tuple[Any, Outcome]]:
        work = iter(work)
        unsent: deque[tuple[Any, str]] = deque()  # taken from ``work``, not yet run: the pool broke as they went
        suspects: deque[tuple[Any, str]] = deque()  # in flight when a worker died: each runs again alone
        in_flight: dict[Future, tuple[Any, str, bool]] = {}
        finished = False

        def ended(future: Future) -> tuple[Any, Outcome] | None:
            """The outcome of a future that is done, or None when it goes back to run alone."""
            key, model, alone = in_flight.pop(future)
            error = future.exception()
            if error is None:
                return key, future.result()
            if not isinstance(error, BrokenProcessPool):  # an error past the task's own handling (SystemExit)
                return key, Outcome(model, reason=f"internal error: {summary(error)}")
            if alone:
                return key, Outcome(model, reason=WORKER_DIED)
            suspects.append((key, model))
            return None

        try:
            while True:
                if self.pool._broken:  # no public way to ask; every future of a broken pool ends at once
                    for future in wait(in_flight).done:
                        if (result := ended(future)) is not None:
                            yield result
                    self.pool.shutdown(wait=True)
                    self.pool = self._new_pool()
                try:
                    if suspects and not in_flight:
                        key, model = suspects[0]
                        in_flight[self.pool.submit(_call, task, model)] = (key, model, True)
                        suspects.popleft()
                    while not suspects and len(in_flight) < self.window and (
                            pair := unsent.popleft() if unsent else next(work, None)) is not None:
                        unsent.appendleft(pair)
                        in_flight[self.pool.submit(_call, task, pair[1])] = (*pair, False)
                        unsent.popleft()
                except BrokenProcessPool:  # it broke since the check above (what was not sent waits): again
                    continue
                if not in_flight:
                    finished = True
                    return
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    if (result := ended(future)) is not None:
                        yield result
        finally:
            if not finished:  # stopped early (Ctrl-C, a busy index): what is in flight is not wanted
                self._stop(in_flight)

    def _stop(self, in_flight: dict) -> None:
        for future in in_flight:
            future.cancel()
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # the pool's own workers, by their handles (their sandboxes die with them)
            if process.is_alive():
                process.kill()
        self.pool = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


# --- ray ---------------------------------------------------------------------------------------


class RayEngine:
    """Ray tasks of one CPU each. Without ``address``: a local Ray instance started for the run (its
    CPUs: ``workers``, else the machine's), no dashboard, shut down at the end. With ``address``
    (``auto`` on a cluster's head, ``ray://host:10001``): joins that cluster, whose workers must
    have the same hnn installed and the models at the same paths; ``workers`` then only sizes the
    window (default: the cluster's CPUs). The context goes to the object store once; a task that
    fails for Ray's reasons (its worker or node died) runs once more, then is a failed Outcome."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, window: int | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError(RAY_MISSING) from None
        self.requested = workers
        self.workers = workers or os.cpu_count() or 1
        self.address = address
        self.requested_window = window
        self.window = window or INFLIGHT_PER_WORKER * self.workers
        self.startup_s = 0.0
        self.started_ray = False
        self.context_ref = None

    def start(self, context: TaskContext) -> None:
        import ray

        started = time.perf_counter()
        if not ray.is_initialized():  # a library caller may have joined a cluster already
            options = {"log_to_driver": False, "logging_level": logging.ERROR}
            if self.address:
                ray.init(address=self.address, **options)
            else:  # "local": a new instance even where RAY_ADDRESS names a cluster
                ray.init(address="local", num_cpus=self.workers, include_dashboard=False, **options)
            self.started_ray = True
        if self.address and not self.requested:
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.window = self.requested_window or INFLIGHT_PER_WORKER * self.workers
        self.context_ref = ray.put(context)
        self.startup_s = time.perf_counter() - started

    def run(self, task: Task, work: Work) -> Iterator[tuple[Any, Outcome]]:
        import ray

        remote = ray.remote(num_cpus=1, max_retries=RAY_TASK_RETRIES)(task)
        work = iter(work)
        in_flight: dict = {}  # ObjectRef -> (key, model)
        finished = False
        try:
            while True:
                while len(in_flight) < self.window and (pair := next(work, None)) is not None:
                    in_flight[remote.remote(pair[1], self.context_ref)] = pair  # the context: by reference
                if not in_flight:
                    finished = True
                    return
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    key, model = in_flight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        outcome = Outcome(model, reason=f"its Ray task failed: {type(exc).__name__}: "
                                                        f"{first_line(exc)}")
                    yield key, outcome
        finally:
            if not finished:
                for ref in in_flight:
                    ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started_ray:
            import ray

            ray.shutdown()
            self.started_ray = False
