"""Static checks and schema of an ONNX graph, read with the `onnx` protobuf classes only.

Parsing a protobuf runs no code from the file, so the web tier may call this to refuse a bad
`.onnx` upload with a 422 before anything is stored; workers call it again before creating an
InferenceSession. Only standard operators are admitted: a custom domain needs a native operator
library, and external data would make the runtime read other files from disk. Control flow and
operators whose output size is computed from the data are refused too: they are how a
300-byte graph loops forever or allocates gigabytes (the runtime itself refuses malformed
tree ensembles, e.g. a node that points back at its parent).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
CLASSES_PROP = "mlsp.classes"  # metadata written by our converter: the estimator's classes_
INPUT_DTYPES = {TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64"}
# What one [batch, 1] input per column may hold: numbers, integers (an encoder's integer or
# boolean categories) and strings (workers/validation/compile.py converts typed models so).
COLUMN_DTYPES = {**INPUT_DTYPES, TensorProto.INT64: "int64", TensorProto.STRING: "str"}
_LABEL_TYPES = {TensorProto.INT64, TensorProto.STRING, TensorProto.INT32}
_CLASS_ATTRS = ("classlabels_int64s", "classlabels_strings", "classlabels_ints")
# Loops and branches run a subgraph a number of times the input can choose.
CONTROL_FLOW = frozenset({"Loop", "Scan", "If", "SequenceMap"})
# Operators whose output size is given by tensors (input indices): refused unless those tensors
# are constants of the file, since a value computed from the request could ask for any size.
SIZE_INPUTS: dict[str, tuple[int, ...]] = {
    "ConstantOfShape": (0,),
    "Expand": (1,),
    "Tile": (1,),
    "Range": (0, 1, 2),
    "OneHot": (1,),
    "Pad": (1,),
    "Resize": (2, 3),
    "Upsample": (1,),
    "CenterCropPad": (1,),
}
MAX_NODES = 100_000  # counted before any other walk: far above any converted tabular model


class OnnxGraphError(ValueError):
    """The file is not an ONNX model this service can run."""


class NotOnnxError(OnnxGraphError):
    """The bytes do not parse as an ONNX model at all."""


def parse(data: bytes) -> ModelProto:
    """The ModelProto in `data` (never follows external-data references); NotOnnxError if none."""
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError, or anything on garbage
        raise NotOnnxError(f"not an ONNX model: {type(exc).__name__}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise NotOnnxError("not an ONNX model: no graph")
    return model


def check(model: ModelProto) -> None:
    """Raise OnnxGraphError unless the graph uses standard operators only, keeps every tensor
    inside the file, has no control flow or data-sized allocation, has outputs, and takes one
    2-D float/double input or one [batch, 1] input per column (`column_inputs`)."""
    _check_size(model.graph)
    bad = sorted({o.domain for o in model.opset_import} - STANDARD_DOMAINS)
    bad += sorted({n.domain for n in _nodes(model.graph)} - STANDARD_DOMAINS - set(bad))
    if bad:
        raise OnnxGraphError(f"custom operator domains are not allowed: {', '.join(bad)}")
    if model.functions:
        raise OnnxGraphError("model-local functions are not allowed")
    if any(_is_external(t) for t in _tensors(model.graph)):
        raise OnnxGraphError("tensors with external data are not allowed: embed all weights")
    _check_operators(model.graph)
    if not model.graph.output:
        raise OnnxGraphError("the graph has no outputs")
    if column_inputs(model) is None:
        input_spec(model)


def _check_size(graph: GraphProto) -> None:
    count = 0
    for count, _ in enumerate(_nodes(graph), start=1):
        if count > MAX_NODES:
            raise OnnxGraphError(f"the graph has more than {MAX_NODES} nodes")


def _check_operators(graph: GraphProto) -> None:
    """No loops or branches, and every data-sized allocation sized by a constant of the file."""
    constants = {"", *(t.name for t in graph.initializer)}  # "": an optional input left out
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    for node in _nodes(graph):
        if node.op_type in CONTROL_FLOW:
            raise OnnxGraphError(f"control flow operators are not allowed: {node.op_type}")
        sizes = [node.input[i] for i in SIZE_INPUTS.get(node.op_type, ()) if i < len(node.input)]
        if any(name not in constants for name in sizes):
            raise OnnxGraphError(
                f"{node.op_type} sized by a computed tensor is not allowed: its size must be a"
                " constant of the file"
            )


def input_spec(model: ModelProto) -> tuple[int, str]:
    """(n_features, numpy dtype name) of the graph's one [batch, n_features] input."""
    inputs = _real_inputs(model.graph)
    if len(inputs) != 1:
        raise OnnxGraphError(f"the graph must have exactly one input, it has {len(inputs)}")
    tensor = inputs[0].type.tensor_type
    if not inputs[0].type.HasField("tensor_type") or tensor.elem_type not in INPUT_DTYPES:
        raise OnnxGraphError("the graph input must be a float or double tensor")
    dims = tensor.shape.dim
    if len(dims) != 2 or not dims[1].HasField("dim_value") or dims[1].dim_value < 1:
        raise OnnxGraphError("the graph input must have shape [batch, n_features]")
    return int(dims[1].dim_value), INPUT_DTYPES[tensor.elem_type]


