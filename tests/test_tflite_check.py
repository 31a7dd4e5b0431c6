"""The structural check of TFLite flatbuffers (nextword.modelfile.tflite_check): one test per rule.

Each damage is made the way an attacker would: through the schema (a valid flatbuffer that says
something impossible) or on the bytes, and always re-signed, so that the checksum lets it through and
only the structural check stands between the file and tflite-runtime's SIGSEGV.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

pytest.importorskip("tensorflow")

import flatbuffers  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema  # noqa: E402

from nextword.errors import ModelFileError  # noqa: E402
from nextword.export.tflite_format import with_associated_files  # noqa: E402
from nextword.modelfile.reader import read_model_file  # noqa: E402
from nextword.modelfile.containers import zip_start
from nextword.modelfile.tflite_check import check_tflite  # noqa: E402


@pytest.fixture(scope="module")
def original(exported):
    _, models, _ = exported
    data = (models / "model.int8.tflite").read_bytes()
    return data


def _parts(data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        vocab, config = archive.read("vocab.txt").decode(), json.loads(archive.read("nextword.json"))
    return data[:zip_start(data)], vocab, config


def _edit(data: bytes, change) -> bytes:
    """The flatbuffer unpacked, changed by ``change(model)``, packed again; the file re-signed."""
    flatbuffer, vocab, config = _parts(data)
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    change(model)
    builder = flatbuffers.Builder(len(flatbuffer) + (1 << 20))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return with_associated_files(bytes(builder.Output()), vocab, config)


def _refused(tmp_path, data: bytes, match: str) -> None:
    path = tmp_path / "edited.tflite"
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match=match) as info:
        read_model_file(path)
    assert "\n" not in str(info.value) and "export it again" in str(info.value)


def test_every_exported_flatbuffer_passes(exported):
    _, models, _ = exported
    for path in sorted(models.glob("*.tflite")):
        data = path.read_bytes()
        check_tflite(data[:zip_start(data)], path)


def test_a_large_model_passes(original):
    """Buffers of megabytes are bounds-checked, not walked byte by byte."""
    def add_big_buffer(model):
        buffer = schema.BufferT()
        buffer.data = bytes(3_000_000)
        model.buffers.append(buffer)

    edited = _edit(original, add_big_buffer)
    check_tflite(edited[:zip_start(edited)], "big.tflite")


@pytest.mark.parametrize("rule, change, match", [
    ("tensor's buffer", lambda m: setattr(m.subgraphs[0].tensors[0], "buffer", len(m.buffers) + 5), "names buffer"),
    ("operator code", lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 999), "operator code"),
    ("operator's tensor", lambda m: setattr(m.subgraphs[0].operators[0], "inputs", [10_000]), "names tensor"),
    ("subgraph output", lambda m: setattr(m.subgraphs[0], "outputs", [10_000]), "names tensor"),
    ("signature tensor", lambda m: setattr(m.signatureDefs[0].inputs[0], "tensorIndex", 10_000), "names tensor"),
    ("signature subgraph", lambda m: setattr(m.signatureDefs[0], "subgraphIndex", 99), "names subgraph"),
    ("custom operator", lambda m: _make_custom(m.operatorCodes[0]), "not a builtin"),
    ("tensor type", lambda m: setattr(m.subgraphs[0].tensors[0], "type", 5), "type 5"),
    ("negative dimension", lambda m: setattr(m.subgraphs[0].tensors[0], "shape", [-3, 4]), "negative"),
    ("constant data size", lambda m: _shrink_constant(m), "bytes of data"),
    ("metadata buffer", lambda m: setattr(m.metadata[0], "buffer", 10_000), "names buffer"),
    # A while body whose operators were zeroed away (found by the fuzz run: SIGSEGV in tflite-runtime 2.14).
    ("data flow", lambda m: setattr(m.subgraphs[-1], "operators", []), "never written"),
    ("operator order", lambda m: m.subgraphs[0].operators.reverse(), "before any operator writes it"),
])
def test_an_impossible_index_or_type_is_refused(original, tmp_path, rule, change, match):
    _refused(tmp_path, _edit(original, change), match)


def _make_custom(code) -> None:
    code.builtinCode = code.deprecatedBuiltinCode = 32  # CUSTOM: the interpreter reads max() of the two
    code.customCode = "Evil"


def _shrink_constant(model) -> None:
    for tensor in model.subgraphs[0].tensors:
        buffer = model.buffers[tensor.buffer]
        if tensor.buffer and buffer.data is not None and len(buffer.data) > 8:
            buffer.data = buffer.data[:-4]
            return
    raise AssertionError("no constant tensor")


def test_control_flow_subgraph_indices_are_checked(original, tmp_path):
    def bad_while(model):
        for graph in model.subgraphs:
            for op in graph.operators:
                if op.builtinOptionsType == schema.BuiltinOptions.WhileOptions:
                    op.builtinOptions.bodySubgraphIndex = 77
                    return
        raise AssertionError("no WHILE operator")

    _refused(tmp_path, _edit(original, bad_while), "body_subgraph_index")


@pytest.mark.parametrize("damage", ["offset", "vector", "vtable", "truncated"])
def test_offsets_and_lengths_outside_the_flatbuffer_are_refused(original, tmp_path, damage):
    flatbuffer, vocab, config = _parts(original)
    raw = bytearray(flatbuffer)
    root = int.from_bytes(raw[0:4], "little")
    if damage == "offset":
        raw[0:4] = (len(raw) + 100).to_bytes(4, "little")  # the root table past the end
    elif damage == "vector":
        vtable = root - int.from_bytes(raw[root:root + 4], "little", signed=True)
        buffers_field = int.from_bytes(raw[vtable + 4 + 2 * 4:vtable + 6 + 2 * 4], "little")  # Model.buffers
        at = root + buffers_field
        vector = at + int.from_bytes(raw[at:at + 4], "little")
        raw[vector:vector + 4] = (0x7FFFFFFF).to_bytes(4, "little")  # a length far past the end
    elif damage == "vtable":
        raw[root:root + 4] = (-len(raw)).to_bytes(4, "little", signed=True)  # vtable after the end
    else:
        raw = raw[:len(raw) // 2]
    _refused(tmp_path, with_associated_files(bytes(raw), vocab, config), "malformed")
