"""Converting untrusted models in a separate, resource-limited worker process.

An uploaded model may be an attack: a protobuf that crashes onnx's C++ code or
exhausts memory in shape inference, a graph that makes a converter loop. So the
conversion runs in a child process (``python -m hnn.ingest.worker_main``) with

* an address-space limit (``RLIMIT_AS``, ``--max-memory``, default 4 GiB),
* a CPU-time limit (``RLIMIT_CPU``) and a wall-clock limit (``--timeout``, default 300 s),
* an environment stripped of everything but what Python and the frameworks need
  (no tokens, keys or credentials reach the converter),

and sends back the IR as JSON, which the parent validates like any IR file. A
crash, a kill or a limit in the worker becomes one line in the parent
(``model.onnx: rejected: exceeded the 4 GiB memory limit``); the parent never
hangs or dies with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hnn.errors import InputError, UsageError

DEFAULT_MAX_MEMORY = 4 * 1024**3
DEFAULT_TIMEOUT_S = 300
# Variables a converter legitimately needs; everything else stays with the parent.
PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "KERAS_BACKEND",
                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "HNN_NO_THIRD_PARTY_PLUGINS")
ERROR_PREFIX = "hnn-worker-error: "  # how hnn.ingest.worker_main reports an error on stderr


@dataclass(frozen=True)
class Limits:
    max_memory: int = DEFAULT_MAX_MEMORY  # bytes of address space
    timeout: float = DEFAULT_TIMEOUT_S  # seconds, wall clock and CPU

    def describe_memory(self) -> str:
        gib = self.max_memory / 1024**3
        return f"{gib:g} GiB" if gib >= 1 else f"{self.max_memory // 1024**2} MiB"


def parse_memory(text: str) -> int:
    """``4G``, ``512M``, ``2GiB`` or a byte count."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if cleaned and cleaned[-1] in units:
            return int(float(cleaned[:-1]) * units[cleaned[-1]])
        return int(cleaned)
    except ValueError:
        from hnn.errors import UsageError

        raise UsageError(f"--max-memory {text!r}: expected a size such as 4G or 512M") from None


def _environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def _apply_limits(limits: Limits):
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limits.max_memory, limits.max_memory))
        cpu = max(1, int(limits.timeout))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        os.setsid()  # its own process group: a timeout kills converter children too

    return apply


def ingest_in_worker(source: str, options: dict, limits: Limits = Limits()):
    """Run :func:`hnn.ingest.pipeline.ingest` on ``source`` in a limited child; returns the Graph."""
    from hnn.ingest.ir import Graph

    label = Path(source).name if isinstance(source, (str, Path)) else str(source)
    request = json.dumps({"source": str(source), "options": options})
    process = subprocess.Popen([sys.executable, "-m", "hnn.ingest.worker_main"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment(),
                               preexec_fn=_apply_limits(limits))
    try:
        stdout, stderr = process.communicate(request, timeout=limits.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise InputError(f"{label}: rejected: exceeded the {limits.timeout:g} s time limit") from None
    if process.returncode == 0:
        try:
            return Graph.from_dict(json.loads(stdout), origin=f"{label} (worker output)")
        except json.JSONDecodeError:
            raise InputError(f"{label}: rejected: the worker returned no IR") from None
    reported = [json.loads(line[len(ERROR_PREFIX):]) for line in stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    memory_signs = ("MemoryError", "bad_alloc", "Cannot allocate memory", "std::bad_alloc", "out of memory")
    if any(sign in stderr for sign in memory_signs):
        raise InputError(f"{label}: rejected: exceeded the {limits.describe_memory()} memory limit")
    if reported:
        error = UsageError if reported[-1]["usage"] else InputError
        message = reported[-1]["message"]
        raise error(message if str(source) in message else f"{label}: {message}")
    if process.returncode in (-signal.SIGXCPU, -signal.SIGKILL) and limits.timeout:
        raise InputError(f"{label}: rejected: exceeded the {limits.timeout:g} s time limit")
    if process.returncode < 0:
        name = signal.Signals(-process.returncode).name
        raise InputError(f"{label}: rejected: the converter crashed ({name}); the file may be malformed or hostile, "
                         f"or need more than the {limits.describe_memory()} memory limit")
    raise InputError(f"{label}: rejected: the converter failed (exit {process.returncode})")
