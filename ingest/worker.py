"""Converting untrusted models in a separate, resource-limited worker process.

An uploaded model may be an attack: a protobuf that crashes onnx's C++ code or
exhausts memory in shape inference, a graph that makes a converter loop, a file
beside the upload that shadows a module. So the conversion runs in a child
process (``python -P -m hnn.ingest.worker_main``, hnn.isolation) with

* a memory limit (``RLIMIT_DATA``: private writable memory, ``--max-memory``, default 4 GiB) and an
  address-space ceiling 8 GiB above it for the frameworks' shared libraries,
* a CPU-time limit (``RLIMIT_CPU``) and a wall-clock limit (``--timeout``, default 300 s)
  that holds even when the worker blocks (an alarm in the child as well as the parent's
  wait) and when the parent is killed (the worker dies with it),
* an environment stripped of everything but what Python and the frameworks need
  (no tokens, keys or credentials reach the converter), and its own scratch folder
  as working folder, never the upload's,

and writes the IR as JSON into that folder. The parent reads it only if it is
under MAX_IR_BYTES, and validates it like any IR file; the worker refuses graphs
of more than MAX_IR_NODES nodes, so what an upload makes the parent parse, merge
and hash is bounded. A crash, a kill or a limit in the worker becomes one line in
the parent (``model.onnx: rejected: exceeded the 4 GiB memory limit``); the
parent never hangs or dies with it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hnn.errors import InputError, UsageError
from hnn.isolation import clean_environment, die_with_parent, hide_environment_from_children, python_command

DEFAULT_MAX_MEMORY = 4 * 1024**3
# Address space allowed beyond --max-memory for the frameworks' shared libraries (apply_limits says why).
LIBRARY_MAPPINGS = 8 * 1024**3
DEFAULT_TIMEOUT_S = 300
ERROR_PREFIX = "hnn-worker-error: "  # how hnn.ingest.worker_main reports an error on stderr
# The largest IR the worker returns and the parent reads: the biggest models hubs hold have tens
# of thousands of layer nodes (about 300 bytes of JSON each); 10^6 chained nodes took the
# parent 8.9 GB and two minutes to parse before these limits.
MAX_IR_NODES = 200_000
MAX_IR_BYTES = 128 * 1024**2
STDERR_TAIL_BYTES = 64 * 1024  # of the worker's stderr, what the parent reads for its reason
IR_FILE = "ir.json"
# The worker's own alarm fires this long after the parent's wait would have killed it.
ALARM_GRACE_S = 5


@dataclass(frozen=True)
class Limits:
    max_memory: int = DEFAULT_MAX_MEMORY  # bytes of address space
    timeout: float = DEFAULT_TIMEOUT_S  # seconds, wall clock and CPU

    def __post_init__(self):
        if not isinstance(self.max_memory, int) or self.max_memory <= 0:
            raise UsageError(f"--max-memory {self.max_memory!r}: must be a positive size")
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            raise UsageError(f"--timeout {self.timeout}: must be a positive number of seconds")

    def describe_memory(self) -> str:
        gib = self.max_memory / 1024**3
        return f"{gib:g} GiB" if gib >= 1 else f"{self.max_memory // 1024**2} MiB"


def parse_memory(text: str, option: str = "--max-memory") -> int:
    """``4G``, ``512M``, ``2GiB`` or a byte count; positive and finite (``option`` names it in the error)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if cleaned and cleaned[-1] in units:
            value = float(cleaned[:-1]) * units[cleaned[-1]]
        else:
            value = float(cleaned)
        if not math.isfinite(value) or value < 1:
            raise ValueError(text)
        return int(value)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected a positive size such as 4G or 512M") from None


def _environment(limits: Limits = Limits(), scratch: Path | None = None) -> dict[str, str]:
    # The worker's front-ends size their scratch space by the memory limit (hnn.plugins.frontends.archives).
    # Its temporary files (a Keras file's ONNX export, ...) go into its scratch folder, which the parent
    # removes however the worker ends: a worker killed by a limit cannot leave them behind.
    extra = {"TMPDIR": str(scratch)} if scratch is not None else {}
    return clean_environment(TF_CPP_MIN_LOG_LEVEL="3", HNN_WORKER_MAX_MEMORY=str(limits.max_memory), **extra)


def _apply_limits(limits: Limits):
    return lambda: apply_limits(limits.max_memory, limits.timeout)


