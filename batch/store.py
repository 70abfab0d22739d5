"""The models of a store: every model under a folder, or every path a manifest lists.

A folder is walked in sorted order, depth first. A file or folder that one of
hnn's front-ends claims (the plugin manager's front-ends, each by its own
``Frontend.claims``; only the ``--framework`` one's when it is given) is one
model, and a claimed folder (a TensorFlow SavedModel) is not descended into.
Files no front-end claims are ``ignored``, and so is every symbolic link: a link
is never followed, so nothing outside the store is read (a link to a model inside
the store adds nothing, the model itself is walked), and anything else that is
not a regular file or folder (a FIFO, a socket). A folder that cannot be read is
reported, with its reason, as a model that failed.

A manifest is a text file: one path per line, or a JSON object per line
(``{"path": "a/b.onnx", "label": "resnet"}``); blank lines and lines starting
with ``#`` are left out, a relative path is relative to the manifest's folder,
and a path is taken as written (a link in a manifest is the user's choice).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hnn.errors import InputError, UsageError, printable
from hnn.plugins.frontend import is_spec
from hnn.plugins.manager import frontends


@dataclass(frozen=True)
class Item:
    """One model of a store: its path (as hnn is given it), its entry name, its label (None: the run's)."""

    path: str
    name: str
    label: str | None = None


@dataclass
class Store:
    """What a store holds: its models in order, how many files were ignored, the folders it could not read."""

    root: Path
    items: list[Item] = field(default_factory=list)
    ignored: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


class Claims:
    """Which paths are models, by the front-ends' own ``Frontend.claims`` (the plugin manager's, the
    built-ins first): a path any of them claims is a model (a claimed folder is not descended into);
    with ``framework`` (``--framework``) only the models that front-end claims are taken, the others
    ignored. An unknown framework is a usage error."""

    def __init__(self, framework: str | None = None):
        available = frontends()
        if framework is not None and framework not in available:
            raise UsageError(f"unknown framework {framework!r}; installed: {', '.join(sorted(available))}")
        self.every = [frontend for frontend, _ in available.values()]
        self.chosen = self.every if framework is None else [available[framework][0]]

    def model(self, path: str) -> bool:
        return any(frontend.claims(path) for frontend in self.every)

    def wanted(self, path: str) -> bool:
        return any(frontend.claims(path) for frontend in self.chosen)


def open_store(store: str | Path, framework: str | None = None) -> Store:
    """The models of ``store``: a folder (walked) or a manifest file; their paths absolute (a Ray
    worker need not share the driver's working folder)."""
    root = Path(os.path.abspath(store))
    claims = Claims(framework)
    if root.is_dir():
        return walk(root, claims)
    if root.is_file():
        if claims.model(str(root)):
            raise UsageError(f"{printable(str(root))}: is a model, not a store folder or manifest "
                             f"(`hnn index add` adds single models)")
        return read_manifest(root)
    raise InputError(f"{printable(str(root))}: no such store folder or manifest")


def walk(root: Path, claims: Claims) -> Store:
    """Every model under ``root`` in sorted order (see the module's docstring)."""
    found = Store(root)
    if claims.model(str(root)):  # the store is one model folder itself
        if claims.wanted(str(root)):
            found.items.append(Item(str(root), printable(root.name)))
        else:
            found.ignored += 1
        return found
    _walk_folder(root, root, claims, found)
    return found


def _walk_folder(folder: Path, root: Path, claims: Claims, found: Store) -> None:
    try:
        with os.scandir(folder) as scanned:
            entries = sorted(scanned, key=lambda entry: entry.name)
    except OSError as exc:
        found.unreadable.append((printable(str(folder)), f"cannot read the folder ({exc.strerror or exc})"))
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            if entry.is_symlink():
                found.ignored += 1
            elif entry.is_dir(follow_symlinks=False) and not claims.model(entry.path):
                _walk_folder(path, root, claims, found)
            elif (entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False)) \
                    and claims.wanted(entry.path):
                found.items.append(Item(entry.path, _name(path, root)))
            else:  # not a model, a model of another framework than --framework's, a FIFO, a socket
                found.ignored += 1
        except OSError as exc:  # a file that went away or cannot be stat'ed mid-walk
            found.unreadable.append((printable(entry.path), f"cannot read it ({exc.strerror or exc})"))


def _name(path: Path, root: Path) -> str:
    """An entry's name: its path relative to the store (two ``model.onnx`` of two folders stay apart)."""
    try:
        return printable(path.relative_to(root).as_posix())
    except ValueError:
        return printable(path.name)


def read_manifest(manifest: Path) -> Store:
    """The models a manifest lists (see the module's docstring); a malformed line is a usage error
    naming it, before anything is hashed."""
    try:
        text = manifest.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"{printable(str(manifest))}: cannot read the manifest ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{printable(str(manifest))}: a manifest must be UTF-8 text, one path per line") from None
    base = manifest.parent
    found = Store(base)
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{printable(str(manifest))}, line {number}"
        label = None
        if stripped.startswith("{"):
            try:
                record = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{where}: not a JSON object ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("path"), str) or not record["path"]:
                raise UsageError(f'{where}: a JSON line needs "path", a non-empty string')
            if record.get("label") is not None and not isinstance(record["label"], str):
                raise UsageError(f'{where}: "label" must be a string')
            unknown = sorted(set(record) - {"path", "label"})
            if unknown:
                raise UsageError(f"{where}: unknown key {unknown[0]!r} (a line has \"path\" and \"label\")")
            stripped, label = record["path"], record.get("label")
        found.items.append(_manifest_item(stripped, base, label))
    return found


def _manifest_item(written: str, base: Path, label: str | None) -> Item:
    path = Path(written)
    if not path.is_absolute():
        if is_spec(written) and not (base / path).exists():  # torchvision.models:resnet18: built, not read
            return Item(written, printable(written), label)
        path = base / path
    return Item(str(path), _name(path, base), label)
