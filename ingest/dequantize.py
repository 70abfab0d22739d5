"""The float model a quantized or fp16 model was made from: an ONNX-to-ONNX rewrite before preparation.

A model quantized with onnxruntime.quantization, or stored in fp16, computes the same layers as its
float original, but its ONNX graph spells them with other ops: ``QLinearConv`` for ``Conv``, a
``QuantizeLinear``/``DequantizeLinear`` pair around every activation, ``Cast`` nodes around fp16
weights. Without this rewrite a quantized copy gets another IR, and does not rank with its original by
structure. :func:`float_graph` rewrites:

- QOperator ops (``QLinearConv``, ``QLinearMatMul``, and the com.microsoft ``QGemm``, ``QLinearAdd``,
  ``QLinearMul``, ``QLinearConcat``, ``QLinearGlobalAveragePool``, ``QLinearAveragePool``,
  ``QLinearSigmoid``, ``QLinearLeakyRelu``, ``QLinearSoftmax``, ``QLinearWhere``) into their float
  op with the same attributes, dequantized constant operands and a Q/DQ pair at each quantized
  activation, which the QDQ rewrites below then remove;
- dynamic quantization (``DynamicQuantizeLinear`` -> ``ConvInteger``/``MatMulInteger`` -> ``Cast`` ->
  ``Mul`` by the product of scales, a ``Conv``'s bias added after) into ``Conv`` (with its bias) or
  ``MatMul``, and into ``Gemm`` where the quantizer had split one into MatMul + bias Add;
- ``DequantizeLinear`` of a constant (QDQ weights and int32 biases) into a float32 initializer,
  ``(q - zero_point) * scale``, per channel along the node's axis (also onnxruntime's com.microsoft
  QuantizeLinear/DequantizeLinear);
- integer layout ops between a ``QuantizeLinear`` and its readers (``MaxPool``, ``Flatten``, ``Reshape``,
  ... on int8 data, as QOperator models have them) onto the float side;
- each ``QuantizeLinear`` -> ``DequantizeLinear`` pair of an activation into the float tensor, with the
  ``Relu`` the quantizer removed put back: where the zero point is the type's minimum and the
  producer can output negative values (Conv, Gemm, MatMul, Add, a normalization), a ``Clip(0, 6)``
  instead where the range is [0, 6] (ReLU6, see :func:`_relu6_by_default`);
- fp16 and bf16: float-to-float ``Cast`` nodes removed, every fp16/bf16 constant, ``Cast`` target and
  graph input, output and value_info type made float32.

Not rewritten (left as they are): quantized ops of other names or domains (``QAttention``,
``QLinearReduceMean``, NHWC variants, ``channels_last`` pooling), block-quantized weights
(``block_size``), a node whose scale or zero point is not a constant or has an unexpected shape (a
malformed node is left as it is, never an error), ops inside If/Loop/Scan bodies, and a
``Q -> DQ`` pair that requantizes (other scale or zero point). An activation the quantizer removed that
is neither ReLU nor ReLU6 (``Clip(0, 1)``) comes back as a ReLU; one removed after an op outside
``FUSES_ACTIVATION`` (a Mul) does not come back, and an op of that list whose outputs were all
non-negative on the calibration data gets a Relu it never had. Float64 is left as it is.

The input is untrusted: nothing of it is executed (no reference evaluator, no onnxruntime), a tensor
with external data is not read, and each pass builds its producer and consumer maps once.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hnn.errors import summary
from hnn.ingest.extract import INT_ATTRIBUTES, INT_LIST_ATTRIBUTES, outer_references, sort_nodes
from hnn.provenance.weights import dequantize
from hnn.weight_store import hollow, is_hollow

log = logging.getLogger("hnn.ingest")

ONNX_DOMAINS = frozenset({"", "ai.onnx"})
MS_DOMAIN = "com.microsoft"
# onnxruntime writes QuantizeLinear and DequantizeLinear in its own domain for int16 and int4 (``UseQDQContribOps``)
QDQ_DOMAINS = ONNX_DOMAINS | {MS_DOMAIN}
REDUCED_FLOATS = frozenset({TensorProto.FLOAT16, TensorProto.BFLOAT16})
# Element types of quantized tensors: what a value_info of a rewritten tensor may still say.
QUANTIZED_TYPES = frozenset({TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16,
                             TensorProto.INT32, TensorProto.INT4, TensorProto.UINT4})
ZERO_POINT_TYPES = frozenset({np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32)})
# Ops whose output can be negative: a Relu after one of them is what a zero point at the type's
# minimum means. Pooling, concatenation and layout ops of a Relu's output start at 0 too, without a
# Relu of their own; Mul and Sigmoid of non-negative inputs likewise.
FUSES_ACTIVATION = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "BatchNormalization",
                              "InstanceNormalization", "LayerNormalization"})
# Ops that move int8 data without computing on it (onnxruntime's Direct8BitOp, QMaxPool, QPad, ...):
# on dequantized data they give the dequantized result. Only their input 0 is data.
INTEGER_LAYOUT_OPS = frozenset({"MaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity",
                                "Slice", "Gather", "Split", "Pad", "Resize", "DepthToSpace", "SpaceToDepth",
                                "Expand", "Tile"})
RELU6 = 6.0
RELU6_TOLERANCE = 1e-3  # relative: a ReLU6 output calibrated to exactly [0, 6] comes within float rounding
# Ops with a ``dtype`` attribute naming the element type they create.
DTYPE_ATTRIBUTE_OPS = frozenset({"EyeLike", "RandomNormal", "RandomUniform", "RandomNormalLike",
                                 "RandomUniformLike", "Bernoulli", "Multinomial"})
QUANTIZATION_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger",
                              "MatMulInteger", "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul",
                              "QLinearConcat", "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSigmoid",
                              "QLinearLeakyRelu", "QLinearSoftmax", "QLinearWhere"})


def float_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float model ``model`` was quantized or converted to fp16 from; ``model`` itself when it is neither.

    A copy is rewritten (see the module docstring); ``model`` is not changed. Raises
    :class:`~hnn.errors.InputError` only for a graph whose wiring is broken (a cycle, a tensor produced
    twice), as preparation would.
    """
    quantized = any(node.op_type in QUANTIZATION_OPS for node in model.graph.node)
    if not quantized and not _has_reduced_floats(model):
        return model
    result = onnx.ModelProto()
    result.CopyFrom(model)
    sort_nodes(result)  # the passes read producers before consumers; an InputError for a broken graph
    rewriter = _Rewriter(result)
    passes: list[Callable[[_Rewriter], int]] = [widen_reduced_floats]
    if quantized:
        passes += [qoperator_to_qdq, dynamic_to_float, fold_constant_dequantize, integer_layout_to_float,
                   remove_activation_qdq]
    for rewrite in passes:
        changed = rewrite(rewriter)
        if changed:
            log.info("dequantize: %s changed %d node(s)", rewrite.__name__, changed)
    rewriter.prune()
    _fix_declared_types(result.graph, quantized)
    sort_nodes(result)
    return result


