"""int8 TFLite written from the float32 file: every weight matrix stored once, as int8, with old ops only.

TensorFlow's dynamic-range quantizer (``Optimize.DEFAULT``) leaves what this model needs on the table:
it stores the tied embedding twice (a per-tensor copy for the lookup, a per-channel one for the
softmax), keeps an untied embedding in float32, and writes FULLY_CONNECTED version 12, which
tflite-runtime 2.14 (Raspberry Pi OS Bookworm's engine) cannot load. So the int8 file is the float32
flatbuffer with its weight matrices rewritten:

- each float32 matrix of at least ``MIN_ELEMENTS`` values whose every reader is a FULLY_CONNECTED
  (as its weights) or a GATHER along axis 0 becomes int8 with one symmetric scale per row
  (``max|row| / 127``): a row is a vocabulary word of the embedding and of the softmax, an output
  unit of the LSTM kernel;
- a matrix that only a lookup reads (an untied embedding) has one scale instead: GATHER returns its
  int8 rows and a DEQUANTIZE applies that scale (no per-row vector to store);
- the row scales are one vector, stored once. TFLite's own per-channel parameters would
  repeat them, with an int64 zero point each, on every tensor that reads the matrix, once per
  subgraph: 720 KB for a 10k vocabulary, more than the file may weigh;
- the int8 tensor says "scale 1.0", so the ops compute with the integers, and the scales are
  applied to their (small) outputs: FULLY_CONNECTED (the hybrid kernel, activations quantized per
  row on the fly) -> MUL by the row scales -> ADD the float32 bias; GATHER returns int8 rows ->
  DEQUANTIZE -> MUL by the gathered scales. Exactly ``W[r] = scale[r] * q[r]`` everywhere.

The vectors of at least ``MIN_ELEMENTS`` values that the added ops read (the row scales, the softmax
bias) are stored in float16 and read through a DEQUANTIZE (relative error 2^-11, invisible in the
probabilities; 20 KB each for a 10k vocabulary).

The LSTM kernels are hybrid too. TFLite's hybrid kernel quantizes its input per row, asymmetrically (not
with one scale per call, which made ONNX Runtime's int8 cell drift): measured on the ptb preset model
after 2 epochs, top-1 agreement 99.4% with a hybrid cell against 99.5% with the cell dequantized to
float32, and a 5-word ``sequence`` call 0.135 ms against 0.246 ms. Every op used here exists in
TFLite 2.3 and later.
"""

from __future__ import annotations

import hashlib

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

#: Smaller float constants (biases, shapes, slices) stay as they are.
MIN_ELEMENTS = 1024
_OPS = schema.BuiltinOperator
_FLOAT32, _INT8 = schema.TensorType.FLOAT32, schema.TensorType.INT8
#: Op versions that know what these ops are given here (tensorflow/lite/tools/versioning): GATHER 2
#: (int8 params), DEQUANTIZE 2 (int8 input), FULLY_CONNECTED 9 (hybrid, asymmetric input quantization).
_MIN_VERSIONS = {_OPS.GATHER: 2, _OPS.DEQUANTIZE: 2, _OPS.FULLY_CONNECTED: 9}
#: The TFLite release that introduced FULLY_CONNECTED version 9, the newest op version written here.
MIN_RUNTIME_VERSION = "2.3.0"