def column_inputs(model: ModelProto) -> list[tuple[str, str]] | None:
    """(name, numpy dtype name) of each input, in feature order, when the graph takes one
    [batch, 1] tensor per column: several inputs, or a single one that is not a float/double
    matrix. None for a graph of one float/double input (`input_spec` describes it)."""
    inputs = _real_inputs(model.graph)
    if len(inputs) == 1 and _elem_type(inputs[0]) in INPUT_DTYPES:
        return None
    if not inputs:
        raise OnnxGraphError("the graph has no inputs")
    columns = []
    for value in inputs:
        if _elem_type(value) not in COLUMN_DTYPES:
            raise OnnxGraphError(
                f"graph input {value.name!r} must be a float, double, int64 or string tensor"
            )
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 2 or dims[1].dim_value != 1:
            raise OnnxGraphError(
                f"graph input {value.name!r} must have shape [batch, 1]: a graph of several"
                " inputs takes one per column"
            )
        columns.append((value.name, COLUMN_DTYPES[_elem_type(value)]))
    return columns


def _elem_type(value: onnx.ValueInfoProto) -> int | None:
    return value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else None


def output_schema(model: ModelProto) -> dict[str, Any]:
    """Task, classes and has_proba, inferred from the outputs: a label tensor (int64/string)
    first means a classifier; a second output then holds its probabilities."""
    outputs = model.graph.output
    first = outputs[0].type
    is_label = first.HasField("tensor_type") and first.tensor_type.elem_type in _LABEL_TYPES
    if not is_label:
        return {"task": "regression", "classes": None, "has_proba": False}
    return {"task": "classification", "classes": classes(model), "has_proba": len(outputs) > 1}


def classes(model: ModelProto) -> list[Any] | None:
    """Class labels: our converter's metadata, else a classifier or ZipMap node's attribute."""
    for prop in model.metadata_props:
        if prop.key == CLASSES_PROP:
            return json.loads(prop.value)
    for node in _nodes(model.graph):
        for attr in node.attribute:
            if attr.name in _CLASS_ATTRS:
                values = onnx.helper.get_attribute_value(attr)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    return None


def _real_inputs(graph: GraphProto) -> list[onnx.ValueInfoProto]:
    # Old exporters list initializers among the inputs too; those are weights, not features.
    weights = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in weights]


def _subgraphs(graph: GraphProto) -> Iterator[GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from _subgraphs(attr.g)
            for sub in attr.graphs:
                yield from _subgraphs(sub)


def _nodes(graph: GraphProto) -> Iterator[onnx.NodeProto]:
    for g in _subgraphs(graph):
        yield from g.node


def _tensors(graph: GraphProto) -> Iterator[TensorProto]:
    for g in _subgraphs(graph):
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        for node in g.node:
            for attr in node.attribute:
                yield from _attribute_tensors(attr)


def _attribute_tensors(attr: AttributeProto) -> Iterator[TensorProto]:
    """Every tensor an attribute holds, dense or sparse (a sparse value's tensors can point at
    external files just as well)."""
    if attr.HasField("t"):
        yield attr.t
    yield from attr.tensors
    sparse = [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []
    for value in [*sparse, *attr.sparse_tensors]:
        yield from (value.values, value.indices)


def _is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0
