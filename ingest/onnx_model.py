"""Reading ONNX files and preparing a ModelProto for extraction.

Preparation fixes every graph input to a concrete *trigger input* shape,
simplifies the model with onnxsim (folding constants and shape computations;
BatchNormalization is deliberately not fused into Conv, see docs/ir.md), and
runs ONNX shape inference so that every tensor has a concrete shape for the
FLOPs count.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from hnn.errors import InputError, UsageError
from hnn.ingest.extract import fold_constant_nodes, sort_nodes

log = logging.getLogger("hnn.ingest")

# ONNX files larger than this are refused before parsing: protobuf's own limit is 2 GiB,
# and a bigger file is either external-data misuse or an attempt to exhaust memory.
MAX_ONNX_BYTES = 2 * 1024**3
DEFAULT_BATCH = 1


def load_onnx_file(path: str | Path) -> onnx.ModelProto:
    """Parse an ONNX file; external data is read only from inside the model's own folder."""
    path = Path(path)
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
    _check_tensor_sizes(model, path)
    _check_functions_not_recursive(model, path)
    _load_external_data(model, path.parent.resolve())
    return model


def _check_tensor_sizes(model: onnx.ModelProto, path: Path) -> None:
    """Refuse tensors whose declared size is not what they hold (a 10^12-element tensor with no data)."""
    from math import prod

    from onnx.external_data_helper import uses_external_data

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


def check_text_fields(model: onnx.ModelProto) -> None:
    """Refuse names and op types that are not UTF-8: protobuf hands them back as bytes, not str."""
    graph = model.graph
    fields = [("op type", node.op_type) for node in graph.node] + [("domain", node.domain) for node in graph.node]
    fields += [("tensor name", name) for node in graph.node for name in [*node.input, *node.output]]
    fields += [("tensor name", value.name) for value in [*graph.initializer, *graph.input, *graph.output,
                                                         *graph.value_info]]
    bad = next(((what, value) for what, value in fields if not isinstance(value, str)), None)
    if bad is not None:
        raise InputError(f"a {bad[0]} is not UTF-8 text: {bad[1][:40]!r}")


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
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    external = [t for t in _get_all_tensors(model) if uses_external_data(t)]
    if not external:
        return
    for tensor in external:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        candidate = Path(location)
        if candidate.is_absolute() or ".." in candidate.parts:
            raise InputError(f"tensor {tensor.name!r}: external data path {location!r} leaves the model's folder")
        target = base_dir / candidate
        if target.is_symlink() or not target.resolve().is_relative_to(base_dir):
            raise InputError(f"tensor {tensor.name!r}: external data {location!r} is a link out of the model's folder")
        if not target.is_file():
            raise InputError(f"tensor {tensor.name!r}: external data file {location!r} is missing")
    onnx.load_external_data_for_model(model, str(base_dir))


def parse_input_shape(text: str | None) -> dict[str, list[int]] | list[int] | None:
    """Parse ``--input-shape``: ``1,3,224,224`` for the only input, or ``name=1,3,224,224;other=1,10``."""
    if text is None or not text.strip():
        return None

    def dims(part: str) -> list[int]:
        try:
            values = [int(d) for d in part.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            raise UsageError(f"--input-shape {text!r}: dimensions must be integers, e.g. 1,3,224,224") from None
        if not values or any(v <= 0 for v in values):
            raise UsageError(f"--input-shape {text!r}: dimensions must be positive integers")
        return values

    if "=" not in text:
        return dims(text)
    shapes = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--input-shape {text!r}: expected name=d1,d2,...; separated by ';'")
        shapes[name.strip()] = dims(value)
    return shapes


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The real inputs: older exporters also list every initializer as a graph input."""
    initializers = {init.name for init in model.graph.initializer}
    return [inp for inp in model.graph.input if inp.name not in initializers]


def resolve_trigger_shapes(
    model: onnx.ModelProto, requested: dict[str, list[int]] | list[int] | None
) -> dict[str, list[int]]:
    """Concrete shapes for every graph input: the user's, else the declared ones, batch set to 1."""
    inputs = graph_inputs(model)
    if isinstance(requested, list):
        if len(inputs) != 1:
            names = ", ".join(inp.name for inp in inputs)
            raise UsageError(f"the model has {len(inputs)} inputs ({names}); give --input-shape as name=d1,d2;...")
        requested = {inputs[0].name: requested}
    requested = dict(requested or {})
    unknown = set(requested) - {inp.name for inp in inputs}
    if unknown:
        raise UsageError(f"--input-shape names unknown input(s) {sorted(unknown)}")
    shapes = {}
    for inp in inputs:
        if inp.name in requested:
            shapes[inp.name] = requested[inp.name]
            continue
        dims = inp.type.tensor_type.shape.dim
        resolved = []
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                resolved.append(dim.dim_value)
            elif axis == 0:
                resolved.append(DEFAULT_BATCH)  # a symbolic batch dimension is the common case
            else:
                raise UsageError(
                    f"input {inp.name!r} has a dynamic dimension {axis} "
                    f"({dim.dim_param or '?'}); pass --input-shape to fix it"
                )
        shapes[inp.name] = resolved
    return shapes


def _fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> None:
    for inp in model.graph.input:
        if inp.name not in shapes:
            continue
        dims = inp.type.tensor_type.shape.dim
        del dims[:]
        for value in shapes[inp.name]:
            dims.add().dim_value = value


def prepare(model: onnx.ModelProto, shapes: dict[str, list[int]], simplify: bool = True) -> onnx.ModelProto:
    """Fix inputs, simplify (falling back with a warning) and infer shapes."""
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    sort_nodes(model_copy)
    _fix_input_shapes(model_copy, shapes)
    if simplify:
        model_copy = _simplify(model_copy)
    inferred = _infer_shapes(model_copy)
    for _ in range(FOLD_ROUNDS):  # fold shape arithmetic, infer again: what onnxsim would see
        if inferred is None or not fold_constant_nodes(inferred):
            break
        inferred = _infer_shapes(inferred)
    return model_copy if inferred is None else inferred


# Rounds of constant folding and shape inference; each round unlocks the shapes the
# previous fold made computable (ShuffleNetV2 from TorchScript needs 2).
FOLD_ROUNDS = 4


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto | None:
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except MemoryError:
        raise  # a memory limit must reject the model, not degrade its IR
    except Exception as exc:  # onnx raises several unrelated types here
        log.warning("shape inference failed (%s); FLOPs of nodes with unknown shapes count as 0", _one_line(exc))
        return None


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    # onnxsim prints progress from C++ to stdout; keep stdout for our own output (--json).
    import onnxsim

    try:
        with stdout_to_stderr():
            simplified, ok = onnxsim.simplify(model, skip_fuse_bn=True, check_n=0)
    except MemoryError:
        raise  # a memory limit must reject the model, not degrade its IR
    except Exception as exc:
        log.warning("onnxsim failed (%s); using the unsimplified graph", _one_line(exc))
        return model
    if not ok:
        log.warning("onnxsim could not validate its result; using the unsimplified graph")
        return model
    return simplified


class stdout_to_stderr:
    """Redirect file descriptor 1 to 2 for native code that writes to stdout."""

    def __enter__(self):
        import sys

        sys.stdout.flush()
        self.saved = os.dup(1)
        os.dup2(2, 1)

    def __exit__(self, *exc):
        import sys

        sys.stdout.flush()
        os.dup2(self.saved, 1)
        os.close(self.saved)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