def quantize_weights(flatbuffer: bytes) -> bytes:
    """The float32 flatbuffer with its weight matrices in int8 (see the module docstring)."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            op.inputs, op.outputs = [int(i) for i in op.inputs], [int(i) for i in op.outputs]  # writable lists
    _share_identical_buffers(model)
    shapes, lookup_only = _quantizable_buffers(model)
    row_scales, tensor_scales = _quantize_buffers(model, shapes, lookup_only)
    for subgraph in model.subgraphs:
        _Rewriter(model, subgraph, row_scales, tensor_scales).run()
    _halve_vectors(model)
    _drop_unused_buffers(model)
    _set_min_runtime_version(model, MIN_RUNTIME_VERSION)
    builder = flatbuffers.Builder(len(flatbuffer))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _builtin(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _buffer_bytes(model, index: int) -> bytes:
    data = model.buffers[index].data
    return b"" if data is None else np.asarray(data, np.uint8).tobytes()


def _share_identical_buffers(model) -> None:
    """Point every tensor at the first buffer holding the same bytes (the converter may copy a matrix)."""
    first: dict[bytes, int] = {}
    alias: dict[int, int] = {}
    for index in range(len(model.buffers)):
        data = _buffer_bytes(model, index)
        if len(data) >= 4 * MIN_ELEMENTS:
            alias[index] = first.setdefault(hashlib.sha256(data).digest(), index)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = alias.get(tensor.buffer, tensor.buffer)


def _quantizable_buffers(model) -> tuple[dict[int, tuple[int, int]], set[int]]:
    """Buffer -> (rows, columns) of the float32 matrices every reader of which can take int8 rows; and those of
    them that only a lookup (GATHER) reads."""
    shapes: dict[int, tuple[int, int]] = {}
    refused: set[int] = set()
    multiplied: set[int] = set()
    for subgraph in model.subgraphs:
        for index, tensor in enumerate(subgraph.tensors):
            data = model.buffers[tensor.buffer].data if tensor.buffer else None
            if data is None or tensor.type != _FLOAT32 or tensor.shape is None or len(tensor.shape) != 2:
                continue
            rows, columns = (int(d) for d in tensor.shape)
            if rows * columns < MIN_ELEMENTS or len(data) != 4 * rows * columns:
                continue
            shapes[tensor.buffer] = (rows, columns)
            for op in subgraph.operators:
                for slot, read in enumerate(op.inputs):
                    if read == index and not _takes_int8_rows(model, op, slot):
                        refused.add(tensor.buffer)
                    if read == index and _builtin(model, op) != _OPS.GATHER:
                        multiplied.add(tensor.buffer)
            if index in subgraph.outputs:
                refused.add(tensor.buffer)
    kept = {buffer: shape for buffer, shape in shapes.items() if buffer not in refused}
    return kept, set(kept) - multiplied


def _takes_int8_rows(model, op, slot: int) -> bool:
    kind = _builtin(model, op)
    if kind == _OPS.FULLY_CONNECTED:
        options = op.builtinOptions
        return slot == 1 and options is not None and options.fusedActivationFunction == 0 \
            and options.weightsFormat == 0
    if kind == _OPS.GATHER:
        options = op.builtinOptions
        return slot == 0 and (options is None or (options.axis == 0 and options.batchDims == 0))
    return False


def _quantize_buffers(model, shapes: dict[int, tuple[int, int]], lookup_only: set[int]
                      ) -> tuple[dict[int, int], dict[int, float]]:
    """Each matrix -> int8 in place. Returns matrix -> the new float32 buffer of its row scales, and, for a
    matrix only looked up, matrix -> its one scale instead (its rows are dequantized by DEQUANTIZE itself)."""
    scale_buffers, tensor_scales = {}, {}
    for index, (rows, columns) in shapes.items():
        weights = np.frombuffer(_buffer_bytes(model, index), np.float32).reshape(rows, columns)
        if index in lookup_only:
            peak = float(np.max(np.abs(weights)))
            tensor_scales[index] = peak / 127.0 if peak > 0 else 1.0
            quantized = np.clip(np.round(weights / tensor_scales[index]), -127, 127).astype(np.int8)
            model.buffers[index].data = quantized.reshape(-1).view(np.uint8)
            continue
        peak = np.max(np.abs(weights), axis=1)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        quantized = np.clip(np.round(weights / scale[:, None]), -127, 127).astype(np.int8)
        model.buffers[index].data = quantized.reshape(-1).view(np.uint8)
        buffer = schema.BufferT()
        buffer.data = scale.view(np.uint8)
        model.buffers.append(buffer)
        scale_buffers[index] = len(model.buffers) - 1
    return scale_buffers, tensor_scales


def _opcode_index(model, builtin: int) -> int:
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, _MIN_VERSIONS.get(builtin, 1))
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode = builtin, min(builtin, 127)
    code.version = _MIN_VERSIONS.get(builtin, 1)
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


class _Rewriter:
    """One subgraph: int8 tensors for the quantized matrices, and the ops that apply their row scales."""

    def __init__(self, model, subgraph, scale_buffers: dict[int, int], tensor_scales: dict[int, float]) -> None:
        self.model, self.subgraph, self.scale_buffers, self.tensor_scales = model, subgraph, scale_buffers, tensor_scales
        self.scale_tensors: dict[tuple[int, bool], int] = {}

    def run(self) -> None:
        weights = {index for index, tensor in enumerate(self.subgraph.tensors) if tensor.buffer in self.scale_buffers}
        looked_up = {index for index, tensor in enumerate(self.subgraph.tensors) if tensor.buffer in self.tensor_scales}
        for index in weights:
            tensor = self.subgraph.tensors[index]
            tensor.type, tensor.quantization = _INT8, _unit_scale()
        for index in looked_up:
            tensor = self.subgraph.tensors[index]
            tensor.type, tensor.quantization = _INT8, _unit_scale(self.tensor_scales[tensor.buffer])
        operators = []
        for op in self.subgraph.operators:
            after = []
            kind = _builtin(self.model, op)
            if kind == _OPS.FULLY_CONNECTED and op.inputs[1] in weights:
                op.builtinOptions.asymmetricQuantizeInputs = True
                _opcode_index(self.model, _OPS.FULLY_CONNECTED)
                after = self._scale_outputs(op, op.inputs[1])
            elif kind == _OPS.GATHER and op.inputs[0] in weights:
                _opcode_index(self.model, _OPS.GATHER)
                after = self._scale_rows(op)
            elif kind == _OPS.GATHER and op.inputs[0] in looked_up:
                _opcode_index(self.model, _OPS.GATHER)
                after = self._dequantize_rows(op)
            operators.extend([op] + after)
        self.subgraph.operators = operators

    # ------------------------------------------------------------ building blocks
    def _tensor(self, like, type_: int, name: str, *, shape=None, buffer: int = 0, quantization=None) -> int:
        tensor = schema.TensorT()
        if shape is None:
            tensor.shape, tensor.shapeSignature = like.shape, like.shapeSignature
        else:
            tensor.shape = tensor.shapeSignature = np.asarray(shape, np.int32)
        tensor.hasRank = True
        tensor.type, tensor.buffer, tensor.name, tensor.quantization = type_, buffer, name.encode(), quantization
        self.subgraph.tensors.append(tensor)
        return len(self.subgraph.tensors) - 1

    def _op(self, builtin: int, inputs: list[int], outputs: list[int], options_type: int = 0, options=None):
        op = schema.OperatorT()
        op.opcodeIndex = _opcode_index(self.model, builtin)
        op.inputs, op.outputs = inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    def _binary(self, builtin: int, inputs: list[int], output: int):
        options = schema.MulOptionsT() if builtin == _OPS.MUL else schema.AddOptionsT()
        options.fusedActivationFunction = 0
        kind = schema.BuiltinOptions.MulOptions if builtin == _OPS.MUL else schema.BuiltinOptions.AddOptions
        return self._op(builtin, inputs, [output], kind, options)

    def _scales(self, weight: int, column: bool) -> int:
        """The matrix's row scales as a tensor of this subgraph: (rows,) or, ``column``, (rows, 1)."""
        key = (weight, column)
        if key not in self.scale_tensors:
            source = self.subgraph.tensors[weight]
            rows = int(source.shape[0])
            self.scale_tensors[key] = self._tensor(source, _FLOAT32, f"{source.name.decode()}/row_scales",
                                                   shape=(rows, 1) if column else (rows,),
                                                   buffer=self.scale_buffers[source.buffer])
        return self.scale_tensors[key]

    def _scale_outputs(self, op, weight: int) -> list:
        """FULLY_CONNECTED x . q[r] -> * scale[r] -> + bias[r] (the bias moved out of the op)."""
        output = self.subgraph.tensors[op.outputs[0]]
        raw = self._tensor(output, _FLOAT32, f"{output.name.decode()}/unscaled")
        bias = op.inputs[2] if len(op.inputs) > 2 else -1
        final = op.outputs[0]
        op.outputs = [raw]
        if len(op.inputs) > 2:
            op.inputs[2] = -1
        if bias < 0:
            return [self._binary(_OPS.MUL, [raw, self._scales(weight, False)], final)]
        scaled = self._tensor(output, _FLOAT32, f"{output.name.decode()}/scaled")
        return [self._binary(_OPS.MUL, [raw, self._scales(weight, False)], scaled),
                self._binary(_OPS.ADD, [scaled, bias], final)]

    def _dequantize_rows(self, op) -> list:
        """GATHER of int8 rows (the matrix's one scale) -> DEQUANTIZE: a matrix that is only looked up."""
        output = self.subgraph.tensors[op.outputs[0]]
        rows = self._tensor(output, _INT8, f"{output.name.decode()}/int8",
                            quantization=_unit_scale(self.tensor_scales[self.subgraph.tensors[op.inputs[0]].buffer]))
        final = op.outputs[0]
        op.outputs = [rows]
        return [self._op(_OPS.DEQUANTIZE, [rows], [final])]

    def _scale_rows(self, op) -> list:
        """GATHER of int8 rows -> DEQUANTIZE -> * the same rows' scales (a second, float32 GATHER)."""
        weight, ids = op.inputs[0], op.inputs[1]
        output = self.subgraph.tensors[op.outputs[0]]
        final = op.outputs[0]
        rows = self._tensor(output, _INT8, f"{output.name.decode()}/int8", quantization=_unit_scale())
        integers = self._tensor(output, _FLOAT32, f"{output.name.decode()}/integers")
        row_scales = self._tensor(output, _FLOAT32, f"{output.name.decode()}/row_scales",
                                  shape=[*output.shape[:-1], 1])
        if output.shapeSignature is not None:  # dynamic dimensions (batch, sequence) stay dynamic
            self.subgraph.tensors[row_scales].shapeSignature = np.asarray([*output.shapeSignature[:-1], 1], np.int32)
        op.outputs = [rows]
        gather_options = schema.GatherOptionsT()
        return [self._op(_OPS.DEQUANTIZE, [rows], [integers]),
                self._op(_OPS.GATHER, [self._scales(weight, True), ids], [row_scales],
                         schema.BuiltinOptions.GatherOptions, gather_options),
                self._binary(_OPS.MUL, [integers, row_scales], final)]


