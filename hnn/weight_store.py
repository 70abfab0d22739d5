"""Large weights kept beside the graph, read one tensor at a time.

The structure of a model needs only the shapes of its weights; the weight marks and the
provenance fingerprint need their values, but one tensor at a time. So a front-end may hand
the pipeline a :class:`WeightedModel`: an ONNX graph whose large float initializers are
*hollow* (name, type and dims, no data, as :func:`hollow` writes them) and a
:class:`WeightStore` that reads each one's values when asked. The graph then costs kilobytes
wherever the pipeline copies it (onnx copies and serialises a model several times), and a
multi-gigabyte model costs its largest tensor at a time, not all of them several times over.

A store reads either bytes it holds (an ONNX file's inline weights, moved out of the parsed
protobuf) or byte ranges of files whose location and size were checked before (ONNX external
data, safetensors): never a path the upload names unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

# Float initializers above this many elements are hollowed: the same bound under which the
# pipeline folds constants by value (extract.MAX_FOLD_ELEMENTS), so nothing that needs a value
# ever meets a hollow tensor; everything above it is read by shape only.
HOLLOW_ABOVE = 4096

# onnx.TensorProto's FLOAT, FLOAT16, DOUBLE and BFLOAT16, without importing onnx (the index imports
# hnn.ingest.weights for its constants, and `hnn index list` should not pay for onnx).
FLOAT_TYPES = frozenset({1, 10, 11, 16})
_DATA_FIELDS = ("raw_data", "float_data", "double_data", "int32_data", "int64_data", "uint64_data")


@dataclass(frozen=True)
class _Stored:
    dtype: np.dtype
    shape: tuple[int, ...]
    raw: bytes | None = None  # the bytes themselves, or where they lie:
    path: Path | None = None
    offset: int = 0


class WeightStore:
    """Name -> values of hollow tensors, read when asked (floats as float32), never all at once."""

    def __init__(self) -> None:
        self._entries: dict[str, _Stored] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def add_bytes(self, name: str, raw: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self._entries[name] = _Stored(np.dtype(dtype), tuple(shape), raw=raw)

    def add_file_range(self, name: str, path: Path, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        """A tensor stored at ``offset`` of ``path``: the caller has checked that the range lies in the file."""
        self._entries[name] = _Stored(np.dtype(dtype), tuple(shape), path=Path(path), offset=offset)

    def read(self, name: str) -> np.ndarray:
        """The tensor's values, floats widened to float32; OSError or ValueError when the bytes are gone or short."""
        entry = self._entries[name]
        count = prod(entry.shape)
        if entry.raw is not None:
            values = np.frombuffer(entry.raw, dtype=entry.dtype, count=count)
        else:
            with entry.path.open("rb") as handle:
                handle.seek(entry.offset)
                values = np.fromfile(handle, dtype=entry.dtype, count=count)
            if values.size != count:
                raise ValueError(f"{entry.path.name}: tensor {name!r} is cut short ({values.size} of {count} values)")
        values = values.reshape(entry.shape)
        if entry.dtype.kind == "f" or entry.dtype.name == "bfloat16":
            return values.astype(np.float32)  # a copy: the store's bytes stay as they are
        return values


@dataclass
class WeightedModel:
    """What a front-end returns when it keeps the large weights out of the graph."""

    model: onnx.ModelProto
    weights: WeightStore


def hollow(name: str, data_type: int, dims) -> onnx.TensorProto:
    """A tensor of this name, type and shape, holding no data."""
    import onnx

    tensor = onnx.TensorProto(name=name, data_type=data_type)
    tensor.dims.extend(int(d) for d in dims)
    return tensor


def is_hollow(tensor: onnx.TensorProto) -> bool:
    """A tensor with elements declared and no data, inline or external (what :func:`hollow` writes)."""
    return (prod(tensor.dims) > 0 and not tensor.external_data
            and not any(tensor.HasField(f) if f == "raw_data" else len(getattr(tensor, f)) for f in _DATA_FIELDS))


def hollow_out(model: onnx.ModelProto, store: WeightStore | None = None) -> WeightStore:
    """Move the inline data of ``model``'s large float initializers into a store, in place.

    Each tensor's bytes are moved one at a time (the protobuf's copy is cleared as the store's is
    made), so the peak is the parsed model plus one tensor."""
    import onnx
    from onnx import numpy_helper

    store = store if store is not None else WeightStore()
    for tensor in model.graph.initializer:
        if (tensor.data_type not in FLOAT_TYPES or prod(tensor.dims) <= HOLLOW_ABOVE or tensor.external_data
                or tensor.name in store or is_hollow(tensor)):
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        if tensor.HasField("raw_data"):
            raw = tensor.raw_data
        else:  # values in a typed field: read through onnx, which knows each type's field
            raw = numpy_helper.to_array(tensor).astype(dtype, copy=False).tobytes()
        store.add_bytes(tensor.name, raw, dtype, tuple(tensor.dims))
        for field in _DATA_FIELDS:
            tensor.ClearField(field)
    return store


def tensor_values(tensor: onnx.TensorProto, weights: WeightStore | None) -> np.ndarray:
    """The values of an initializer, hollow or not (ValueError for a hollow one the store lacks)."""
    from onnx import numpy_helper

    if is_hollow(tensor):
        if weights is None or tensor.name not in weights:
            raise ValueError(f"tensor {tensor.name!r} holds no values here")
        return weights.read(tensor.name)
    return numpy_helper.to_array(tensor)
