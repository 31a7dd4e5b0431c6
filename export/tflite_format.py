"""TFLite files: conversion per precision, the embedded metadata, and the op list.

The file is the converted flatbuffer with a ``TFLITE_METADATA`` entry (a
``ModelMetadata`` flatbuffer, identifier ``M001``, naming the associated files)
and the associated files appended as an uncompressed zip: the TFLite Metadata
convention that Android's metadata extractor and MediaPipe read, and that
Python reads with ``zipfile``. Both interpreters load such a file unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import flatbuffers
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from nextword.modelfile.contract import (CONFIG_NAME, DIGEST_PLACEHOLDER, FORMS, PRECISIONS as _PRECISIONS, TFLITE_CHECKSUM_COVERS, VOCAB_NAME)
from nextword.modelfile.containers import associated_files_zip, tflite_digest, zip_start  # noqa: F401 (tests import it here)
from nextword.export.tflite_quantize import quantize_weights

PRECISIONS = _PRECISIONS["tflite"]
METADATA_NAME = "TFLITE_METADATA"
_VOCABULARY_TYPE = 5  # AssociatedFileType.VOCABULARY in metadata_schema.fbs (since 1.0.1)
_DESCRIPTIONS_TYPE = 1


def convert(saved_model_dir: Path, precision: str) -> bytes:
    """Every form's signature (``window``, ``step``, ``sequence``) in one flatbuffer, builtin ops only.

    int8 is written by ``tflite_quantize`` from the float32 flatbuffer (its docstring says why not by
    the converter).
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=list(FORMS["tflite"]))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # never Flex / SELECT_TF_OPS
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    flatbuffer = converter.convert()
    if precision == "int8":
        flatbuffer = quantize_weights(flatbuffer)
    return flatbuffer


def _model_metadata(description: str) -> bytes:
    """A minimal ``ModelMetadata`` (metadata_schema.fbs) listing the two associated files."""
    builder = flatbuffers.Builder(256)

    def associated(name: str, text: str, file_type: int) -> int:
        name_off, text_off = builder.CreateString(name), builder.CreateString(text)
        builder.StartObject(4)  # name, description, type, locale
        builder.PrependUOffsetTRelativeSlot(0, name_off, 0)
        builder.PrependUOffsetTRelativeSlot(1, text_off, 0)
        builder.PrependInt8Slot(2, file_type, 0)
        return builder.EndObject()

    files = [associated(VOCAB_NAME, "Vocabulary: one token per line, line number = token id.", _VOCABULARY_TYPE),
             associated(CONFIG_NAME, "nextword config: tokenizer, model shape, signatures, checksum.",
                        _DESCRIPTIONS_TYPE)]
    builder.StartVector(4, len(files), 4)
    for offset in reversed(files):
        builder.PrependUOffsetTRelative(offset)
    files_vector = builder.EndVector()
    name, text, parser = (builder.CreateString(s) for s in ("nextword", description, "1.0.1"))
    builder.StartObject(8)  # name, description, version, subgraph_metadata, author, license, files, parser
    builder.PrependUOffsetTRelativeSlot(0, name, 0)
    builder.PrependUOffsetTRelativeSlot(1, text, 0)
    builder.PrependUOffsetTRelativeSlot(6, files_vector, 0)
    builder.PrependUOffsetTRelativeSlot(7, parser, 0)
    builder.Finish(builder.EndObject(), file_identifier=b"M001")
    return bytes(builder.Output())


def with_metadata_entry(flatbuffer: bytes, description: str) -> bytes:
    """The flatbuffer with a ``TFLITE_METADATA`` entry pointing at a new buffer holding ``ModelMetadata``."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    buffer = schema.BufferT()
    buffer.data = list(_model_metadata(description))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME] + [entry]
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_associated_files(flatbuffer: bytes, vocab_text: str, config: dict) -> bytes:
    """The whole file: flatbuffer, then the zip of ``vocab.txt`` and ``nextword.json``, the config's
    ``checksum`` set to the sha256 of all three (``modelfile.tflite_digest``)."""
    def dump(digest: str) -> str:
        return json.dumps({**config, "checksum": {"sha256": digest, "covers": TFLITE_CHECKSUM_COVERS}},
                          indent=1, ensure_ascii=False)

    vocab = vocab_text.encode("utf-8")
    digest = tflite_digest(flatbuffer, vocab, dump(DIGEST_PLACEHOLDER).encode("utf-8"))
    return flatbuffer + associated_files_zip(vocab_text, dump(digest))



def builtin_ops(flatbuffer: bytes) -> list[str]:
    """Names of the operators a TFLite flatbuffer uses (custom ops as ``CUSTOM:name``)."""
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    ops = set()
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if names.get(builtin) == "CUSTOM":
            ops.add(f"CUSTOM:{code.CustomCode().decode()}")
        else:
            ops.add(names.get(builtin, f"UNKNOWN_{builtin}"))
    return sorted(ops)
