"""The provenance fingerprint of weights without their graph: a bare ``.safetensors`` file.

A file of tensors says which tensors a model has, not how they connect. Without the graph
there is no walk from the input, so the fingerprint's anchored part (hnn.provenance.fingerprint)
cannot be made, and no architecture code either. The positional part can: each weight tensor's
values at the positions its shape fixes (:func:`hnn.provenance.fingerprint.sketch_positions`),
sketched as a graph's weight layer of that shape is. A copy, or a fine-tune, of a known model's
weights agrees with that model's layers in most of the signs, whichever way it was stored.

Two things differ from a graph's fingerprint, and hnn.provenance.evidence tests such a
fingerprint accordingly (``unordered``):

- *No order.* A graph's layers come in the walk's order (by depth); a file's tensors in the
  order of their names, which says nothing of depth. So each tensor is paired with every layer
  of its shape on the other side, and the best agreement counts, corrected for how many it was
  chosen from.
- *Two layouts.* The walk lays every weight out (out, in, kernel...). torch stores Linear and
  Conv weights so, but GPT-2's Conv1D weights are stored (in, out), and an embedding table's rows
  are tokens where the walk has (hidden, vocabulary). So a 2-D tensor is sketched both ways,
  each a candidate, and counted as one tensor.

Values are read from the memory-mapped file at the sketched positions only (4,096 of a tensor at
most): memory does not grow with the weights, and a multi-gigabyte file costs its header. Nothing
is executed; the header is checked against the file first (hnn.plugins.frontends.hf_folder).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hnn.errors import InputError
from hnn.provenance.fingerprint import (
    FEATURES,
    MAX_POSITIONAL_LAYERS,
    Fingerprint,
    _evenly,
    sketch_of,
    sketch_positions,
)

# A bare file's header is parsed in the calling process, not in a limited worker: this bounds what a
# hostile header can cost (a real one is kilobytes: a 7 B-parameter Llama's lists 291 tensors in 30 KB).
MAX_HEADER_BYTES = 16 * 1024**2
# The float dtypes whose tensors are sketched (integers are quantized or index data: not read here).
_FLOAT_DTYPES = frozenset({"F16", "F32", "F64", "BF16"})
# What a check or comparison of bare weights cannot say, in its JSON and its text line.
CANNOT_TELL = ("weights only: without a config.json there is no graph, so no code, topology or family; "
               "only whether the weights derive from a known model's")
# A repeated block in a tensor name: "model.layers.11.mlp.up_proj.weight" is block 11 of "model.layers".
_BLOCK = re.compile(r"^(.*?)\.(\d+)\.")


@dataclass(frozen=True)
class WeightsFile:
    """What a bare weights file shows: its fingerprint (None when no tensor is large enough to tell)
    and what its tensor names and shapes say."""

    path: Path
    fingerprint: Fingerprint | None
    tensors: int
    parameters: int
    dtypes: dict[str, int]  # dtype -> parameters of that dtype
    blocks: dict[str, int]  # a repeated block's name prefix -> how many of them (a transformer's layers)
    sketched: int  # tensors sketched

    def to_dict(self) -> dict:
        return {"tensors": self.tensors, "parameters": self.parameters, "dtypes": self.dtypes,
                "blocks": self.blocks, "sketched_tensors": self.sketched}


def is_bare_weights(source) -> bool:
    """A ``.safetensors`` file with no ``config.json`` beside it: weights whose architecture nothing names."""
    try:
        path = Path(source)
        named = path.name.lower().endswith(".safetensors")
        return named and path.is_file() and not (path.parent / "config.json").exists()
    except (OSError, TypeError, ValueError):
        return False


def read_weights_file(path: str | Path) -> WeightsFile:
    """The checked header of ``path`` and the fingerprint of its tensors; InputError says what is wrong."""
    from hnn.plugins.frontends.hf_folder import read_header  # plain file reading: no framework

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    entries = read_header(path, max_header_bytes=MAX_HEADER_BYTES)
    dtypes: Counter = Counter()
    for entry in entries:
        dtypes[entry.dtype] += int(np.prod(entry.shape, dtype=np.int64))
    sketchable = [entry for entry in entries if entry.dtype in _FLOAT_DTYPES and len(entry.shape) >= 2
                  and sketch_positions(entry.shape) is not None]
    chosen = _evenly(sketchable, MAX_POSITIONAL_LAYERS)
    shapes, sketches, tensors = [], [], []
    with path.open("rb") as handle:
        # One descriptor for every tensor, of the file whose header was checked: a file replaced since is
        # refused (one that shrinks under a mapping would kill the process with SIGBUS when read).
        size = entries[-1].data_start + entries[-1].end if entries else 0
        if entries and os.fstat(handle.fileno()).st_size != size:
            raise InputError(f"{path}: the file changed while it was read")
        for number, entry in enumerate(chosen):
            for shape, sketch in _sketches(handle, path, entry):
                shapes.append(shape)
                sketches.append(sketch)
                tensors.append(number)
    fingerprint = None
    if sketches:
        fingerprint = Fingerprint(np.zeros((0, FEATURES), np.float32), tuple(shapes),
                                  np.stack(sketches).astype(np.uint8), np.asarray(tensors, np.int64))
    blocks = Counter()
    for entry in entries:
        match = _BLOCK.match(entry.name)
        if match:
            blocks[match.group(1)] = max(blocks[match.group(1)], int(match.group(2)) + 1)
    return WeightsFile(path=path, fingerprint=fingerprint, tensors=len(entries), parameters=sum(dtypes.values()),
                       dtypes=dict(sorted(dtypes.items())), blocks=dict(sorted(blocks.items())),
                       sketched=len(set(tensors)))


def _sketches(handle, path: Path, entry) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """(shape, sketch) of the tensor as stored and, for a 2-D one, transposed; none where it tells nothing."""
    values = _mapped(handle, path, entry)
    shape = tuple(int(d) for d in entry.shape)
    layouts = [(shape, sketch_positions(shape))]
    if len(shape) == 2:
        rows, columns = shape
        flipped = sketch_positions((columns, rows))
        # Position p of the transpose (columns x rows) is element (p // rows, p % rows) of it, which
        # is element (p % rows, p // rows) of the stored tensor: flat position (p % rows) * columns + p // rows.
        layouts.append(((columns, rows), (flipped % rows) * columns + flipped // rows))
    found = []
    for layout, positions in layouts:
        sketch = sketch_of(np.asarray(values[positions], dtype=np.float32))
        if sketch is not None:
            found.append((layout, sketch))
    del values  # the mapping closes with its last reference
    return found


def _mapped(handle, path: Path, entry) -> np.ndarray:
    """The tensor's values as a read-only memory map of its checked byte range (nothing read until indexed)."""
    from hnn.plugins.frontends.hf_folder import numpy_dtype

    count = int(np.prod(entry.shape, dtype=np.int64))
    try:
        # The kernel's read-ahead brings in pages around each value touched (most of a tensor, at 4,096 values):
        # resident while the tensor is read, released with its mapping. Without it (MADV_RANDOM) a cold read
        # of a 2.2 GB file took 32 s instead of 2.6 s, and the resident peak was the same.
        return np.memmap(handle, dtype=numpy_dtype(entry, path), mode="r",
                         offset=entry.data_start + entry.begin, shape=(count,))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: tensor {entry.name!r} cannot be read ({exc})") from None

