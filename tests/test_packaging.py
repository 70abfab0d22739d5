"""The wheel holds every package and data file (editable installs hide a missing entry)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"hnn": "hnn", "ingest": "hnn/ingest", "hasher": "hnn/hasher", "plugins": "hnn/plugins",
           "rules": "hnn/rules"}


def test_wheel_contains_every_module_and_data_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("hnn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, package_path in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".yaml", ".onnx", ".npz") and "__pycache__" not in path.parts:
                expected.add(f"{package_path}/{path.relative_to(ROOT / folder).as_posix()}")
    assert expected - names == set()
    assert not any(name.startswith(("plugins/", "rules/", "ingest/", "tests/")) for name in names)
