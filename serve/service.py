"""The state ``hnn serve`` keeps open between requests: the checkpoint, the index, the conversion slots.

What makes a check fast here and slow from the CLI is what is done once: the
checkpoint and rules are loaded at start, the index is opened once (WAL mode,
one connection) and its codes and probes are read into memory before the first
request. Per request only the upload's conversion (in a sandboxed worker with the
CLI's limits, forked from a warm fork server: hnn.ingest.forkserver) and the
hashing remain; they run in threads, outside any lock,
so several run at once. Every use of the index goes through one lock: the
connection serves one caller at a time, which makes the service the index's one
writer (a check's read and an add's write never interleave, and nothing an add
commits is lost to a concurrent check or add). The index calls are milliseconds;
the conversions are what take time, and they never hold the lock.

The answers are the CLI's: :func:`hnn.index.registry.check_hashed`,
:func:`~hnn.index.registry.add_hashed` and the entry listing are the same
functions `hnn check`, `hnn index add` and `hnn index list` call.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from hnn.errors import InputError
from hnn.hasher.runtime import hash_with, load
from hnn.index.contents import content_digest
from hnn.index.registry import add_hashed, check_hashed, check_weights_in, duplicate_result
from hnn.index.store import Index
from hnn.ingest.forkserver import WarmWorkers
from hnn.ingest.pipeline import EXAMPLE_MODEL
from hnn.ingest.worker import Limits
from hnn.serve.settings import ServeSettings


class CheckService:
    """One open index and checkpoint, shared by the requests of a service. Close it when done."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.index = Index(settings.index, create=True, shared=True)
        try:
            stored_bits = self.index.bit_count()
            self.loaded = load(settings.checkpoint,
                               settings.bits or (stored_bits if settings.checkpoint is None else None))
            self.index.check_compatible(self.loaded.digest, self.loaded.bits)
            self.lock = threading.Lock()
            with self.lock:  # read once now, so that the first request does not pay for it
                self.index.warm_up()
            # Private (0700): uploads of all requests live below it, each in a folder of its own.
            self.scratch = Path(tempfile.mkdtemp(prefix="hnn-serve-"))
            self.workers = WarmWorkers()  # each conversion a fresh process, forked from a warm one
            # One conversion of the built-in example now (with the default limits: it only warms up), so
            # the first upload does not pay for what is loaded once.
            hash_with(self.loaded, str(EXAMPLE_MODEL), **{**self.ingest_options(), "limits": Limits()})
        except BaseException:
            self.close()
            raise

    def ingest_options(self, framework: str | None = None) -> dict:
        """What the CLI passes to the conversion: never trusted, the worker's limits, ``--framework``."""
        return {"trust": False, "limits": self.settings.limits, "worker": self.workers, "framework": framework}

    def check(self, path: Path, name: str, k: int, framework: str | None = None) -> dict:
        """`hnn check --json` of the model at ``path``, reported as ``name``; a bare ``.safetensors``
        upload (no config.json: an upload alone in its folder) by its weights alone."""
        from hnn.provenance.weights_only import is_bare_weights, read_weights_file

        if is_bare_weights(path):
            weights = read_weights_file(path)  # a checked header, 16 MiB at most; nothing is converted
            with self.lock:
                return check_weights_in(self.index, weights, name, k)
        hashed = hash_with(self.loaded, str(path), **self.ingest_options(framework))
        with self.lock:
            return check_hashed(self.index, self.loaded, hashed, name, k)

    def add(self, path: Path, name: str, label: str | None, framework: str | None = None) -> dict:
        """`hnn index add --json` of the model at ``path``: added, duplicate or failed; a file whose
        content the index holds already is a duplicate without converting it."""
        content = content_digest(path)
        with self.lock:
            known = self.index.content_entry(content)
        if known is not None:
            return duplicate_result(name, known, "same content")
        hashed = hash_with(self.loaded, str(path), **self.ingest_options(framework))
        with self.lock:
            return add_hashed(self.index, self.loaded, hashed, name, name, label, content)

    def entries(self, offset: int, limit: int) -> tuple[int, list[dict]]:
        """(how many entries there are, ``limit`` of them from ``offset`` in id order)."""
        with self.lock:
            total = len(self.index)
            rows = self.index.db.execute("SELECT id FROM entries ORDER BY id LIMIT ? OFFSET ?",
                                         (limit, offset)).fetchall()
            return total, [self.index.get(row[0]).to_dict() for row in rows]

    def entry(self, entry_id: int) -> dict | None:
        with self.lock:
            try:
                return self.index.get(entry_id).to_dict()
            except InputError:
                return None

    def remove(self, entry_id: int) -> dict | None:
        with self.lock:
            try:
                self.index.get(entry_id)
            except InputError:
                return None
            return self.index.remove(entry_id).to_dict()

    def health(self) -> dict:
        with self.lock:
            entries = len(self.index)
        return {"status": "ok", "entries": entries, "bits": self.loaded.bits, "checkpoint": self.loaded.digest[:16],
                "read_only": self.index.read_only}

    def close(self) -> None:
        """Stop the fork server, close the index, remove the scratch folder (what was opened of them)."""
        if getattr(self, "workers", None) is not None:
            self.workers.close()
        self.index.close()
        if getattr(self, "scratch", None) is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
