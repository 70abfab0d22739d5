"""Reading an uploaded ONNX file safely: size limits, declared tensor sizes, recursion, external data.

The ONNX front-end reads files through :func:`load_onnx_file`; docs/security.md
lists what it refuses and why.
"""

from __future__ import annotations

from math import prod
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import uses_external_data

from hnn.errors import InputError
from hnn.weight_store import FLOAT_TYPES, HOLLOW_ABOVE, WeightedModel, WeightStore, hollow, hollow_out

# ONNX files larger than this are refused before parsing: protobuf's own limit is 2 GiB,
# and a bigger file is either external-data misuse or an attempt to exhaust memory.
MAX_ONNX_BYTES = 2 * 1024**3


def load_onnx_file(path: str | Path) -> onnx.ModelProto:
    """Parse an ONNX file; external data is read only from inside the model's own folder."""
    path = Path(path)
    model = _parse_checked(path)
    _load_external_data(model, path.parent.resolve())
    return model


def load_onnx_weighted(path: str | Path) -> WeightedModel:
    """An ONNX file as a graph with its large float weights hollow and a store that reads them one at a time.

    Inline weights move out of the parsed protobuf into the store; external data is not loaded at
    all: the store reads each tensor's checked byte range of its file when asked. What the ingest
    then copies is the graph alone (docs/security.md: the memory an upload can make hnn spend)."""
    path = Path(path)
    model = _parse_checked(path)
    store = WeightStore()
    base_dir = path.parent.resolve()
    for tensor in model.graph.initializer:
        if uses_external_data(tensor) and tensor.data_type in FLOAT_TYPES and prod(tensor.dims) > HOLLOW_ABOVE:
            target, offset, _length = _external_range(tensor, base_dir)
            store.add_file_range(tensor.name, target, offset,
                                 onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type), tuple(tensor.dims))
            tensor.CopyFrom(hollow(tensor.name, tensor.data_type, tensor.dims))
    _load_external_data(model, base_dir)  # what is left: small tensors and ones that are not floats
    hollow_out(model, store)
    # protobuf keeps a parsed message's bytes in one arena until the message goes: a copy of the
    # hollow graph is kilobytes, and dropping the parsed one returns the weights' share of memory.
    graph_only = onnx.ModelProto()
    graph_only.CopyFrom(model)
    del model
    return WeightedModel(graph_only, store)


