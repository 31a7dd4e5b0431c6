"""ONNX files: conversion with tf2onnx, int8 with ONNX Runtime, metadata_props with a self-digest.

ONNX has one graph per file: the file holds the sequence form (an ONNX ``Loop`` over the tokens),
which is also the window form (a pre-padded window from the zero state) and the step form (one
token), so each precision is one file with its weights stored once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from nextword.modelfile.contract import (DIGEST_PLACEHOLDER, ONNX_CONFIG_KEY, ONNX_DIGEST_KEY, ONNX_VOCAB_KEY, PRECISIONS as _PRECISIONS, SEQUENCE)
from nextword.modelfile.containers import onnx_digest, onnx_metadata_props

PRECISIONS = _PRECISIONS["onnx"]
OPSET = 17


def convert(graphs) -> onnx.ModelProto:
    import tf2onnx

    function = graphs.sequence
    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=OPSET)
    proto.graph.name = f"nextword_{SEQUENCE}"
    return proto


def quantize_int8(proto: onnx.ModelProto, config, *, weight_only_output: bool = False) -> onnx.ModelProto:
    """int8 weights everywhere, the tied matrix once; float32 activations on the recurrent path.

    The embedding and the softmax: ONNX Runtime's dynamic quantization (int8 weights with one
    per-tensor scale, ``MatMulInteger`` on the softmax input quantized per call; per-tensor measured
    better than per-channel: top-1 98.3% vs 97.1% on the default model, top-5 overlap 99% vs 91% on
    the tiny parity fixture). A tied model's lookup then reads the softmax's int8 matrix (``_tie``).
    The LSTM kernels: int8 with one scale per output column, dequantized to float32 once per call
    (``_weight_only``): dynamic quantization would also quantize the cell's input activations with one
    scale per call, an error that compounds step after step (top-1 91.8% on the default model with
    onnxruntime 1.32, against 98.3% with the cell in float32).

    ``weight_only_output``: the output layer's matrices int8 per column too, dequantized per call, with float32
    activations: for a small model whose confident softmax dynamic quantization disturbs (a tutorial's
    18-word model: top-1 82% dynamic, 99.6% weight-only). The exporter uses it when the dynamic file misses
    its tolerance. Not for a tied model (its lookup reads the dynamic int8 matrix).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    cell, cell_weights = _recurrent_matmuls(proto.graph)
    if weight_only_output:
        matrices = {init.name for init in proto.graph.initializer if len(init.dims) == 2}
        outer = [node for node in proto.graph.node if node.op_type == "MatMul"]
        cell = cell + [node.name for node in outer]
        cell_weights = cell_weights | {name for node in outer for name in node.input if name in matrices}
    with tempfile.TemporaryDirectory(prefix="nextword-onnx-") as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(proto, source)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=False, nodes_to_exclude=cell)
        quantized = onnx.load_model(target)
    if config.tie_embeddings:
        _tie(quantized, config)
    _weight_only(quantized, cell_weights)
    return quantized


def _recurrent_matmuls(graph) -> tuple[list[str], set[str]]:
    """(MatMul nodes inside the Loop body, the float matrices they read): the recurrent cell's kernels,
    whatever the cell (LSTM 4 x units columns, GRU 3 x, SimpleRNN 1 x)."""
    matrices = {init.name for init in graph.initializer
                if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 2}
    names, weights = [], set()
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                body = attribute.g
                # A Loop body reads an outer matrix by its name, or as a loop-carried input: body input k
                # is the Loop's input k (after the trip count and the condition).
                outer = {inner.name: outer for inner, outer in zip(body.input[2:], node.input[2:])}
                for inner in nodes(body):
                    if inner.op_type == "MatMul":
                        names.append(inner.name)
                        weights.update(outer.get(name, name) for name in inner.input
                                       if outer.get(name, name) in matrices)
    return names, weights


