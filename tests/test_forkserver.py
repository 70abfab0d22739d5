"""The warm fork server (hnn.ingest.forkserver): the fresh worker's answers, limits and isolation, faster."""

import os
import signal
import time

import pytest

from hnn.errors import InputError
from hnn.ingest.forkserver import WarmWorkers
from hnn.ingest.pipeline import EXAMPLE_MODEL, ingest_safely
from hnn.ingest.worker import Limits


@pytest.fixture(scope="module")
def workers():
    launcher = WarmWorkers()
    yield launcher
    launcher.close()


def test_a_forked_worker_gives_the_graph_a_fresh_worker_gives(workers):
    warm = ingest_safely(EXAMPLE_MODEL, worker=workers, simplify=False)
    fresh = ingest_safely(EXAMPLE_MODEL, simplify=False)
    assert warm.digest() == fresh.digest() and warm.meta.weight_marks == fresh.meta.weight_marks


def test_a_bad_file_gets_the_same_one_line_error(workers, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(os.urandom(2048))
    errors = []
    for launcher in (workers, None):
        with pytest.raises(InputError) as caught:
            ingest_safely(bad, worker=launcher, simplify=False)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "\n" not in errors[0] and "not a valid ONNX model" in errors[0]


def test_the_memory_and_time_limits_hold_in_a_forked_worker(workers):
    with pytest.raises(InputError, match="exceeded the 64 MiB memory limit|converter crashed"):
        ingest_safely(EXAMPLE_MODEL, worker=workers, limits=Limits(max_memory=64 * 1024**2), simplify=False)
    with pytest.raises(InputError, match="exceeded the 0.01 s time limit"):
        ingest_safely(EXAMPLE_MODEL, worker=workers, limits=Limits(timeout=0.01), simplify=False)
    assert len(ingest_safely(EXAMPLE_MODEL, worker=workers, simplify=False).nodes) > 0  # and the next one works


def test_a_fork_server_that_dies_is_started_again(workers):
    old = workers._process.pid
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (workers._process is None or workers._process.pid == old):
        time.sleep(0.05)
    assert len(ingest_safely(EXAMPLE_MODEL, worker=workers, simplify=False).nodes) > 0
    assert os.getsid(workers._process.pid) == workers._process.pid  # in a session of its own, as every worker is


def test_lines_that_are_not_the_servers_answers_are_dropped_and_the_relay_goes_on(workers):
    for line in (b"garbage\n", b'{"id": "x", "pid": 1}\n', b'{"id": 999999, "pid": 5}\n', b"[1, 2]\n",
                 b'{"id": 1, "pid": "not a number"}\n'):
        workers._relay(line)  # must not raise: an exception here would stop every later conversion
    assert len(ingest_safely(EXAMPLE_MODEL, worker=workers, simplify=False).nodes) > 0


def test_a_closed_launcher_says_the_conversion_is_unavailable_not_that_the_file_is_bad():
    from hnn.ingest.forkserver import WorkerUnavailable

    launcher = WarmWorkers()
    launcher.close()
    with pytest.raises(WorkerUnavailable, match="not running"):
        ingest_safely(EXAMPLE_MODEL, worker=launcher, simplify=False)
