"""Attacks on the untrusted path that an adversarial review found (issue 17), each as a test.

Every hostile input is built here, in the test's own folder: nothing committed is itself
dangerous to open.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import run_hnn

from hnn.ingest.pipeline import EXAMPLE_MODEL

pytestmark = pytest.mark.slow  # end to end: subprocesses, frameworks (the quick loop skips it)

MARKER_CODE = "open({marker!r}, 'w').write('ran')\n"


def one_line_error(result, code: int, *fragments: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("hnn: ") and "internal error" not in lines[0], result.stderr
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    return lines[0]


# --- code beside the upload never runs ------------------------------------------------------------

def test_a_module_beside_the_upload_is_never_imported_by_the_worker(tmp_path):
    # json.py and numpy.py shadow what the worker imports first; the old worker (python -m, run in
    # the caller's folder) imported them and ran their code. The hash must succeed and nothing run.
    folder = tmp_path / "upload"
    folder.mkdir()
    shutil.copy(EXAMPLE_MODEL, folder / "model.onnx")
    marker = tmp_path / "ran"
    for shadow in ("json.py", "numpy.py", "onnx.py", "sitecustomize.py"):
        (folder / shadow).write_text(MARKER_CODE.format(marker=str(marker)))
    result = run_hnn("hash", "model.onnx", "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    # The worker reports the file as the user named it, not the absolute path it opened.
    ingested = run_hnn("ingest", "model.onnx", "--json", cwd=folder)
    assert ingested.returncode == 0, ingested.stderr
    assert '"source": "model.onnx"' in ingested.stdout and not marker.exists()


def test_the_worker_gets_no_secrets_and_its_parent_hides_its_own(monkeypatch):
    from hnn.ingest.worker import _environment

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    assert "AWS_SECRET_ACCESS_KEY" not in _environment()
    # /proc/<parent>/environ: the parent makes itself non-dumpable before it starts a worker, so a
    # worker of the same (non-root) user cannot read it.
    code = ("import ctypes; from hnn.isolation import hide_environment_from_children as hide; "
            "ok = hide(); print(ok, ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["True", "0"], result.stderr


NON_DUMPABLE_PARENT = """
import ctypes, os, subprocess, sys
if sys.argv[1] == "hide":
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0, as hnn.isolation.hide_environment_from_children
child = ("import os\\ntry:\\n    environ = open(f'/proc/{os.getppid()}/environ', 'rb').read()\\n"
         "    print('READ' if b'secret-value' in environ else 'ABSENT')\\nexcept PermissionError:\\n    print('DENIED')")
