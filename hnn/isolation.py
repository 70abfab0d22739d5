"""Starting helper processes isolated from the caller: its sys.path, its folder, its secrets, its lifetime.

Every child hnn starts (the conversion worker, tf2onnx) runs as ``python -P``:
neither the current folder nor a script's folder goes on ``sys.path``, so a module
file beside an upload (``json.py``) is never imported. It runs in a private, empty
scratch folder (so a relative or empty PYTHONPATH entry finds nothing there either),
with an environment that holds only what Python and the frameworks need (the
operator's PYTHONPATH, where plugins may be installed, stays; PYTHONSTARTUP,
PYTHONHOME and the rest do not), and it dies with the process that started it
(``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

# Variables a converter legitimately needs; everything else (tokens, keys) stays with the parent.
PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "KERAS_BACKEND",
                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "HNN_NO_THIRD_PARTY_PLUGINS")
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4


def python_command(*args: str) -> list[str]:
    """This interpreter, without the unsafe first ``sys.path`` entry (``-P``), with ``args``."""
    return [sys.executable, "-P", *args]


def clean_environment(**extra: str) -> dict[str, str]:
    """The variables of PASSED_ENVIRONMENT that are set, and ``extra``."""
    env = {name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ}
    env.update(extra)
    return env


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: the other limits still hold
        return False


def die_with_parent() -> None:
    """In a child between fork and exec: be killed when the parent dies (Linux)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def hide_environment_from_children() -> bool:
    """Make this process's /proc entries (environ, mem) unreadable to processes of the same user
    that are not root, so a child it starts cannot read the secrets it holds. Also stops
    debuggers attaching and core dumps; a root child can still read them (docs/security.md)."""
    return _prctl(_PR_SET_DUMPABLE, 0)