def apply_limits(max_memory: int, timeout: float) -> None:
    """In the worker before it reads the request (between fork and exec, or after a fork server's fork)."""
    import resource

    # The limit is on private writable memory (RLIMIT_DATA: the heap and anonymous mappings, what a
    # conversion allocates), not on address space: a CUDA build of torch maps 3.1 GB of shared-library
    # files at import (read-only code, 0.5 GB of it resident), so a 4 GiB address-space limit refused
    # a 9 M-parameter Llama folder whose conversion peaked at 1.2 GB resident. The address space
    # keeps a ceiling too, LIBRARY_MAPPINGS above the limit.
    resource.setrlimit(resource.RLIMIT_DATA, (max_memory, max_memory))
    resource.setrlimit(resource.RLIMIT_AS, (max_memory + LIBRARY_MAPPINGS, max_memory + LIBRARY_MAPPINGS))
    cpu = max(1, math.ceil(timeout))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    os.setsid()  # its own process group: a timeout kills converter children too
    die_with_parent()
    signal.alarm(cpu + ALARM_GRACE_S)  # survives exec; kills a worker blocked in a read


def ingest_in_worker(source: str, options: dict, limits: Limits = Limits(), launcher=None):
    """Run :func:`hnn.ingest.pipeline.ingest` on ``source`` in a limited child; returns the Graph.

    ``launcher`` runs the child: :func:`spawn_worker` (the default: a fresh interpreter), or a
    :class:`hnn.ingest.forkserver.WarmWorkers` (a fresh process forked from a warm one, for a
    service); both take ``(request, scratch, limits)`` and return the child's exit code.
    """
    from hnn.ingest.ir import Graph

    given = str(source)
    label = Path(given).name
    # The worker runs in its scratch folder: a relative path is given to it absolute.
    opened = os.path.abspath(given) if os.path.exists(given) else given
    hide_environment_from_children()
    scratch = Path(tempfile.mkdtemp(prefix="hnn-worker-"))
    try:
        request = {"source": opened, "label": given, "options": options, "output": IR_FILE, "max_nodes": MAX_IR_NODES}
        returncode = (launcher or spawn_worker)(request, scratch, limits)
        if returncode is None:
            raise InputError(f"{label}: rejected: exceeded the {limits.timeout:g} s time limit")
        stderr = _tail(scratch / "stderr")
        if returncode == 0:
            return Graph.from_dict(_read_ir(scratch / IR_FILE, label), origin=f"{label} (worker output)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    raise _failure(returncode, stderr, label, given, opened, limits)


def spawn_worker(request: dict, scratch: Path, limits: Limits) -> int | None:
    """Run one request in a new ``python -P -m hnn.ingest.worker_main`` in ``scratch`` (its stderr
    in ``scratch/stderr``): its exit code, or None when it ran past the time limit (then it is killed)."""
    with open(scratch / "stderr", "wb") as stderr_file:
        process = subprocess.Popen(python_command("-m", "hnn.ingest.worker_main"), stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=stderr_file, cwd=scratch,
                                   env=_environment(limits, scratch), preexec_fn=_apply_limits(limits))
        try:
            process.communicate(json.dumps(request).encode(), timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None
    return process.returncode


def _tail(path: Path) -> str:
    with open(path, "rb") as file:
        file.seek(max(0, path.stat().st_size - STDERR_TAIL_BYTES))
        return file.read().decode("utf-8", "replace")


def _read_ir(path: Path, label: str) -> dict:
    """The worker's IR document, refused unread when it is larger than MAX_IR_BYTES."""
    if not path.is_file():
        raise InputError(f"{label}: rejected: the worker returned no IR")
    size = path.stat().st_size
    if size > MAX_IR_BYTES:
        raise InputError(f"{label}: rejected: its IR is {size} bytes (limit {MAX_IR_BYTES})")
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InputError(f"{label}: rejected: the worker returned no IR") from None


def _failure(returncode: int, stderr: str, label: str, given: str, opened: str, limits: Limits) -> Exception:
    """The one-line error of a worker that did not succeed, by what it reported or how it ended."""
    reported = []
    for line in stderr.splitlines():
        if line.startswith(ERROR_PREFIX):
            try:
                reported.append(json.loads(line[len(ERROR_PREFIX):]))
            except json.JSONDecodeError:
                continue
    memory_signs = ("MemoryError", "bad_alloc", "Cannot allocate memory", "std::bad_alloc", "out of memory")
    if any(sign in stderr for sign in memory_signs):
        return InputError(f"{label}: rejected: exceeded the {limits.describe_memory()} memory limit")
    if reported:
        error = UsageError if reported[-1].get("usage") else InputError
        message = str(reported[-1].get("message", "")).replace(opened, given)
        named = given in message or message.startswith(f"{label}: ")  # the child names the file already
        return error(message if named else f"{label}: {message}")
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL, -signal.SIGALRM):
        return InputError(f"{label}: rejected: exceeded the {limits.timeout:g} s time limit")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return InputError(f"{label}: rejected: the converter crashed ({name}); the file may be malformed or hostile, "
                          f"or need more than the {limits.describe_memory()} memory limit")
    if returncode == 127:  # the dynamic loader's own exit: binding a symbol or loading a library failed
        return InputError(f"{label}: rejected: the converter could not load its code (exit 127), most often "
                          f"for want of memory under the {limits.describe_memory()} memory limit")
    return InputError(f"{label}: rejected: the converter failed (exit {returncode})")
