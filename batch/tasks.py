"""The task of a batch: one model's content digest, then (when the index does not know it) its hash.

:func:`hash_task` runs where the engine puts it: in the driver (sequential),
in a process of the pool (local) or in a Ray worker, next to the storage on a
cluster. It reads the file's bytes once for the digest, skips a file whose digest
the index knew when the run began (:class:`KnownDigests`, handed to every worker
once), and otherwise converts and hashes it exactly as ``hnn index add`` does:
``hash_with(load(checkpoint, bits), path, **ingest_options)``, the conversion in
hnn's sandboxed worker with the run's memory and time limits: a fresh process
forked from this process's warm fork server (hnn.ingest.forkserver, started on
the first task; a new interpreter per model would spend most of a small model's
time importing onnx). The checkpoint is loaded once per process: ``load`` is cached. It never writes the
index; it returns an :class:`Outcome` for the one writer, the driver.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hnn._version import __version__
from hnn.errors import HnnError, summary
from hnn.hasher.runtime import HashResult, hash_with, load
from hnn.index.contents import PREFIX, content_digest
from hnn.ingest.forkserver import shared_workers

DIGEST_BYTES = 32  # SHA-256


class KnownDigests:
    """A set of content digests as one sorted array of raw 32-byte digests: 32 bytes a file in
    every process that holds it (a Python set of the strings takes about four times that), and
    on Ray read from the object store without a copy by every worker of a node."""

    def __init__(self, digests=()):
        raw = sorted({raw for raw in map(_raw, digests) if raw is not None})
        self.array = np.array(raw, dtype=f"S{DIGEST_BYTES}") if raw else np.empty(0, dtype=f"S{DIGEST_BYTES}")

    def __len__(self) -> int:
        return len(self.array)

    def __contains__(self, digest: str) -> bool:
        raw = _raw(digest)
        if raw is None or not len(self.array):
            return False
        key = np.array(raw, dtype=self.array.dtype)
        position = int(np.searchsorted(self.array, key))
        return position < len(self.array) and self.array[position] == key


def _raw(digest: str) -> bytes | None:
    """The 32 bytes of ``sha256:<64 hex digits>``; None for anything else (the driver checks those)."""
    if not isinstance(digest, str) or not digest.startswith(PREFIX):
        return None
    try:
        raw = bytes.fromhex(digest[len(PREFIX):])
    except ValueError:
        return None
    return raw if len(raw) == DIGEST_BYTES else None


@dataclass(frozen=True)
class TaskContext:
    """What every task of a run shares, handed to each worker once: the digests the index knew at the
    start, the checkpoint (a path every worker can read, or None: the shipped one of ``bits``) and the
    keyword arguments of ingestion (``trust``, ``limits``, ``framework``, ``input_shape``)."""

    known: KnownDigests
    checkpoint: str | None = None
    bits: int | None = None
    ingest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a task found for one model: skipped (its digest was known), hashed, or failed (``reason``)."""

    model: str
    content: str | None = None  # its content digest; None for a spec, or a file that could not be read
    hashed: HashResult | None = None
    skipped: bool = False
    reason: str | None = None  # the one-line reason it failed
    checkpoint: str | None = None  # digest of the checkpoint the worker hashed with
    version: str = __version__  # the worker's hnn
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.reason is not None


def hash_task(model: str, context: TaskContext) -> Outcome:
    """Digest, then (unless known) convert and hash ``model``; every error becomes a failed Outcome."""
    started = time.perf_counter()
    content = None
    try:
        # A link (a manifest may list one) is digested as what it points to, which is what converts.
        content = content_digest(os.path.realpath(model)) if os.path.exists(model) else None
        if content is not None and content in context.known:
            return Outcome(model, content, skipped=True, seconds=time.perf_counter() - started)
        loaded = load(context.checkpoint, context.bits)
        trusted = context.ingest.get("trust")  # converts in this process: no worker at all
        hashed = hash_with(loaded, model, **(context.ingest if trusted else {**context.ingest,
                                                                             "worker": shared_workers()}))
    except HnnError as exc:
        return Outcome(model, content, reason=str(exc), seconds=time.perf_counter() - started)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a bug, a converter's own error: this model fails, the run goes on
        return Outcome(model, content, reason=f"internal error: {summary(exc)}",
                       seconds=time.perf_counter() - started)
    return Outcome(model, content, hashed=hashed, checkpoint=loaded.digest, seconds=time.perf_counter() - started)