def tie_float(proto: onnx.ModelProto, config) -> None:
    """A tied float32 model's softmax reads the embedding itself (``Gemm`` with ``transB``), not the transposed
    copy tf2onnx folds for ``MatMul``: the tied matrix stored once."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    inits = _initializers(graph)
    gather = next(n for n in graph.node if n.op_type == "Gather" and n.input[0] in inits
                  and tuple(inits[n.input[0]].dims) == (config.vocab_size, config.embedding_dim))
    embedding = numpy_helper.to_array(inits[gather.input[0]])
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and \
                tuple(inits[node.input[1]].dims) == (config.projection_dim, config.vocab_size) and \
                np.array_equal(numpy_helper.to_array(inits[node.input[1]]), embedding.T):
            copy = node.input[1]
            gemm = helper.make_node("Gemm", [node.input[0], gather.input[0]], list(node.output), transB=1,
                                    name=f"{node.name}/tied")
            index = list(graph.node).index(node)
            graph.node.remove(node)
            graph.node.insert(index, gemm)
            graph.initializer.remove(inits[copy])
            return


def _initializers(graph) -> dict:
    return {init.name: init for init in graph.initializer}


def _tie(proto: onnx.ModelProto, config) -> None:
    """The lookup reads the softmax's int8 matrix (E transposed, ``[E, vocab]``) along axis 1, then
    dequantizes and transposes the few rows it took: the tied matrix stored once, as int8."""
    from onnx import helper

    graph = proto.graph
    inits = _initializers(graph)
    softmax = next(n for n in graph.node if n.op_type == "MatMulInteger"
                   and tuple(inits[n.input[1]].dims) == (config.projection_dim, config.vocab_size))
    weight, weight_zero = softmax.input[1], softmax.input[3]
    weight_scale = weight.removesuffix("_quantized") + "_scale"  # ONNX Runtime's names for its per-tensor scale
    if weight_scale not in inits:
        raise RuntimeError(f"onnxruntime's quantizer left no {weight_scale}: cannot share the tied matrix")
    gather = next(n for n in graph.node if n.op_type == "Gather" and n.input[0] in inits
                  and tuple(inits[n.input[0]].dims) == (config.vocab_size, config.embedding_dim))
    dequantize = next(n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == gather.output[0])
    old = [gather.input[0], dequantize.input[1], dequantize.input[2]]
    columns = f"{gather.output[0]}/columns"
    dequantized = f"{gather.output[0]}/columns_float"
    rank = 3  # ids (batch, steps) -> gathered (E, batch, steps)
    replacement = [
        helper.make_node("Gather", [weight, gather.input[1]], [columns], axis=1, name=f"{gather.name}/tied"),
        helper.make_node("DequantizeLinear", [columns, weight_scale, weight_zero], [dequantized],
                         name=f"{dequantize.name}/tied"),
        helper.make_node("Transpose", [dequantized], [dequantize.output[0]], perm=[*range(1, rank), 0],
                         name=f"{gather.name}/rows"),
    ]
    index = list(graph.node).index(gather)
    kept = [n for n in graph.node if n is not gather and n is not dequantize]
    del graph.node[:]
    graph.node.extend(kept[:index] + replacement + kept[index:])
    still_read = {name for n in nodes(graph) for name in n.input}
    for name in old:
        if name not in still_read and name in inits:
            graph.initializer.remove(inits[name])


def _weight_only(proto: onnx.ModelProto, names: set[str]) -> None:
    """The float32 matrices ``names`` (the recurrent kernels) -> int8 with one scale per column, and a
    DequantizeLinear at the top of the graph that gives their old name back (the Loop body reads it)."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    added = []
    for init in list(graph.initializer):
        if init.name not in names or init.data_type != onnx.TensorProto.FLOAT or len(init.dims) != 2:
            continue
        columns = int(init.dims[1])
        weights = numpy_helper.to_array(init)
        peak = np.max(np.abs(weights), axis=0)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        quantized = np.clip(np.round(weights / scale), -127, 127).astype(np.int8)
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(quantized, f"{init.name}_int8"),
                                  numpy_helper.from_array(scale, f"{init.name}_column_scale"),
                                  numpy_helper.from_array(np.zeros(columns, np.int8), f"{init.name}_column_zero")])
        added.append(helper.make_node("DequantizeLinear", [f"{init.name}_int8", f"{init.name}_column_scale",
                                                           f"{init.name}_column_zero"], [init.name], axis=1,
                                      name=f"{init.name}/dequantize"))
    nodes_now = list(graph.node)
    del graph.node[:]
    graph.node.extend(added + nodes_now)


def nodes(graph):
    """Every node of ``graph`` and of its subgraphs (the Loop's body)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from nodes(attribute.g)



def with_metadata(proto: onnx.ModelProto, vocab_text: str, config_json: str) -> bytes:
    """Serialized model whose ``nextword.sha256`` is the digest of these very bytes (digest blanked)."""
    del proto.metadata_props[:]
    for key, value in ((ONNX_CONFIG_KEY, config_json), (ONNX_VOCAB_KEY, vocab_text),
                       (ONNX_DIGEST_KEY, DIGEST_PLACEHOLDER)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    _, start, end = onnx_metadata_props(data)[ONNX_DIGEST_KEY]
    digest = onnx_digest(data, (start, end))
    return data[:start] + digest.encode("ascii") + data[end:]