def _parse_checked(path: Path) -> onnx.ModelProto:
    """The parsed file, refused with a one-line reason unless it is a well-formed model (external data unread)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an ONNX file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: empty file, not an ONNX model")
    if size > MAX_ONNX_BYTES:
        raise InputError(f"{path}: {size} bytes is over the {MAX_ONNX_BYTES}-byte limit for ONNX files")
    try:
        model = onnx.load_model_from_string(path.read_bytes())
    except (DecodeError, RuntimeError, ValueError) as exc:
        if "alloc failed" in str(exc):  # protobuf's arena ran out of memory: a limit, not a bad file
            raise MemoryError(str(exc)) from None
        raise InputError(f"{path}: not a valid ONNX model (protobuf parse failed: {exc})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise InputError(f"{path}: not an ONNX model (no graph nodes found)")
    _check_unique_names(model, path)
    _check_tensor_sizes(model, path)
    _check_functions_not_recursive(model, path)
    return model


def _check_unique_names(model: onnx.ModelProto, path: Path) -> None:
    """Refuse two initializers, graph inputs or graph outputs of one name: which one a reader takes is
    up to the reader, so two tools could see two different models in one file."""
    graph = model.graph
    for what, names in (("initializer", [t.name for t in graph.initializer]),
                        ("graph input", [v.name for v in graph.input]),
                        ("graph output", [v.name for v in graph.output])):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise InputError(f"{path}: two {what}s are named {name!r}; each name of an ONNX graph is unique")
            seen.add(name)


def _check_tensor_sizes(model: onnx.ModelProto, path: Path) -> None:
    """Refuse tensors whose declared size is not what they hold (a 10^12-element tensor with no data)."""
    for tensor in model.graph.initializer:
        if any(d < 0 for d in tensor.dims):
            raise InputError(f"{path}: tensor {tensor.name!r} has a negative dimension {list(tensor.dims)}")
        declared = prod(tensor.dims)
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, ValueError):
            raise InputError(f"{path}: tensor {tensor.name!r} has an unknown data type {tensor.data_type}") from None
        if uses_external_data(tensor):
            length = next((e.value for e in tensor.external_data if e.key == "length"), None)
            if length is not None and (not length.isdigit() or int(length) != declared * itemsize):
                raise InputError(f"{path}: tensor {tensor.name!r} declares {declared} elements but its external "
                                 f"data holds {length} bytes")
            continue
        if tensor.HasField("raw_data"):
            if tensor.data_type == onnx.TensorProto.STRING:
                raise InputError(f"{path}: string tensor {tensor.name!r} stores raw data, which ONNX forbids")
            if len(tensor.raw_data) != declared * itemsize:
                raise InputError(f"{path}: tensor {tensor.name!r} declares {declared} elements "
                                 f"({declared * itemsize} bytes) but holds {len(tensor.raw_data)} bytes")
            held = declared
        else:  # the typed field ONNX reads for this data type; complex numbers take two entries each
            values = getattr(tensor, onnx.helper.tensor_dtype_to_field(tensor.data_type))
            complex_types = (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128)
            held = len(values) // (2 if tensor.data_type in complex_types else 1)
        if held != declared:
            raise InputError(f"{path}: tensor {tensor.name!r} declares {declared} elements but holds {held}")


def _check_functions_not_recursive(model: onnx.ModelProto, path: Path) -> None:
    """Refuse model-local functions that call themselves, directly or through others (inlining never ends)."""
    defined = {(f.domain, f.name): f for f in model.functions}

    def calls(function) -> set[tuple[str, str]]:
        return {(n.domain, n.op_type) for n in function.node if (n.domain, n.op_type) in defined}

    state: dict[tuple[str, str], str] = {}  # "open" while on the current path, "done" after

    def visit(key) -> None:
        state[key] = "open"
        for callee in calls(defined[key]):
            if state.get(callee) == "open":
                raise InputError(f"{path}: function {callee[0]}.{callee[1]} is recursive; ONNX functions must not "
                                 "call themselves")
            if callee not in state:
                visit(callee)
        state[key] = "done"

    for key in defined:
        if key not in state:
            visit(key)


def _load_external_data(model: onnx.ModelProto, base_dir: Path) -> None:
    """Read every tensor's external data into it, each from its checked byte range."""
    from onnx.external_data_helper import _get_all_tensors

    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            _read_range(tensor, *_external_range(tensor, base_dir))


def _external_range(tensor: onnx.TensorProto, base_dir: Path) -> tuple[Path, int, int]:
    """(file, offset, length) of a tensor's external data, refused unless the file lies inside the model's
    folder (no absolute path, no ``..``, no link out) and holds the declared range."""
    fields = {e.key: e.value for e in tensor.external_data}
    location = fields.get("location", "")
    candidate = Path(location)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise InputError(f"tensor {tensor.name!r}: external data path {location!r} leaves the model's folder")
    target = base_dir / candidate
    if target.is_symlink() or not target.resolve().is_relative_to(base_dir):
        raise InputError(f"tensor {tensor.name!r}: external data {location!r} is a link out of the model's folder")
    if not target.is_file():
        raise InputError(f"tensor {tensor.name!r}: external data file {location!r} is missing")
    itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    offset, length = fields.get("offset", "0"), fields.get("length", str(prod(tensor.dims) * itemsize))
    size = target.stat().st_size
    if not (offset.isdigit() and length.isdigit()) or int(offset) + int(length) > size:
        raise InputError(f"tensor {tensor.name!r}: external data {location!r} does not hold bytes "
                         f"{offset} to {offset}+{length} (the file has {size})")
    return target, int(offset), int(length)


def _read_range(tensor: onnx.TensorProto, target: Path, offset: int, length: int) -> None:
    """Load one tensor's external bytes into it (a checked range of a checked file)."""
    with target.open("rb") as handle:
        handle.seek(offset)
        tensor.raw_data = handle.read(length)
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT
