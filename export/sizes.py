"""Where a model file's bytes go: the weights of each layer group, measured on the file's own tensors.

    tflite_tensor_bytes(flatbuffer, config)  # {"embedding": 1280000, "lstm": 394240, "output": 40004, ...}
    onnx_tensor_bytes(proto, config)

A constant is put in a group by what reads it and by its shape: one read by a lookup (GATHER) is the
embedding (in a tied model the softmax reads it too, and it is counted once, there); ``4 * hidden``
belongs to the LSTM; a vocabulary-sized one is the output layer; the projection's width, the projection. int8 files count their row scales with the matrix they scale. The exporter
writes these figures into the metadata, where `nextword inspect` shows them beside the metadata's own bytes.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from nextword.config import ModelConfig
from nextword.export.onnx_format import nodes as _nodes

GROUPS = ("embedding", "lstm", "projection", "output", "other constants")


def _group(shape: tuple[int, ...], looked_up: bool, config: ModelConfig) -> str:
    if looked_up:
        return "embedding"
    if 4 * config.hidden_size in shape:  # before the vocabulary: an LSTM kernel may have vocab_size input rows
        return "lstm"
    if config.vocab_size in shape:
        return "output"
    if config.projection_dim and config.projection_dim in shape and len(shape) <= 2:
        return "projection"
    return "other constants"


def tflite_tensor_bytes(flatbuffer: bytes, config: ModelConfig) -> dict[str, int]:
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    gather = schema.BuiltinOperator.GATHER
    shapes: dict[int, tuple[int, ...]] = {}
    looked_up: set[int] = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) == gather:
                looked_up.add(subgraph.tensors[op.inputs[0]].buffer)
        for tensor in subgraph.tensors:
            if tensor.buffer and model.buffers[tensor.buffer].data is not None:
                shapes.setdefault(tensor.buffer, tuple(int(d) for d in tensor.shape))
    sizes: dict[str, int] = defaultdict(int)
    for buffer, shape in shapes.items():
        sizes[_group(shape, buffer in looked_up, config)] += len(model.buffers[buffer].data)
    return {group: sizes[group] for group in GROUPS if sizes[group]}


def onnx_tensor_bytes(proto, config: ModelConfig) -> dict[str, int]:
    looked_up = {node.input[0] for node in _nodes(proto.graph) if node.op_type == "Gather"}
    # A quantized initializer is read through DequantizeLinear; the lookup reads the dequantized name.
    for node in _nodes(proto.graph):
        if node.op_type == "DequantizeLinear" and node.output[0] in looked_up:
            looked_up.update(node.input)
    sizes: dict[str, int] = defaultdict(int)
    for initializer in _initializers(proto.graph):
        data = len(initializer.raw_data) or _typed_bytes(initializer)
        sizes[_group(tuple(initializer.dims), initializer.name in looked_up, config)] += data
    return {group: sizes[group] for group in GROUPS if sizes[group]}


def _typed_bytes(initializer) -> int:
    values = (initializer.float_data, initializer.int32_data, initializer.int64_data, initializer.double_data)
    itemsize = {1: 4, 2: 1, 3: 1, 6: 4, 7: 8, 10: 2, 11: 8}.get(initializer.data_type, 4)
    return int(np.prod(initializer.dims, dtype=np.int64)) * itemsize if any(len(v) for v in values) else 0


def _initializers(graph):
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _initializers(attribute.g)
