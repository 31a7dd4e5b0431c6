"""A structural check of a TFLite flatbuffer before any engine parses it.

tflite-runtime 2.14 (the engine of Raspberry Pi OS Bookworm's Python) builds an interpreter from a
flatbuffer without verifying it: an offset or a vector length that points outside the file, a
tensor naming a buffer that does not exist, an operator naming a tensor that does not exist, all end
in SIGSEGV, which no Python code can catch. The checksum stops accidents, not a file that was edited
and re-signed, so the runtime checks the structure itself, with nothing but the standard library:

- every table, vtable, vector and string the interpreter reads lies inside the flatbuffer, aligned
  (what ``flatbuffers::Verifier`` checks), following ``schema.fbs`` for the tables below;
- every index is in range: operator codes, tensors, buffers, subgraphs (control-flow options too),
  signature tensors; tensor types are fixed-size numeric ones and constant data fits its shape;
- what nextword never writes is refused: custom and unknown operators, sparse tensors, external
  buffers, quantization details other than scale/zero point, StableHLO options.

    check_tflite(flatbuffer, "model.tflite")   # raises ModelFileError naming the first problem
"""

from __future__ import annotations

import struct

from nextword.errors import ModelFileError

#: Flatbuffer field kinds: scalar struct formats, or what an offset field points at.
_SCALARS = {"u8": "<B", "i8": "<b", "bool": "<B", "u16": "<H", "i32": "<i", "u32": "<I", "i64": "<q",
            "u64": "<Q", "f32": "<f"}

#: The tables of schema.fbs that an interpreter reads, as {field index: (name, kind)}. Kinds: a scalar,
#: "str", "vec:<scalar>", "vec:str", "vec:<Table>", "<Table>", or "union" (the options, checked apart).
_TABLES: dict[str, dict[int, tuple[str, str]]] = {
    "Model": {0: ("version", "u32"), 1: ("operator_codes", "vec:OperatorCode"), 2: ("subgraphs", "vec:SubGraph"),
              3: ("description", "str"), 4: ("buffers", "vec:Buffer"), 5: ("metadata_buffer", "vec:i32"),
              6: ("metadata", "vec:Metadata"), 7: ("signature_defs", "vec:SignatureDef")},
    "OperatorCode": {0: ("deprecated_builtin_code", "i8"), 1: ("custom_code", "str"), 2: ("version", "i32"),
                     3: ("builtin_code", "i32")},
    "SubGraph": {0: ("tensors", "vec:Tensor"), 1: ("inputs", "vec:i32"), 2: ("outputs", "vec:i32"),
                 3: ("operators", "vec:Operator"), 4: ("name", "str"), 5: ("debug_metadata_index", "i32")},
    "Tensor": {0: ("shape", "vec:i32"), 1: ("type", "i8"), 2: ("buffer", "u32"), 3: ("name", "str"),
               4: ("quantization", "QuantizationParameters"), 5: ("is_variable", "bool"),
               6: ("sparsity", "unsupported"), 7: ("shape_signature", "vec:i32"), 8: ("has_rank", "bool"),
               9: ("variant_tensors", "unsupported")},
    "QuantizationParameters": {0: ("min", "vec:f32"), 1: ("max", "vec:f32"), 2: ("scale", "vec:f32"),
                               3: ("zero_point", "vec:i64"), 4: ("details_type", "u8"), 5: ("details", "unsupported"),
                               6: ("quantized_dimension", "i32")},
    "Operator": {0: ("opcode_index", "u32"), 1: ("inputs", "vec:i32"), 2: ("outputs", "vec:i32"),
                 3: ("builtin_options_type", "u8"), 4: ("builtin_options", "union"), 5: ("custom_options", "vec:u8"),
                 6: ("custom_options_format", "i8"), 7: ("mutating_variable_inputs", "vec:bool"),
                 8: ("intermediates", "vec:i32"), 9: ("large_custom_options_offset", "u64"),
                 10: ("large_custom_options_size", "u64"), 11: ("builtin_options_2_type", "u8"),
                 12: ("builtin_options_2", "unsupported"), 13: ("debug_metadata_index", "i32")},
    "Buffer": {0: ("data", "vec:u8"), 1: ("offset", "u64"), 2: ("size", "u64")},
    "Metadata": {0: ("name", "str"), 1: ("buffer", "u32")},
    "SignatureDef": {0: ("inputs", "vec:TensorMap"), 1: ("outputs", "vec:TensorMap"), 2: ("signature_key", "str"),
                     4: ("subgraph_index", "u32")},
    "TensorMap": {0: ("name", "str"), 1: ("tensor_index", "u32")},
}