print(subprocess.run([sys.executable, "-c", child], env={}, capture_output=True, text=True, cwd="/").stdout.strip())
"""


@pytest.mark.skipif(not (os.geteuid() == 0 and shutil.which("setpriv") and Path("/usr/bin/python3").exists()),
                    reason="needs root, setpriv and a system python to run as an unprivileged user")
@pytest.mark.parametrize("mode, expected", [("show", "READ"), ("hide", "DENIED")])
def test_a_non_dumpable_parent_hides_its_environment_from_a_child_of_the_same_user(mode, expected):
    # As the unprivileged user a platform should run hnn as: a child reads its parent's secrets
    # from /proc unless the parent made itself non-dumpable first, as hnn does before a worker starts.
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="hnn-dumpable-", dir="/tmp"))  # readable by that user
    try:
        script = folder / "parent.py"
        script.write_text(NON_DUMPABLE_PARENT)
        os.chmod(folder, 0o755)
        os.chmod(script, 0o644)
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                                 str(script), mode], capture_output=True, text=True, cwd="/",
                                env={"PATH": "/usr/bin:/bin", "HNN_SECRET": "secret-value"})
    finally:
        shutil.rmtree(folder)
    assert result.stdout.strip() == expected, result.stderr


# --- the worker's limits hold when it blocks and when its parent dies ------------------------------

def _spawn_limited(parent_code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(parent_code)], stdout=subprocess.PIPE, text=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_a_worker_dies_with_its_parent():
    # A parent starts a worker the way ingest_in_worker does, then is killed (SIGKILL: no cleanup runs).
    parent = _spawn_limited("""
        import subprocess, sys
        from hnn.ingest.worker import Limits, _apply_limits
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 preexec_fn=_apply_limits(Limits(timeout=100)))
        print(child.pid, flush=True)
        child.wait()
    """)
    worker = int(parent.stdout.readline())
    assert _alive(worker)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def test_a_worker_blocked_in_a_read_is_killed_by_its_own_alarm():
    # RLIMIT_CPU does not count time spent blocked; the alarm (the limit plus a grace) does.
    from hnn.ingest.worker import ALARM_GRACE_S, Limits, _apply_limits

    blocked = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                               preexec_fn=_apply_limits(Limits(timeout=1)))
    try:
        assert blocked.wait(timeout=ALARM_GRACE_S + 20) == -signal.SIGALRM
    finally:
        blocked.kill()


@pytest.mark.parametrize("option", [("--max-memory", "-1G"), ("--max-memory", "-5"), ("--max-memory", "0"),
                                    ("--max-memory", "nan"), ("--timeout", "nan"), ("--timeout", "inf"),
                                    ("--timeout", "-3")])
def test_limits_that_would_set_no_limit_are_usage_errors(option):
    one_line_error(run_hnn("hash", EXAMPLE_MODEL, *option), 2, option[0])


# --- what an upload makes the parent do is bounded --------------------------------------------------

def test_the_worker_refuses_a_graph_over_the_node_limit(monkeypatch):
    from hnn.errors import InputError
    from hnn.ingest import worker

    monkeypatch.setattr(worker, "MAX_IR_NODES", 3)  # the example has 7 nodes
    with pytest.raises(InputError, match="limit 3 nodes"):
        worker.ingest_in_worker(str(EXAMPLE_MODEL), {})


def test_the_parent_refuses_worker_output_over_the_size_limit_unread(monkeypatch):
    from hnn.errors import InputError
    from hnn.ingest import worker

    monkeypatch.setattr(worker, "MAX_IR_BYTES", 1000)
    with pytest.raises(InputError, match=r"limit 1000\)"):
        worker.ingest_in_worker(str(EXAMPLE_MODEL), {})


def test_a_deeply_nested_ir_file_is_one_line(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    one_line_error(run_hnn("hash", deep), 1, "nested too deeply")


# --- the index: a file that is not one is never changed; bad entries and bad paths ----------------

def _not_indexes(folder: Path) -> dict[str, bytes]:
    other = sqlite3.connect(folder / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    view = sqlite3.connect(folder / "view.db")
    view.execute("CREATE VIEW v AS SELECT 1")
    view.commit()
    view.close()
    (folder / "empty.db").write_bytes(b"")
    return {name: (folder / name).read_bytes() for name in ("other.db", "view.db", "empty.db")}


@pytest.mark.parametrize("command", [("index", "list"), ("check",), ("index", "query")])
def test_opening_a_file_that_is_not_an_index_never_changes_it(tmp_path, command):
    before = _not_indexes(tmp_path)
    for name in before:
        args = [*command, tmp_path / name] + ([] if command == ("index", "list") else [EXAMPLE_MODEL])
        one_line_error(run_hnn(*args), 1, name)
        assert (tmp_path / name).read_bytes() == before[name]
        assert not (tmp_path / f"{name}-wal").exists()


def test_index_add_goes_on_past_bad_models_and_reports_each(tmp_path):
    odd = tmp_path / os.fsdecode(b"model\xff.onnx")  # a file name that is not UTF-8
    shutil.copy(EXAMPLE_MODEL, odd)
    index = tmp_path / "models.db"
    result = run_hnn("index", "add", index, odd, tmp_path / "missing.onnx", EXAMPLE_MODEL, "--json")
    assert result.returncode == 1
    rows = [__import__("json").loads(line) for line in result.stdout.splitlines()]
    assert [row["status"] for row in rows] == ["added", "failed", "duplicate"]
    assert rows[0]["model"].endswith("model\\xff.onnx")
    assert "missing.onnx" in rows[1]["reason"] and "internal error" not in result.stderr
    listing = run_hnn("index", "list", index)
    assert listing.returncode == 0 and "model\\xff.onnx" in listing.stdout


def test_a_busy_index_is_one_line_and_loses_nothing(tmp_path, monkeypatch):
    from hnn.errors import HnnError
    from hnn.index import store
    from hnn.index.registry import add_models

    index = tmp_path / "models.db"
    assert run_hnn("index", "add", index, EXAMPLE_MODEL).returncode == 0
    ir = tmp_path / "other.json"
    assert run_hnn("ingest", EXAMPLE_MODEL, "--no-merge", "--input-shape", "1,3,64,64", "-o", ir).returncode == 0
    holder = sqlite3.connect(index, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer that does not let go
    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 300)
    try:
        results = add_models(index, [str(ir), str(ir)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert all("index busy" in r["reason"] and "\n" not in r["reason"] for r in results)
    assert issubclass(store.IndexBusy, HnnError)
    assert len(store.Index(index)) == 1


@pytest.mark.parametrize("version", ["current", "6", "7"])
def test_a_read_only_index_is_read_and_refuses_writes_in_one_line(tmp_path, version):
    # A version-6 file (hnn 0.5.0) lacks only the patterns table, which it gains when it can be
    # written; a version-7 one (0.5.1, 0.5.2) only the row saying its signatures are of op patterns
    # alone. Read-only, each is read as it is.
    index = tmp_path / "models.db"
    assert run_hnn("index", "add", index, EXAMPLE_MODEL).returncode == 0
    if version != "current":
        from hnn.hasher.runtime import hash_model

        db = sqlite3.connect(index)
        if version == "6":
            db.execute("DROP TABLE patterns")
        else:
            db.execute("UPDATE patterns SET signature = ?",
                       (hash_model(str(EXAMPLE_MODEL)).structure.signature("ops").tobytes(),))
        db.execute("DELETE FROM meta WHERE key = 'patterns'")
        db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (version,))
        db.commit()
        db.close()
    if subprocess.run(["chattr", "+i", str(index)], capture_output=True).returncode != 0:
        os.chmod(index, 0o444)
        os.chmod(tmp_path, 0o555)
        if os.geteuid() == 0:
            os.chmod(tmp_path, 0o755)
            pytest.skip("root ignores permissions and chattr is unavailable: no read-only file to test")
    try:
        assert run_hnn("index", "list", index).returncode == 0
        checked = run_hnn("check", index, EXAMPLE_MODEL, "--json")
        assert checked.returncode == 4, checked.stderr
        family = json.loads(checked.stdout)["family"]
        assert (family is None) == (version == "6")
        if family is not None:  # the query was signed with the file's kind of op pattern
            assert family["id"] == 1 and family["pattern_similarity"] == 1.0
        one_line_error(run_hnn("index", "remove", index, "1"), 1, "cannot write")
    finally:
        subprocess.run(["chattr", "-i", str(index)], capture_output=True)
        os.chmod(tmp_path, 0o755)


def test_damaged_index_values_are_one_line(tmp_path):
    index = tmp_path / "models.db"
    assert run_hnn("index", "add", index, EXAMPLE_MODEL).returncode == 0
    db = sqlite3.connect(index)
    db.execute("UPDATE entries SET code = x'00'")
    db.commit()
    one_line_error(run_hnn("index", "list", index), 1, "damaged", "#1")
    db.execute("UPDATE meta SET value = 'sixty-four' WHERE key = 'bits'")
    db.commit()
    db.close()
    one_line_error(run_hnn("check", index, EXAMPLE_MODEL), 1, "damaged", "bit count")


@pytest.mark.parametrize("args", [("index", "query", "x.db", "m.onnx", "-k", "-1"),
                                  ("index", "query", "x.db", "m.onnx", "--radius", "-1"),
                                  ("index", "remove", "x.db", "-5"), ("hash", "--no-such-option", "m.onnx")])
def test_usage_errors_are_one_line(args):
    one_line_error(run_hnn(*args), 2)
