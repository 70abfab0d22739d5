"""The wheel holds every package and data file (editable installs hide a missing entry)."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: subprocesses, frameworks (the quick loop skips it)

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
# Top-level folder -> where it lands in the wheel, as pyproject.toml maps it.
FOLDERS = {folder: package.replace(".", "/") for package, folder in SETUPTOOLS["package-dir"].items()}


def test_every_package_folder_is_listed_in_pyproject():
    # setuptools installs only the packages listed: a subfolder left out imports in an editable
    # install and is missing from the wheel.
    found = {f"{package}.{'.'.join(init.parent.relative_to(ROOT / folder).parts)}".rstrip(".")
             for package, folder in SETUPTOOLS["package-dir"].items()
             for init in (ROOT / folder).rglob("__init__.py") if "__pycache__" not in init.parts}
    assert found == set(SETUPTOOLS["packages"])
    assert {"hnn.zoo", "hnn.index", "hnn.evaluation", "hnn.hasher.training", "hnn.cli"} <= found


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
    assert {"hnn/zoo/build.py", "hnn/index/ranking.py", "hnn/evaluation/protocol.py", "hnn/cli/app.py",
            "hnn/hasher/training/loop.py"} <= names
    # Nothing installs as a bare top-level package (`plugins`, `index`, ...) beside hnn.
    bare = tuple(f"{folder}/" for folder in FOLDERS if folder != "hnn") + ("tests/", "benchmarks/")
    assert not any(name.startswith(bare) for name in names)