#: Builtin options (the ``builtin_options`` union) with fields beyond scalars or holding indices:
#: union type -> {field: (name, kind)}. Every other type is checked as a table of scalars.
_OPTIONS: dict[int, dict[int, tuple[str, str]]] = {
    17: {0: ("new_shape", "vec:i32")},                                            # ReshapeOptions
    30: {0: ("squeeze_dims", "vec:i32")},                                         # SqueezeOptions
    92: {0: ("then_subgraph_index", "i32"), 1: ("else_subgraph_index", "i32")},   # IfOptions
    93: {0: ("cond_subgraph_index", "i32"), 1: ("body_subgraph_index", "i32")},   # WhileOptions
    103: {0: ("init_subgraph_index", "i32")},                                     # CallOnceOptions
}
_SUBGRAPH_FIELDS = ("then_subgraph_index", "else_subgraph_index", "cond_subgraph_index", "body_subgraph_index",
                    "init_subgraph_index")
_MAX_OPTIONS_TYPE = 126
_MAX_BUILTIN_CODE = 209
_CUSTOM = 32
#: TensorType -> bytes per element: the fixed-size numeric types (no strings, resources, variants, int4).
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 15: 4, 16: 2, 18: 2}
#: No tensor of a nextword model comes near this (the largest, a 30k x 512 float matrix, is 61 MB).
_MAX_TENSOR_BYTES = 1 << 31


class _Invalid(Exception):
    """A structural problem; turned into one ModelFileError by ``check_tflite``."""


