"""The driver of a batch: one writer committing each model's result to the index as it arrives.

:func:`add_store` lists the store's models (hnn.batch.store), reads the content
digests the index holds once and hands them to the engine's workers with the
run's options (hnn.batch.engines), and commits each :class:`~hnn.batch.tasks.Outcome`
in its own transaction as it arrives, in the order the tasks finish. Only this
process opens the index for writing: SQLite wants one writer, and the index
stays on the driver's local disk while the models may sit on shared storage.

Each model ends as one result dict, as ``hnn index add --json`` prints them:
``added`` (a new entry), ``duplicate`` (new bytes, but its IR and weights are an
entry already: ``exists``), ``skipped`` (its content digest was indexed, before
the run or by an earlier copy in it; a file known when the run began is not even
converted) or ``failed`` (its one-line reason). The digests of added and
duplicate files are recorded, so a rerun skips every model it committed and tries
again only those that failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from hnn._version import __version__
from hnn.batch.engines import make_engine
from hnn.batch.store import Item, open_store
from hnn.batch.tasks import KnownDigests, Outcome, TaskContext, hash_task
from hnn.errors import printable
from hnn.hasher.runtime import load
from hnn.index.registry import add_hashed, duplicate_result
from hnn.index.store import Index, IndexBusy

STATUSES = ("added", "duplicate", "skipped", "failed")


def add_store(index_path: str | Path, store: str | Path, engine: str = "local", workers: int | None = None,
              address: str | None = None, label: str | None = None, checkpoint=None, bits: int | None = None,
              progress: Callable | None = None, report: Callable[[dict], None] | None = None,
              window: int | None = None, **ingest_options) -> dict:
    """Hash every model of ``store`` (a folder or a manifest) on ``engine`` and add it to the index;
    ``report`` gets each model's result as it is committed, ``progress(done, total, description)``
    the counts so far. Returns ``{"summary": {counts, engine, workers, seconds, ...}, "failures":
    [{"model", "reason"}, ...]}``."""
    runner = make_engine(engine, workers, address, window)  # usage errors (Ray missing) before any work
    started = time.perf_counter()
    found = open_store(store, ingest_options.get("framework"))
    loaded = load(checkpoint, bits)
    counts = dict.fromkeys(STATUSES, 0)
    failures: list[dict] = []
    total = len(found.items) + len(found.unreadable)

    def record(result: dict) -> None:
        counts[result["status"]] += 1
        if result["status"] == "failed":
            failures.append({"model": result["model"], "reason": result["reason"]})
        if report:
            report(result)
        if progress:
            progress(sum(counts.values()), total, describe(counts))

    with Index(index_path, create=True) as index:
        index.check_compatible(loaded.digest, loaded.bits)
        context = TaskContext(KnownDigests(index.content_digests()),
                              str(Path(checkpoint).resolve()) if checkpoint else None, bits, dict(ingest_options))
        if progress:
            progress(0, total, "starting")
        for path, reason in found.unreadable:
            record({"model": path, "status": "failed", "reason": reason})
        committed = bytearray(len(found.items))
        results = runner.run(hash_task, enumerate(item.path for item in found.items))
        try:
            runner.start(context)
            for position, outcome in results:
                try:
                    result = commit(index, loaded, found.items[position], outcome, label)
                except IndexBusy as busy:  # another writer holds the index: stop, and say what was not added
                    results.close()
                    for rest, item in enumerate(found.items):
                        if not committed[rest]:
                            record({"model": printable(item.path), "status": "failed",
                                    "reason": f"not added: {busy}"})
                    break
                committed[position] = 1
                record(result)
        finally:
            results.close()  # stopped early (Ctrl-C, an error): the engine drops what is in flight
            runner.close()
    summary = {"store": printable(str(found.root)), "models": total, **counts, "ignored": found.ignored,
               "engine": runner.name, "workers": runner.workers, "seconds": round(time.perf_counter() - started, 3),
               "startup_seconds": round(runner.startup_s, 3)}
    return {"summary": summary, "failures": failures}


def describe(counts: dict) -> str:
    """``5 added, 1 skipped, 2 failed``: the counts so far (those above zero) for the progress bar."""
    return ", ".join(f"{counts[status]} {status}" for status in STATUSES if counts[status])


def commit(index: Index, loaded, item: Item, outcome: Outcome, label: str | None) -> dict:
    """The result of one model, its entry added in its own transaction when it is new."""
    shown = printable(item.path)
    if outcome.failed:
        return {"model": shown, "status": "failed", "reason": outcome.reason}
    known = index.content_entry(outcome.content) if outcome.content else None
    if outcome.skipped or known is not None:  # known before the run, or committed from a copy in it
        if known is None:  # removed since the run began: still not converted again in this run
            return {"model": shown, "status": "skipped", "id": None, "reason": "its content was indexed "
                    "when the run began"}
        return {**duplicate_result(shown, known, "same content"), "status": "skipped"}
    if outcome.version != __version__:
        return {"model": shown, "status": "failed", "reason": f"hashed by hnn {outcome.version} on its worker, but "
                f"the driver runs hnn {__version__}: install the same hnn on every node"}
    if outcome.checkpoint != loaded.digest:
        return {"model": shown, "status": "failed", "reason": f"its worker hashed it with checkpoint "
                f"{str(outcome.checkpoint)[:12]}, the driver's is {loaded.digest[:12]}: give every node the "
                f"same checkpoint"}
    return add_hashed(index, loaded, outcome.hashed, shown, item.name,
                      item.label if item.label is not None else label, outcome.content)