def _halve_vectors(model) -> None:
    """Float32 vectors (``[n]`` or ``[n, 1]``, n >= MIN_ELEMENTS) read only by MUL, ADD or GATHER -> float16,
    each reader given a float32 copy made by a DEQUANTIZE (one per subgraph, before its first reader)."""
    readers_ok = {_OPS.MUL, _OPS.ADD, _OPS.GATHER}
    candidates: set[int] = set()
    refused: set[int] = set()
    for subgraph in model.subgraphs:
        for index, tensor in enumerate(subgraph.tensors):
            data = model.buffers[tensor.buffer].data if tensor.buffer else None
            shape = tuple(int(d) for d in tensor.shape) if tensor.shape is not None else ()
            if data is None or tensor.type != _FLOAT32 or not shape or shape[0] < MIN_ELEMENTS \
                    or int(np.prod(shape)) != shape[0]:
                continue
            candidates.add(tensor.buffer)
            for op in subgraph.operators:
                if index in op.inputs and (_builtin(model, op) not in readers_ok
                                           or (_builtin(model, op) == _OPS.GATHER and op.inputs[0] != index)):
                    refused.add(tensor.buffer)
            if index in subgraph.outputs:
                refused.add(tensor.buffer)
    halved = candidates - refused
    for buffer in halved:
        values = np.frombuffer(_buffer_bytes(model, buffer), np.float32)
        model.buffers[buffer].data = values.astype(np.float16).view(np.uint8)
    dequantize = _opcode_index(model, _OPS.DEQUANTIZE) if halved else None
    for subgraph in model.subgraphs:
        vectors = {i for i, t in enumerate(subgraph.tensors) if t.buffer in halved}
        copies: dict[int, int] = {}
        operators = []
        for op in subgraph.operators:
            for slot, read in enumerate(op.inputs):
                if read in vectors:
                    if read not in copies:
                        source = subgraph.tensors[read]
                        copy = schema.TensorT()
                        copy.shape, copy.shapeSignature, copy.hasRank = source.shape, source.shapeSignature, True
                        copy.type, copy.buffer, copy.name = _FLOAT32, 0, source.name + b"/float32"
                        subgraph.tensors.append(copy)
                        copies[read] = len(subgraph.tensors) - 1
                        dequantize_op = schema.OperatorT()
                        dequantize_op.opcodeIndex, dequantize_op.inputs = dequantize, [read]
                        dequantize_op.outputs = [copies[read]]
                        operators.append(dequantize_op)
                    op.inputs[slot] = copies[read]
            operators.append(op)
        for index in vectors:
            subgraph.tensors[index].type = schema.TensorType.FLOAT16
        subgraph.operators = operators


def _unit_scale(scale: float = 1.0):
    """Symmetric int8 with one scale; 1.0: read as the integers themselves, the row scales applied after."""
    params = schema.QuantizationParametersT()
    params.scale, params.zeroPoint, params.quantizedDimension = [float(scale)], [0], 0
    return params


def _drop_unused_buffers(model) -> None:
    """Empty the buffers no tensor reads any more (copies merged by ``_share_identical_buffers``)."""
    used = {tensor.buffer for subgraph in model.subgraphs for tensor in subgraph.tensors}
    used.update(entry.buffer for entry in model.metadata or [])
    for index, buffer in enumerate(model.buffers):
        if index not in used and buffer.data is not None:
            buffer.data = None


def _set_min_runtime_version(model, version: str) -> None:
    """The converter's ``min_runtime_version`` entry (16 bytes, NUL-padded) raised to what the int8 ops need."""
    for entry in model.metadata or []:
        if entry.name == b"min_runtime_version":
            model.buffers[entry.buffer].data = np.frombuffer(version.encode().ljust(16, b"\0"), np.uint8)