class _Reader:
    """Bounds-checked reads of one flatbuffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.budget = 1_000_000  # tables and strings visited: a crafted file cannot make the check slow

    def scalar(self, at: int, kind: str):
        fmt = _SCALARS[kind]
        width = struct.calcsize(fmt)
        if at < 0 or at + width > self.size:
            raise _Invalid(f"a {kind} at byte {at} lies outside the flatbuffer")
        return struct.unpack_from(fmt, self.data, at)[0]

    def target(self, at: int) -> int:
        """Where the uoffset stored at ``at`` points."""
        if at % 4:
            raise _Invalid(f"an offset at byte {at} is not aligned")
        offset = self.scalar(at, "u32")
        where = at + offset
        if offset == 0 or where >= self.size:
            raise _Invalid(f"an offset at byte {at} points outside the flatbuffer ({where})")
        return where

    def vector(self, at: int, element_bytes: int) -> tuple[int, int]:
        """(first element's position, length) of the vector at ``at``, every element inside the buffer."""
        if at % 4:
            raise _Invalid(f"a vector at byte {at} is not aligned")
        length = self.scalar(at, "u32")
        start = at + 4
        if start + length * element_bytes > self.size:
            raise _Invalid(f"a vector at byte {at} of {length:,} elements runs past the flatbuffer")
        return start, length

    def string(self, at: int) -> bytes:
        start, length = self.vector(at, 1)
        if start + length >= self.size or self.data[start + length] != 0:
            raise _Invalid(f"a string at byte {at} is not terminated inside the flatbuffer")
        return self.data[start:start + length]

    def spend(self, amount: int) -> None:
        self.budget -= amount
        if self.budget < 0:
            raise _Invalid("more tables and vector elements than any model has")

    def table(self, at: int, schema: dict[int, tuple[str, str]]) -> dict:
        """The table at ``at``: its vtable and every field in bounds; fields by name (absent: missing)."""
        self.spend(1)
        if at % 4:
            raise _Invalid(f"a table at byte {at} is not aligned")
        vtable = at - self.scalar(at, "i32")
        if vtable % 2 or vtable < 0:
            raise _Invalid(f"the table at byte {at} has its vtable outside the flatbuffer")
        vtable_size, table_size = self.scalar(vtable, "u16"), self.scalar(vtable + 2, "u16")
        if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > self.size:
            raise _Invalid(f"the vtable at byte {vtable} has an impossible size {vtable_size}")
        if table_size < 4 or at + table_size > self.size:
            raise _Invalid(f"the table at byte {at} runs past the flatbuffer")
        fields = {}
        for index in range((vtable_size - 4) // 2):
            field_offset = self.scalar(vtable + 4 + 2 * index, "u16")
            if not field_offset:
                continue
            name, kind = schema.get(index, (None, None))
            width = struct.calcsize(_SCALARS[kind]) if kind in _SCALARS else 4 if kind else 1
            if field_offset + width > table_size:
                raise _Invalid(f"field {index} of the table at byte {at} lies outside the table")
            if name is None:
                continue  # a field this schema does not know: newer writers add them; no reader follows it
            fields[name] = self._field(at + field_offset, kind, name)
        return fields

    def _field(self, at: int, kind: str, name: str):
        if kind in _SCALARS:
            return self.scalar(at, kind)
        if kind == "unsupported":
            raise _Invalid(f"it uses {name}, which nextword never writes")
        if kind == "union":
            return self.target(at)  # checked by the caller, which knows the union's type
        where = self.target(at)
        if kind == "str":
            return self.string(where)
        if kind.startswith("vec:"):
            element = kind[4:]
            if element in _SCALARS:
                width = struct.calcsize(_SCALARS[element])
                start, length = self.vector(where, width)
                return list(struct.unpack_from(f"<{length}{_SCALARS[element][1]}", self.data, start)) \
                    if element != "u8" else (start, length)
            start, length = self.vector(where, 4)
            self.spend(length)  # each element is followed: tables and strings
            if element == "str":
                return [self.string(self.target(start + 4 * i)) for i in range(length)]
            return [self.table(self.target(start + 4 * i), _TABLES[element]) for i in range(length)]
        return self.table(where, _TABLES[kind])


def check_tflite(flatbuffer: bytes, path) -> None:
    """Refuse, with one ModelFileError, a flatbuffer an interpreter could not read safely."""
    try:
        _check(_Reader(flatbuffer))
    except _Invalid as err:
        raise ModelFileError(f"{path}: the TFLite flatbuffer is malformed ({err}); the file was damaged or edited "
                             "after export, export it again") from None


def _check(reader: _Reader) -> None:
    if reader.size < 8 or reader.data[4:8] != b"TFL3":
        raise _Invalid("no TFL3 identifier")
    model = reader.table(reader.target(0), _TABLES["Model"])
    buffers = model.get("buffers", [])
    codes = model.get("operator_codes", [])
    subgraphs = model.get("subgraphs", [])
    if not subgraphs:
        raise _Invalid("it has no subgraph")
    for index, code in enumerate(codes):
        builtin = max(code.get("builtin_code", 0), code.get("deprecated_builtin_code", 0))
        if builtin == _CUSTOM or "custom_code" in code or not 0 <= builtin <= _MAX_BUILTIN_CODE:
            raise _Invalid(f"operator code {index} is {builtin}, not a builtin operator nextword writes")
    for index, buffer in enumerate(buffers):
        if buffer.get("offset", 0) or buffer.get("size", 0):
            raise _Invalid(f"buffer {index} lies outside the flatbuffer (offset/size), which nextword never writes")
    for number, graph in enumerate(subgraphs):
        _check_subgraph(reader, number, graph, len(subgraphs), len(codes), buffers)
    for entry in model.get("metadata", []):
        if not entry.get("buffer", 0) < len(buffers):
            raise _Invalid(f"metadata {entry.get('name', b'')!r} names buffer {entry.get('buffer')} of {len(buffers)}")
    for signature in model.get("signature_defs", []):
        graph_index = signature.get("subgraph_index", 0)
        if not graph_index < len(subgraphs):
            raise _Invalid(f"signature {signature.get('signature_key', b'')!r} names subgraph {graph_index}")
        tensors = len(subgraphs[graph_index].get("tensors", []))
        for side in ("inputs", "outputs"):
            for item in signature.get(side, []):
                if not item.get("tensor_index", 0) < tensors:
                    raise _Invalid(f"signature {signature.get('signature_key', b'')!r} names tensor "
                                   f"{item.get('tensor_index')} of {tensors}")


def _check_subgraph(reader: _Reader, number: int, graph: dict, n_subgraphs: int, n_codes: int,
                    buffers: list[dict]) -> None:
    tensors = graph.get("tensors", [])
    where = f"subgraph {number}"

    def tensor_index(value: int, what: str, optional: bool = True) -> None:
        if not (-1 if optional else 0) <= value < len(tensors):
            raise _Invalid(f"{where}: {what} names tensor {value} of {len(tensors)}")

    for index, tensor in enumerate(tensors):
        _check_tensor(reader, f"{where} tensor {index}", tensor, buffers)
    for value in graph.get("inputs", []) + graph.get("outputs", []):
        tensor_index(value, "an input or output", optional=False)
    # Data flow: operators run in order, each reading what exists by then (an input of the subgraph, a
    # constant, a variable, or an earlier operator's output); tflite-runtime dereferences the rest.
    ready = set(graph.get("inputs", []))
    ready.update(i for i, t in enumerate(tensors) if t.get("is_variable") or _has_data(buffers, t.get("buffer", 0)))
    for index, operator in enumerate(graph.get("operators", [])):
        what = f"operator {index}"
        if not operator.get("opcode_index", 0) < n_codes:
            raise _Invalid(f"{where}: {what} names operator code {operator.get('opcode_index')} of {n_codes}")
        for value in operator.get("inputs", []) + operator.get("intermediates", []):
            tensor_index(value, what)
        for value in operator.get("outputs", []):
            tensor_index(value, what, optional=False)
        unset = [value for value in operator.get("inputs", []) if value != -1 and value not in ready]
        if unset:
            raise _Invalid(f"{where}: {what} reads tensor {unset[0]} before any operator writes it")
        ready.update(operator.get("outputs", []))
        ready.update(operator.get("intermediates", []))
        if operator.get("builtin_options_2_type", 0) or operator.get("large_custom_options_size", 0) \
                or operator.get("large_custom_options_offset", 0):
            raise _Invalid(f"{where}: {what} has options nextword never writes")
        kind = operator.get("builtin_options_type", 0)
        if not 0 <= kind <= _MAX_OPTIONS_TYPE:
            raise _Invalid(f"{where}: {what} has options of unknown type {kind}")
        if "builtin_options" in operator and kind:
            options = reader.table(operator["builtin_options"], _OPTIONS.get(kind, {}))
            for field in _SUBGRAPH_FIELDS:
                if field in options and not 0 <= options[field] < n_subgraphs:
                    raise _Invalid(f"{where}: {what}'s {field} is {options[field]} of {n_subgraphs} subgraphs")
    unset = [value for value in graph.get("outputs", []) if value not in ready]
    if unset:
        raise _Invalid(f"{where}: its output tensor {unset[0]} is never written")


def _has_data(buffers: list[dict], index: int) -> bool:
    data = buffers[index].get("data") if 0 < index < len(buffers) else None
    return data is not None and data[1] > 0


def _check_tensor(reader: _Reader, where: str, tensor: dict, buffers: list[dict]) -> None:
    kind = tensor.get("type", 0)
    if kind not in _TYPE_BYTES:
        raise _Invalid(f"{where} has type {kind}, not a numeric type nextword writes")
    shape = tensor.get("shape", [])
    if any(d < 0 for d in shape) or any(d < -1 for d in tensor.get("shape_signature", [])):
        raise _Invalid(f"{where} has a negative dimension {shape}")
    elements = 1
    for dim in shape:
        elements *= dim
        if elements * _TYPE_BYTES[kind] > _MAX_TENSOR_BYTES:
            raise _Invalid(f"{where} declares shape {shape[:8]}, larger than any model's tensor")
    buffer = tensor.get("buffer", 0)
    if not buffer < len(buffers):
        raise _Invalid(f"{where} names buffer {buffer} of {len(buffers)}")
    data = buffers[buffer].get("data")
    if buffer and data is not None and data[1] and data[1] != elements * _TYPE_BYTES[kind]:
        raise _Invalid(f"{where} has {data[1]:,} bytes of data for shape {shape} ({elements * _TYPE_BYTES[kind]:,})")
    quantization = tensor.get("quantization")
    if quantization:
        scales, zeros = quantization.get("scale", []), quantization.get("zero_point", [])
        if quantization.get("details_type", 0):
            raise _Invalid(f"{where} uses custom quantization details, which nextword never writes")
        if zeros and len(zeros) != len(scales):
            raise _Invalid(f"{where} has {len(scales)} scales but {len(zeros)} zero points")
        axis = quantization.get("quantized_dimension", 0)
        if len(scales) > 1 and not (0 <= axis < len(shape) and shape[axis] == len(scales)):
            raise _Invalid(f"{where} has {len(scales)} scales for dimension {axis} of shape {shape}")