# --- reading constants -------------------------------------------------------------------------


def _array(tensor: TensorProto) -> np.ndarray | None:
    """A tensor's values, or None when it cannot be read safely (external data, malformed data)."""
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        return None  # an untrusted file names the path: never read it from here
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        log.debug("dequantize: tensor %r unreadable (%s)", tensor.name, summary(exc))
        return None


def _constant_tensor(node: onnx.NodeProto) -> TensorProto | None:
    """The tensor a Constant node holds (``value`` or a scalar/list attribute)."""
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            return attr.t
        if attr.name in ("value_float", "value_floats", "value_int", "value_ints") and attr.type in (
                onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS, onnx.AttributeProto.INT,
                onnx.AttributeProto.INTS):
            dtype = np.int64 if "int" in attr.name else np.float32
            return numpy_helper.from_array(np.array(helper.get_attribute_value(attr), dtype=dtype))
    return None


def _well_kinded(node: onnx.NodeProto) -> bool:
    """Are the node's integer attributes (group, strides, ...) of the kinds ONNX defines? A float op copying
    them must not carry a malformed one further."""
    return all((a.name not in INT_ATTRIBUTES or a.type == onnx.AttributeProto.INT)
               and (a.name not in INT_LIST_ATTRIBUTES or a.type == onnx.AttributeProto.INTS)
               and a.type not in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


def _int_attribute(node: onnx.NodeProto, name: str, default: int | None) -> int | None:
    """An INT attribute's value, ``default`` when absent; None when it has another kind (malformed)."""
    for attr in node.attribute:
        if attr.name == name:
            return attr.i if attr.type == onnx.AttributeProto.INT else None
    return default


# --- the graph being rewritten -----------------------------------------------------------------


class _Rewriter:
    """One graph and the edits of the pass that runs on it.

    A pass reads the maps (built once per pass by :meth:`index`), records its edits (replaced nodes,
    renamed tensors, new initializers) and :meth:`commit` applies them in one rebuild: no pass loops
    over the nodes for each node it changes.
    """

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        graph = self.graph
        self.names = {name for node in graph.node for name in [*node.input, *node.output, node.name]}
        self.names |= {v.name for v in [*graph.initializer, *graph.input, *graph.output, *graph.value_info]}
        # Tensors read or exposed in the original: a node whose outputs all were is the model's own, and
        # is pruned only when a rewrite leaves it unread (the model's own dead nodes stay as they are).
        self.was_read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        self.created: set[str] = set()
        self._suffixes: dict[str, int] = {}
        self.relu6_bounds: tuple[str, str] | None = None
        self.opset = next((o.version for o in model.opset_import if o.domain in ONNX_DOMAINS), 1)
        self.index()

    def index(self) -> None:
        graph = self.graph
        self.nodes = list(graph.node)
        self.producer = {name: i for i, node in enumerate(self.nodes) for name in node.output if name}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(self.nodes):
            for name in set(node.input):
                if name:
                    self.consumers[name].append(i)
        self.initializers = {init.name: init for init in graph.initializer}
        self.constants = dict(self.initializers)
        for node in self.nodes:
            if node.op_type == "Constant" and node.domain in ONNX_DOMAINS and len(node.output) == 1:
                tensor = _constant_tensor(node)
                if tensor is not None:
                    self.constants[node.output[0]] = tensor
        self.graph_inputs = {inp.name for inp in graph.input}
        self.pinned = {out.name for out in graph.output}
        for node in self.nodes:
            self.pinned |= outer_references(node)  # names an If/Loop body reads must keep existing
        self.replace: dict[int, list[onnx.NodeProto]] = {}
        self.rename: dict[str, str] = {}
        self.new_initializers: list[TensorProto] = []
        self._values: dict[str, np.ndarray | None] = {}

    # Reading

    def value(self, name: str) -> np.ndarray | None:
        """The array of a constant tensor (initializer or Constant output); None if not a readable constant."""
        if name not in self._values:
            tensor = self.constants.get(name)
            self._values[name] = None if tensor is None else _array(tensor)
        return self._values[name]

    def producer_of(self, name: str) -> onnx.NodeProto | None:
        index = self.producer.get(name)
        return None if index is None or index in self.replace else self.nodes[index]

    def readers(self, name: str) -> list[int]:
        return self.consumers.get(name, [])

    def only_reader(self, name: str) -> int | None:
        """The one node reading ``name``, when exactly one does and it is not a graph output."""
        readers = self.readers(name)
        if len(readers) != 1 or name in self.pinned:
            return None
        return readers[0]

    # Edits

    def fresh(self, base: str) -> str:
        """A tensor or node name not used in the graph yet (counting on from the last one made of ``base``:
        nameless nodes all give the same base)."""
        name, n = base, self._suffixes.get(base, 0)
        if n:
            name = f"{base}_{n}"
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self._suffixes[base] = n + 1
        self.names.add(name)
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str = "", **attrs) -> onnx.NodeProto:
        """A new default-domain node; its outputs count as created (prunable once unread)."""
        self.created.update(outputs)
        return helper.make_node(op, inputs, outputs, name=self.fresh(name or op), **attrs)

    def constant(self, base: str, array: np.ndarray) -> str:
        """Add ``array`` as a new initializer; returns its name."""
        name = self.fresh(base)
        self.new_initializers.append(numpy_helper.from_array(array, name))
        return name

    def commit(self) -> int:
        """Apply the recorded edits in one rebuild of the node list, then re-index; returns the nodes replaced."""
        graph, changed = self.graph, len(self.replace)
        if not changed and not self.rename:
            return 0
        final = _resolve(self.rename)
        produced = {name for i, node in enumerate(self.nodes) for name in node.output
                    if name and i not in self.replace}
        produced |= {name for nodes in self.replace.values() for node in nodes for name in node.output if name}
        # A graph output (or a name a subgraph reads) that a rewrite made an alias keeps its name: the
        # producer of what it stands for produces it under that name, or an Identity does.
        reverse, identities = {}, []
        for name in sorted(self.pinned):
            root = final.get(name)
            if root is None:
                continue
            if root in produced and root not in reverse and root not in self.pinned and root not in self.graph_inputs:
                reverse[root] = name
            else:
                identities.append(self.node("Identity", [root], [name]))
        nodes: list[onnx.NodeProto] = []
        for i, node in enumerate(self.nodes):
            nodes.extend(self.replace.get(i, [node]))
        nodes.extend(identities)
        for node in nodes:
            for k, name in enumerate(node.input):
                target = final.get(name, name)
                target = reverse.get(target, target)
                if target != name:
                    node.input[k] = target
            for k, name in enumerate(node.output):
                if name in reverse:
                    node.output[k] = reverse[name]
        del graph.node[:]
        graph.node.extend(nodes)
        graph.initializer.extend(self.new_initializers)
        if identities:
            sort_nodes(self.model)  # the passes read the nodes in stored order, producers first
        self.index()
        return changed

    def prune(self) -> int:
        """Remove the nodes the rewrites left unread (dead Q/DQ, scale Muls, quantized weights), and unread
        initializers; the model's own dead nodes stay."""
        self.index()
        reads = Counter(name for node in self.nodes for name in node.input if name)
        dead: set[int] = set()
        queue = [i for i in range(len(self.nodes)) if self._prunable(i, reads)]
        while queue:
            i = queue.pop()
            if i in dead:
                continue
            dead.add(i)
            for name in self.nodes[i].input:
                if not name:
                    continue
                reads[name] -= 1
                producer = self.producer.get(name)
                if producer is not None and producer not in dead and self._prunable(producer, reads):
                    queue.append(producer)
        if dead:
            kept = [node for i, node in enumerate(self.nodes) if i not in dead]
            del self.graph.node[:]
            self.graph.node.extend(kept)
        still_read = {name for node in self.graph.node for name in node.input} | self.pinned
        listed = {inp.name for inp in self.graph.input}
        initializers = [t for t in self.graph.initializer if t.name in still_read or t.name in listed]
        if len(initializers) != len(self.graph.initializer):
            del self.graph.initializer[:]
            self.graph.initializer.extend(initializers)
        self.index()
        return len(dead)

    def _prunable(self, index: int, reads: Counter) -> bool:
        outputs = [name for name in self.nodes[index].output if name]
        if any(reads[name] > 0 or name in self.pinned for name in outputs):
            return False
        return any(name in self.was_read or name in self.created for name in outputs)


def _resolve(rename: dict[str, str]) -> dict[str, str]:
    """Follow chains of renames (a -> b -> c gives a -> c), each step once: a file of 10^5 Casts in a row
    makes a chain that long. A cycle (a malformed edit) stops where it repeats."""
    final: dict[str, str] = {}
    for start in rename:
        path, seen, name = [], set(), start
        while name in rename and name not in final and name not in seen:
            path.append(name)
            seen.add(name)
            name = rename[name]
        target = final.get(name, name)
        for step in path:
            final[step] = target
    return final


# --- dequantizing values -----------------------------------------------------------------------


def _scalar(array: np.ndarray | None) -> bool:
    return array is not None and array.size == 1


def _type_minimum(zero: np.ndarray) -> bool:
    """Is the zero point the least value of its integer type (an activation quantized as non-negative)?"""
    return zero.dtype in ZERO_POINT_TYPES and int(zero.reshape(-1)[0]) == np.iinfo(zero.dtype).min


def _quantized_range(scale: np.ndarray, zero: np.ndarray) -> tuple[float, float]:
    info = np.iinfo(zero.dtype)
    z, s = int(zero.reshape(-1)[0]), float(scale.reshape(-1)[0])
    return (info.min - z) * s, (info.max - z) * s


# --- pass: fp16 and bf16 -----------------------------------------------------------------------


def _has_reduced_floats(model: onnx.ModelProto) -> bool:
    graph = model.graph
    if any(t.data_type in REDUCED_FLOATS for t in graph.initializer):
        return True
    if any(v.type.tensor_type.elem_type in REDUCED_FLOATS for v in [*graph.input, *graph.output]):
        return True
    return any(node.op_type in ("Cast", "Constant", "ConstantOfShape") and _reduced_float_attribute(node)
               for node in graph.node)


def _reduced_float_attribute(node: onnx.NodeProto) -> bool:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.INT and attr.name in ("to", "dtype") and attr.i in REDUCED_FLOATS:
            return True
        if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type in REDUCED_FLOATS:
            return True
    return False


def widen_reduced_floats(rw: _Rewriter) -> int:
    """fp16/bf16 constants, Cast targets and declared types become float32; a Cast of float to float goes.

    A model stored in fp16 reads its weights through ``Cast(to=FLOAT)`` nodes, or runs in fp16
    between a Cast at its input and one at its output; either way the float original had no Cast there.
    Whether a Cast's input is a float is read from ONNX shape inference (types only), where it can tell.
    """
    if not _has_reduced_floats(rw.model):
        return 0
    float_types = _float_tensors(rw.model)
    changed = 0
    for i, init in enumerate(rw.graph.initializer):
        if init.data_type in REDUCED_FLOATS:
            widened = _widened(init)
            if widened is not None:
                rw.graph.initializer[i].CopyFrom(widened)
                changed += 1
    for node in rw.nodes:
        changed += _widen_node_attributes(node)
    rw.index()
    for i, node in enumerate(rw.nodes):
        to = _int_attribute(node, "to", None)
        if node.op_type != "Cast" or node.domain not in ONNX_DOMAINS or to != TensorProto.FLOAT:
            continue
        if len(node.input) == 1 and len(node.output) == 1 and node.input[0] in float_types:
            rw.rename[node.output[0]] = node.input[0]
            rw.replace[i] = []
    return changed + rw.commit()


def _widened(tensor: TensorProto) -> TensorProto | None:
    if is_hollow(tensor):  # its values are read (as float32) from the weight store: only the type changes
        return hollow(tensor.name, TensorProto.FLOAT, tensor.dims)
    array = _array(tensor)
    return None if array is None else numpy_helper.from_array(array.astype(np.float32), tensor.name)


def _widen_node_attributes(node: onnx.NodeProto) -> int:
    """Make fp16/bf16 in a node's attributes float32 (Cast's ``to``, a Constant's tensor, ``dtype``)."""
    changed = 0
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.INT and attr.i in REDUCED_FLOATS and (
                (attr.name == "to" and node.op_type == "Cast") or (attr.name == "output_dtype")
                or (attr.name == "dtype" and node.op_type in DTYPE_ATTRIBUTE_OPS)):
            attr.i = TensorProto.FLOAT
            changed += 1
        elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type in REDUCED_FLOATS:
            widened = _widened(attr.t)
            if widened is not None:
                attr.t.CopyFrom(widened)
                changed += 1
    return changed


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the tensors of any float type: declared, constant, or as shape inference types them."""
    graph = model.graph
    floats = {TensorProto.FLOAT, *REDUCED_FLOATS}
    declared = list(graph.value_info)
    try:
        declared = list(onnx.shape_inference.infer_shapes(model).graph.value_info)
    except MemoryError:
        raise
    except Exception as exc:  # onnx raises several unrelated types here; the declared types still count
        log.debug("dequantize: type inference failed (%s)", summary(exc))
    names = {v.name for v in [*graph.input, *graph.output, *declared] if v.type.tensor_type.elem_type in floats}
    names |= {t.name for t in graph.initializer if t.data_type in floats}
    for node in graph.node:
        tensor = _constant_tensor(node) if node.op_type == "Constant" and len(node.output) == 1 else None
        if tensor is not None and tensor.data_type in floats:
            names.add(node.output[0])
        if node.op_type == "Cast" and _int_attribute(node, "to", None) in floats:
            names.update(name for name in node.output if name)
    return names


# --- pass: QOperator ops -----------------------------------------------------------------------


class _Operand:
    """Positions of one quantized operand of a QLinear op: (tensor, scale, zero point), and the axis
    a per-channel scale of a constant operand runs along."""

    def __init__(self, tensor: int, scale: int, zero: int, axis: int = 0):
        self.tensor, self.scale, self.zero, self.axis = tensor, scale, zero, axis


class _QOp:
    """How a QOperator op maps to its float op: quantized operands, float operands, output, bias."""

    def __init__(self, float_op: str, operands: list[_Operand], output: tuple[int, int] | None,
                 domains: frozenset[str] = ONNX_DOMAINS, plain: tuple[int, ...] = (), bias: int | None = None,
                 drop: tuple[str, ...] = ()):
        self.float_op, self.operands, self.output, self.domains = float_op, operands, output, domains
        self.plain, self.bias, self.drop = plain, bias, drop


MS = frozenset({MS_DOMAIN})
QOPS = {
    "QLinearConv": _QOp("Conv", [_Operand(0, 1, 2), _Operand(3, 4, 5, axis=0)], (6, 7), bias=8),
    # per-row scale of a constant left operand, per-column of a constant right one
    "QLinearMatMul": _QOp("MatMul", [_Operand(0, 1, 2, axis=-2), _Operand(3, 4, 5, axis=-1)], (6, 7)),
    "QGemm": _QOp("Gemm", [_Operand(0, 1, 2, axis=-2), _Operand(3, 4, 5, axis=-1)], (7, 8), MS, bias=6),
    "QLinearAdd": _QOp("Add", [_Operand(0, 1, 2), _Operand(3, 4, 5)], (6, 7), MS),
    "QLinearMul": _QOp("Mul", [_Operand(0, 1, 2), _Operand(3, 4, 5)], (6, 7), MS),
    "QLinearGlobalAveragePool": _QOp("GlobalAveragePool", [_Operand(0, 1, 2)], (3, 4), MS, drop=("channels_last",)),
    "QLinearAveragePool": _QOp("AveragePool", [_Operand(0, 1, 2)], (3, 4), MS, drop=("channels_last",)),
    "QLinearSigmoid": _QOp("Sigmoid", [_Operand(0, 1, 2)], (3, 4), MS),
    "QLinearLeakyRelu": _QOp("LeakyRelu", [_Operand(0, 1, 2)], (3, 4), MS),
    "QLinearSoftmax": _QOp("Softmax", [_Operand(0, 1, 2)], (3, 4), MS, drop=("opset",)),
    "QLinearWhere": _QOp("Where", [_Operand(1, 2, 3), _Operand(4, 5, 6)], (7, 8), MS, plain=(0,)),
}


def qoperator_to_qdq(rw: _Rewriter) -> int:
    """Each QOperator op becomes its float op between DequantizeLinear and QuantizeLinear nodes.

    That is the QDQ form of the same computation, and the QDQ passes that follow turn it into the float
    graph (fusing the Relu back where the output zero point says the quantizer absorbed one). A constant
    operand (the weight) is dequantized here; a node whose scales or zero points are not constants of
    the expected shapes is left as it is.
    """
    if rw.opset < 10:
        return 0  # QuantizeLinear and DequantizeLinear, which the rewrite writes, are opset 10
    for i, node in enumerate(rw.nodes):
        if node.op_type == "QLinearConcat" and node.domain == MS_DOMAIN:
            replacement = _qlinear_concat(rw, node)
        elif node.op_type in QOPS and node.domain in QOPS[node.op_type].domains:
            replacement = _qlinear_op(rw, node, QOPS[node.op_type])
        else:
            continue
        if replacement is None:
            log.debug("dequantize: %s %r left quantized (unexpected inputs)", node.op_type, node.name)
        else:
            rw.replace[i] = replacement
    return rw.commit()


def _input(node: onnx.NodeProto, position: int) -> str:
    return node.input[position] if position < len(node.input) else ""


def _qlinear_op(rw: _Rewriter, node: onnx.NodeProto, spec: _QOp) -> list[onnx.NodeProto] | None:
    """[DQ of each activation operand, the float op, Q of its output], or None to leave ``node``."""
    if not _well_kinded(node):
        return None
    if any(name == "channels_last" and _int_attribute(node, name, 0) != 0 for name in spec.drop):
        return None  # NHWC data: the float op would need transposes around it
    before: list[onnx.NodeProto] = []
    float_inputs: dict[int, str] = {}
    scales = []
    if node.op_type == "QLinearSoftmax" and ((_int_attribute(node, "opset", rw.opset) or 0) >= 13) != (rw.opset >= 13):
        return None  # Softmax before opset 13 flattens to 2-D: the float op would compute something else
    for operand in spec.operands:
        if node.op_type == "QGemm":  # per row of A' and per column of B': A is [K, M] under transA, B [N, K]
            transposed = _int_attribute(node, "transA" if operand.tensor == 0 else "transB", 0)
            if transposed is None:
                return None
            transposed = 1 if transposed else 0
            operand = _Operand(operand.tensor, operand.scale, operand.zero,
                               axis=(1 - transposed) if operand.tensor == 3 else transposed)
        converted = _float_operand(rw, node, operand, before)
        if converted is None:
            return None
        float_inputs[operand.tensor], scale = converted
        scales.append(scale)
    for position in spec.plain:
        if not _input(node, position):
            return None
        float_inputs[position] = node.input[position]
    inputs = [float_inputs[k] for k in sorted(float_inputs)]
    if spec.bias is not None and _input(node, spec.bias):
        bias = _float_bias(rw, node.input[spec.bias], scales[0], scales[1])
        if bias is None:
            return None
        inputs.append(bias)
    attrs = [a for a in node.attribute if a.name not in spec.drop]
    return _with_output_quantized(rw, node, spec.float_op, inputs, attrs, spec.output, before)


def _float_operand(rw: _Rewriter, node: onnx.NodeProto, operand: _Operand,
                   before: list[onnx.NodeProto]) -> tuple[str, np.ndarray] | None:
    """The float tensor for one quantized operand (a dequantized constant, or a new DQ node's output) and its scale."""
    name, scale_name, zero_name = (_input(node, p) for p in (operand.tensor, operand.scale, operand.zero))
    scale = rw.value(scale_name) if scale_name else None
    zero = rw.value(zero_name) if zero_name else None
    if not name or scale is None or scale.dtype.kind != "f" or (zero_name and zero is None):
        return None
    q = rw.value(name)
    if q is not None:  # a weight: dequantize it now
        if q.dtype.kind not in "iuV":
            return None
        axis = operand.axis % q.ndim if q.ndim else 0
        values = dequantize(q, scale, zero, axis)
        if values is None:
            return None
        return rw.constant(name + "_dequantized", values), scale
    if name in rw.constants or not _scalar(scale) or (zero is not None and not _scalar(zero)):
        return None  # an unreadable constant, or per-channel parameters of an activation
    if zero is not None and zero.dtype not in ZERO_POINT_TYPES:
        return None
    dequantized = rw.fresh(name + "_dequantized")
    before.append(rw.node("DequantizeLinear", [name, scale_name] + ([zero_name] if zero_name else []),
                          [dequantized], name=f"{node.name or node.op_type}_dequantize"))
    return dequantized, scale


def _float_bias(rw: _Rewriter, name: str, input_scale: np.ndarray, weight_scale: np.ndarray) -> str | None:
    """An int32 bias (zero point 0, scale input scale x weight scale) as a float32 initializer."""
    bias = rw.value(name)
    if bias is None or bias.dtype != np.int32 or bias.ndim > 2 or not _scalar(input_scale):
        return None
    scale = (input_scale.astype(np.float64).reshape(()) * weight_scale.astype(np.float64)).reshape(-1)
    if scale.size not in (1, bias.shape[-1] if bias.ndim else 1):
        return None
    values = dequantize(bias, scale, None, bias.ndim - 1 if bias.ndim else 0)
    return None if values is None else rw.constant(name + "_dequantized", values)


def _with_output_quantized(rw: _Rewriter, node: onnx.NodeProto, float_op: str, inputs: list[str],
                           attrs: Iterable[onnx.AttributeProto], output: tuple[int, int] | None,
                           before: list[onnx.NodeProto]) -> list[onnx.NodeProto] | None:
    """The float op (keeping ``node``'s attributes and name), its output quantized into ``node``'s output name."""
    if len(node.output) != 1 or not node.output[0]:
        return None
    scale_name, zero_name = (_input(node, p) for p in output) if output else ("", "")
    float_node = helper.make_node(float_op, inputs, [node.output[0]], name=node.name)
    float_node.attribute.extend(attrs)
    if not scale_name:  # no output scale (QGemm's float output): the float op's output is the node's
        rw.created.add(node.output[0])
        return [*before, float_node]
    scale, zero = rw.value(scale_name), rw.value(zero_name) if zero_name else None
    if not _scalar(scale) or scale.dtype.kind != "f" or zero is None or not _scalar(zero) \
            or zero.dtype not in ZERO_POINT_TYPES:
        return None
    float_output = rw.fresh(node.output[0] + "_float")
    float_node.output[0] = float_output
    rw.created.add(float_output)
    quantize = rw.node("QuantizeLinear", [float_output, scale_name, zero_name], [node.output[0]],
                       name=f"{node.name or node.op_type}_quantize")
    return [*before, float_node, quantize]


def _qlinear_concat(rw: _Rewriter, node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
    """QLinearConcat(Y_scale, Y_zero_point, (X, X_scale, X_zero_point)...) -> Concat of the dequantized inputs."""
    if len(node.input) < 5 or (len(node.input) - 2) % 3 or not _well_kinded(node):
        return None
    before: list[onnx.NodeProto] = []
    inputs = []
    for start in range(2, len(node.input), 3):
        converted = _float_operand(rw, node, _Operand(start, start + 1, start + 2), before)
        if converted is None:
            return None
        inputs.append(converted[0])
    return _with_output_quantized(rw, node, "Concat", inputs, list(node.attribute), (0, 1), before)


# --- pass: dynamic quantization ----------------------------------------------------------------

INTEGER_OPS = {"ConvInteger": "Conv", "MatMulInteger": "MatMul"}


def dynamic_to_float(rw: _Rewriter) -> int:
    """``DynamicQuantizeLinear -> ConvInteger/MatMulInteger -> Cast -> Mul(scale product)`` is a float Conv/MatMul.

    ``quantize_dynamic`` quantizes the activation at run time and the weight ahead of time; the float
    op reads the activation the DynamicQuantizeLinear read and the dequantized weight. A Conv's bias,
    which the quantizer adds after the scale Mul (through a Reshape to [1, M, 1, 1]), goes back into the
    Conv; a Gemm the quantizer split into MatMul + Add of its bias becomes a Gemm again (a zero bias
    Add would otherwise pass for x + 0 in canonicalization, and the Gemm lose its bias parameters).
    The DynamicQuantizeLinear and scale Mul nodes are pruned once nothing reads them.
    """
    for i, node in enumerate(rw.nodes):
        if node.op_type in INTEGER_OPS and node.domain in ONNX_DOMAINS and i not in rw.replace:
            _integer_op(rw, i, node)
    return rw.commit()


def _integer_op(rw: _Rewriter, index: int, node: onnx.NodeProto) -> None:
    if len(node.output) != 1 or len(node.input) < 2 or not _well_kinded(node):
        return
    cast_index = rw.only_reader(node.output[0])
    cast = rw.nodes[cast_index] if cast_index is not None else None
    if cast is None or cast.op_type != "Cast" or _int_attribute(cast, "to", None) != TensorProto.FLOAT:
        return
    mul_index = rw.only_reader(cast.output[0])
    mul = rw.nodes[mul_index] if mul_index is not None else None
    if mul is None or mul.op_type != "Mul" or len(mul.input) != 2 or cast.output[0] not in mul.input:
        return
    scales = rw.producer_of(mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0])
    if scales is None or scales.op_type != "Mul" or len(scales.input) != 2:
        return
    operands = [_integer_operand(rw, node, k, scales) for k in (0, 1)]
    if any(operand is None for operand in operands) or all(constant for _, constant in operands):
        return  # unexpected wiring, or two constants (nothing computed at run time: not a layer)
    operands = [name for name, _ in operands]
    output, replaced, float_op = mul.output[0], [index, cast_index, mul_index], INTEGER_OPS[node.op_type]
    weight = rw.value(node.input[1])
    bias = _conv_bias_after(rw, output, weight) if float_op == "Conv" else _gemm_bias_after(rw, output, weight)
    if bias is not None:
        add_index, bias_name = bias
        operands.append(bias_name)
        output = rw.nodes[add_index].output[0]
        replaced.append(add_index)
        float_op = "Conv" if float_op == "Conv" else "Gemm"
    float_node = helper.make_node(float_op, operands, [output], name=node.name)
    float_node.attribute.extend(node.attribute)
    for k in replaced:
        rw.replace[k] = []
    rw.replace[replaced[-1]] = [float_node]


def _integer_operand(rw: _Rewriter, node: onnx.NodeProto, k: int,
                     scales: onnx.NodeProto) -> tuple[str, bool] | None:
    """The float tensor for operand ``k`` of an integer op (what a DynamicQuantizeLinear read, or a dequantized
    constant), and whether it is a constant; None when the wiring is not the quantizer's.

    The constant's scale is the other factor of the scale product ``scales`` (the Mul that multiplies
    the activation's run-time scale by the weight's).
    """
    name, zero_name = node.input[k], _input(node, k + 2)
    quantize = rw.producer_of(name)
    if quantize is not None and quantize.op_type == "DynamicQuantizeLinear" and len(quantize.output) == 3:
        if name != quantize.output[0] or zero_name not in ("", quantize.output[2]) \
                or quantize.output[1] not in scales.input or not quantize.input:
            return None
        return quantize.input[0], False
    q = rw.value(name)
    zero = rw.value(zero_name) if zero_name else None
    if q is None or q.dtype.kind not in "iuV" or (zero_name and zero is None):
        return None
    scale_names = [s for s in scales.input if rw.value(s) is not None]
    if len(scale_names) != 1:
        return None
    # ConvInteger: per output channel (axis 0); MatMulInteger's B: per column (the last axis)
    axis = 0 if node.op_type == "ConvInteger" or q.ndim == 0 else q.ndim - 1
    values = dequantize(q, rw.value(scale_names[0]), zero, axis)
    return None if values is None else (rw.constant(name.removesuffix("_quantized"), values), True)


def _conv_bias_after(rw: _Rewriter, output: str, weight: np.ndarray | None) -> tuple[int, str] | None:
    """The Add of a per-channel constant bias reading a Conv's ``output``: its node and the bias as [M].

    The quantizer writes the bias as ``Reshape(bias, [1, -1, 1, 1])``; a constant already of shape
    [1, M, 1, 1] (or [M, 1, 1]) is one too. A [M] constant would broadcast along the last axis: not a bias.
    """
    add_index = rw.only_reader(output)
    add = rw.nodes[add_index] if add_index is not None else None
    if add is None or weight is None or weight.ndim < 3 or add.op_type != "Add" or len(add.input) != 2 \
            or add_index in rw.replace:
        return None
    other = add.input[1] if add.input[0] == output else add.input[0]
    bias, shape = rw.value(other), None
    if bias is not None:
        shape = list(bias.shape)
    else:
        reshape = rw.producer_of(other)
        if reshape is not None and reshape.op_type == "Reshape" and len(reshape.input) == 2:
            bias, target = rw.value(reshape.input[0]), rw.value(reshape.input[1])
            if target is not None and target.dtype.kind == "i" and target.ndim == 1:
                shape = [int(d) for d in target]
    channels = weight.shape[0]
    if bias is None or shape is None or bias.dtype.kind != "f" or bias.size != channels:
        return None
    spatial = weight.ndim - 2
    if shape not in ([1, channels] + [1] * spatial, [1, -1] + [1] * spatial, [channels] + [1] * spatial):
        return None
    return add_index, rw.constant(f"{other}_bias", bias.reshape(-1).astype(np.float32))


def _gemm_bias_after(rw: _Rewriter, output: str, weight: np.ndarray | None) -> tuple[int, str] | None:
    """The bias Add of a Gemm that onnxruntime's quantizer split into MatMul + Add, and the bias.

    The quantizer names the MatMul's output ``<Gemm output>_MatMul`` and adds the Gemm's bias (of
    shape [N]) to it; its input is a Gemm's, 2-D. A MatMul + Add of other names stays as it is.
    """
    add_index = rw.only_reader(output)
    add = rw.nodes[add_index] if add_index is not None else None
    if add is None or weight is None or weight.ndim != 2 or add.op_type != "Add" or len(add.input) != 2 \
            or len(add.output) != 1 or add_index in rw.replace or output != add.output[0] + "_MatMul":
        return None
    other = add.input[1] if add.input[0] == output else add.input[0]
    bias = rw.value(other)
    if bias is None or bias.dtype.kind != "f" or bias.shape != (weight.shape[1],):
        return None
    return add_index, rw.constant(f"{other}_bias", bias.astype(np.float32))


# --- pass: constant DequantizeLinear -----------------------------------------------------------


def fold_constant_dequantize(rw: _Rewriter) -> int:
    """DequantizeLinear of a constant (a QDQ weight or int32 bias) is a float32 initializer of the same name."""
    for i, node in enumerate(rw.nodes):
        if node.op_type != "DequantizeLinear" or node.domain not in QDQ_DOMAINS or len(node.output) != 1:
            continue
        if node.output[0] in rw.pinned or len(node.input) < 2 or _int_attribute(node, "block_size", 0) != 0:
            continue
        q, scale = rw.value(node.input[0]), rw.value(node.input[1])
        zero_name = _input(node, 2)
        zero = rw.value(zero_name) if zero_name else None
        axis = _int_attribute(node, "axis", 1)
        if q is None or scale is None or (zero_name and zero is None) or axis is None:
            continue
        values = dequantize(q, scale, zero, axis % q.ndim if q.ndim else 0)
        if values is None:
            continue
        rw.new_initializers.append(numpy_helper.from_array(values, node.output[0]))
        rw.replace[i] = []
    return rw.commit()


# --- pass: integer layout ops ------------------------------------------------------------------


def integer_layout_to_float(rw: _Rewriter) -> int:
    """A layout op on quantized data (``Q(x) -> MaxPool -> ...``) runs on ``x`` instead, its output quantized after.

    QOperator models run MaxPool, Flatten and Reshape on int8 tensors, with the input's scale and zero
    point. On the float side they give the same values dequantized; a QuantizeLinear after them (with
    those parameters) keeps the int8 tensor for whatever still reads it, and the Q/DQ pass then joins
    the float chain. Chains (MaxPool -> Flatten) move in one pass, in topological order.
    """
    quantized_from: dict[str, tuple[str, str, str]] = {}  # int tensor -> (float tensor, scale, zero point)
    for node in rw.nodes:
        if node.op_type == "QuantizeLinear" and node.domain in QDQ_DOMAINS and len(node.input) == 3 \
                and len(node.output) == 1 and _activation_quantize(rw, node):
            quantized_from[node.output[0]] = (node.input[0], node.input[1], node.input[2])
    for i, node in enumerate(rw.nodes):
        if node.op_type not in INTEGER_LAYOUT_OPS or node.domain not in ONNX_DOMAINS or not node.input:
            continue
        source = quantized_from.get(node.input[0])
        if source is None or node.input[0] in node.input[1:] or not _well_kinded(node):
            continue
        replacement = _layout_op_on_float(rw, node, *source)
        if replacement is not None:
            rw.replace[i] = replacement
            for quantize in replacement[1:]:
                quantized_from[quantize.output[0]] = (quantize.input[0], source[1], source[2])
    return rw.commit()


def _activation_quantize(rw: _Rewriter, node: onnx.NodeProto) -> bool:
    """A per-tensor QuantizeLinear of a run-time tensor, with constant parameters."""
    scale, zero = rw.value(node.input[1]), rw.value(node.input[2])
    return (node.input[0] not in rw.constants and _scalar(scale) and scale.dtype.kind == "f"
            and _scalar(zero) and zero.dtype in ZERO_POINT_TYPES)


def _layout_op_on_float(rw: _Rewriter, node: onnx.NodeProto, source: str, scale: str,
                        zero: str) -> list[onnx.NodeProto] | None:
    inputs = [source, *node.input[1:]]
    if node.op_type == "Pad" and len(inputs) > 2 and inputs[2]:
        pad_value = rw.value(inputs[2])  # the pad value is quantized too: 0.0 is the zero point
        pad_scale = rw.value(scale)
        value = dequantize(pad_value, pad_scale, rw.value(zero), 0) if None not in (pad_value, pad_scale) else None
        if value is None:
            return None
        inputs[2] = rw.constant(inputs[2] + "_dequantized", value)
    float_outputs = [rw.fresh(name + "_float") if name else "" for name in node.output]
    rw.created.update(name for name in float_outputs if name)
    moved = helper.make_node(node.op_type, inputs, float_outputs, name=node.name)
    moved.attribute.extend(node.attribute)
    quantizes = [rw.node("QuantizeLinear", [float_name, scale, zero], [name], name=f"{name}_quantize")
                 for name, float_name in zip(node.output, float_outputs) if name]
    return [moved, *quantizes]


# --- pass: activation Q/DQ pairs ---------------------------------------------------------------


def remove_activation_qdq(rw: _Rewriter) -> int:
    """``QuantizeLinear(x) -> DequantizeLinear`` of the same parameters reads ``x``; the fused activation comes back.

    onnxruntime's quantizers drop a Relu (or Clip) after an op whose output they quantize, and widen
    nothing: the output range starts at 0, so the zero point sits at the type's minimum. Where it does
    and the producer can output negative values, :func:`_restore_activation` puts the Relu back (a
    Clip(0, 6) for a ReLU6); a pooling or layout op of a Relu's output starts at 0 by itself. A pair
    with other parameters on each side requantizes and is left.
    """
    relu6 = _relu6_by_default(rw)
    restored: set[str] = set()
    for node in rw.nodes:
        if node.op_type == "QuantizeLinear" and node.domain in QDQ_DOMAINS and len(node.input) == 3 \
                and len(node.output) == 1 and _activation_quantize(rw, node) and node.input[0] not in restored \
                and _restore_activation(rw, node, relu6):
            restored.add(node.input[0])
    for i, node in enumerate(rw.nodes):
        if node.op_type != "DequantizeLinear" or node.domain not in QDQ_DOMAINS or len(node.input) < 2 \
                or len(node.output) != 1:
            continue
        quantize = rw.producer_of(node.input[0])
        if quantize is None or quantize.op_type != "QuantizeLinear" or quantize.domain not in QDQ_DOMAINS \
                or len(quantize.input) < 2 or not _same_parameters(rw, quantize, node):
            continue
        rw.rename[node.output[0]] = quantize.input[0]
        rw.replace[i] = []
    return rw.commit()


def _same_parameters(rw: _Rewriter, quantize: onnx.NodeProto, dequantize: onnx.NodeProto) -> bool:
    """Do a Q and a DQ use equal constant scales, zero points and axes (a round trip, not a requantization)?"""
    for position in (1, 2):
        a, b = _input(quantize, position), _input(dequantize, position)
        if a == b:
            continue
        va, vb = (rw.value(a) if a else None), (rw.value(b) if b else None)
        if va is None or vb is None or va.shape != vb.shape or not np.array_equal(va, vb):
            return False
    return _int_attribute(quantize, "axis", 1) == _int_attribute(dequantize, "axis", 1) \
        and _int_attribute(quantize, "block_size", 0) == _int_attribute(dequantize, "block_size", 0) == 0


def _fused_activation_range(rw: _Rewriter, quantize: onnx.NodeProto) -> tuple[float, float] | None:
    """The float range of a QuantizeLinear whose input had a Relu fused away (zero point at the minimum), else None."""
    producer = rw.producer_of(quantize.input[0])
    zero = rw.value(quantize.input[2])
    if producer is None or producer.op_type not in FUSES_ACTIVATION or not producer.output \
            or producer.output[0] != quantize.input[0] or not _type_minimum(zero):
        return None
    return _quantized_range(rw.value(quantize.input[1]), zero)


def _is_relu6(high: float) -> bool:
    return abs(high - RELU6) <= RELU6_TOLERANCE * RELU6


def _relu6_by_default(rw: _Rewriter) -> bool:
    """Is a fused activation whose range ends below 6 a ReLU6 (a model of ReLU6s) rather than a ReLU?

    A ReLU6 output calibrated on data that reaches 6 ends exactly at 6; one that never reaches it
    looks like a ReLU. Each fused range votes: ending at 6 for ReLU6, beyond 6 for ReLU, and so does
    each scalar 6.0 no node reads (the max of a Clip the quantizer removed, which it leaves behind).
    A model mixes the two rarely; ties go to ReLU.
    """
    votes = Counter()
    for node in rw.nodes:
        if node.op_type == "QuantizeLinear" and len(node.input) == 3 and len(node.output) == 1 \
                and _activation_quantize(rw, node):
            fused = _fused_activation_range(rw, node)
            if fused is not None and _is_relu6(fused[1]):
                votes["relu6"] += 1
            elif fused is not None and fused[1] > RELU6:
                votes["relu"] += 1
    for name, tensor in rw.constants.items():
        if not rw.readers(name) and name not in rw.pinned and tensor.data_type == TensorProto.FLOAT \
                and not tensor.dims and (value := rw.value(name)) is not None and float(value) == RELU6:
            votes["relu6"] += 1
    return votes["relu6"] > votes["relu"]


def _restore_activation(rw: _Rewriter, quantize: onnx.NodeProto, relu6_by_default: bool) -> bool:
    """Put back the Relu (or ReLU6 Clip) fused into ``quantize``'s input: producer -> x_preactivation -> act -> x."""
    fused = _fused_activation_range(rw, quantize)
    if fused is None:
        return False
    name = quantize.input[0]
    producer_index = rw.producer[name]
    if producer_index in rw.replace:
        return False
    producer = onnx.NodeProto()
    producer.CopyFrom(rw.nodes[producer_index])
    before = rw.fresh(name + "_preactivation")
    producer.output[0] = before
    rw.created.add(before)
    high = fused[1]
    if _is_relu6(high) or (relu6_by_default and high < RELU6):
        activation = _relu6(rw, before, name)
    else:
        activation = rw.node("Relu", [before], [name], name=f"{producer.name or producer.op_type}_relu")
    rw.replace[producer_index] = [producer, activation]
    return True


def _relu6(rw: _Rewriter, source: str, output: str) -> onnx.NodeProto:
    if rw.opset < 11:  # Clip's bounds were attributes before opset 11
        return rw.node("Clip", [source], [output], name=f"{output}_relu6", min=0.0, max=RELU6)
    if rw.relu6_bounds is None:  # one pair of bounds for all the Clips of the model
        rw.relu6_bounds = (rw.constant("relu6_min", np.array(0.0, dtype=np.float32)),
                            rw.constant("relu6_max", np.array(RELU6, dtype=np.float32)))
    return rw.node("Clip", [source, *rw.relu6_bounds], [output], name=f"{output}_relu6")


# --- declared types ----------------------------------------------------------------------------


def _fix_declared_types(graph: onnx.GraphProto, quantized: bool) -> None:
    """fp16/bf16 declared types become float; value_info of tensors gone, or of quantized types, goes.

    Shape inference in preparation types every tensor again; a stale int8 declaration on a tensor that
    is float now would contradict it.
    """
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type in REDUCED_FLOATS:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    present = {name for node in graph.node for name in [*node.input, *node.output]}
    kept = [v for v in graph.value_info if v.name in present
            and not (quantized and v.type.tensor_type.elem_type in QUANTIZED_TYPES)]
    if len(kept) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(kept)
