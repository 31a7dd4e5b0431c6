"""Reading a nextword model file: format, embedded vocabulary and config, checksums.

No inference engine is involved: a file is identified by its content, its
metadata parsed and its checksum verified here, *before* any engine sees it,
because a damaged flatbuffer can crash tflite-runtime and a bit-flipped weight
loads silently in every engine.

    model = read_model_file("model.int8.tflite")
    model.tokenizer.encode("hello how")    # the vocabulary travels inside the file
    model.config.window, model.precision

Layout (format version 2):
- TFLite: the flatbuffer, then an appended zip archive (TFLite Metadata
  convention, readable with ``zipfile``) holding ``vocab.txt`` and
  ``nextword.json``; the JSON's ``checksum.sha256`` covers all three
  (``tflite_digest``): nothing the runtime reads can be edited unnoticed.
- ONNX: ``metadata_props`` ``nextword.vocab``, ``nextword.config`` and
  ``nextword.sha256``: the sha256 of the file's bytes with that digest's own
  64 characters replaced by ``0``s.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from nextword.config import ModelConfig
from nextword.errors import (
    ChecksumError,
    MetadataError,
    ModelFileError,
    SignatureError,
    TokenizerFileError,
    VocabMismatchError,
)
from nextword.fileio import read_file
from nextword.modelfile.containers import (
    onnx_digest,
    onnx_metadata_props,
    onnx_signature_start,
    tflite_digest,
    zip_start,
)
from nextword.modelfile.contract import (
    CONFIG_NAME,
    FLATBUFFER_ONLY_COVERS,
    ONNX_CONFIG_KEY,
    ONNX_DIGEST_KEY,
    ONNX_SIGNATURE_KEY,
    ONNX_VOCAB_KEY,
    SIGNATURE_NAME,
    TFLITE_CHECKSUM_COVERS,
    VOCAB_NAME,
    FormSpec,
    ModelMetadata,
)
from nextword.modelfile.signing import MAX_SIGNATURE_BYTES, Signature, verify
from nextword.modelfile.tflite_check import check_tflite
from nextword.tokenizer import Tokenizer


@dataclass(frozen=True)
class ModelFile:
    """A model file whose metadata parsed and whose checksum matched: safe to hand to an engine."""

    path: Path
    format: str  # "tflite" or "onnx"
    data: bytes
    metadata: ModelMetadata
    tokenizer: Tokenizer
    checksum: str  # verified
    #: The file's signature record, if it is signed (verified only when a trusted key was given).
    signature: Signature | None = None
    #: True when the signature was verified against a trusted key.
    trusted: bool = False

    @property
    def config(self) -> ModelConfig:
        return self.metadata.model

    @property
    def precision(self) -> str:
        return self.metadata.precision

    @property
    def forms(self) -> dict[str, FormSpec]:
        return self.metadata.forms


def detect_format(data: bytes) -> str | None:
    """"tflite" (flatbuffer identifier TFL3 at byte 4), "onnx" (protobuf starting with ir_version), or None."""
    if len(data) >= 8 and data[4:8] == b"TFL3":
        return "tflite"
    if data[:1] == b"\x08":  # field 1 (ir_version), varint: how every ONNX serializer starts
        return "onnx"
    return None


def read_model_file(path: str | Path, *, trust=None) -> ModelFile:
    """The checked model file at ``path``. ``trust``: a public key (PEM file, PEM bytes or key object):
    only a file signed with it is accepted (``nextword.modelfile.signing``)."""
    path = Path(path)
    data = read_file(path, ModelFileError, what="model file",
                     fix="give a .tflite or .onnx file from `nextword export`",
                     missing=f"model file {path} does not exist; check the path")
    fmt = detect_format(data)
    if fmt == "tflite":
        metadata, vocab_text, checksum, signature = _tflite_metadata(data, path)
    elif fmt == "onnx":
        metadata, vocab_text, checksum, signature = _onnx_metadata(data, path)
    elif path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        raise ModelFileError(f"{path} is a Keras model, not a device file; export it first: "
                             f"nextword export {path} --out DIR (with --tokenizer FILE)")
    else:
        raise ModelFileError(f"{path} is neither a TFLite nor an ONNX model (unrecognised content); "
                             "give a file written by `nextword export`")
    if trust is not None:
        verify(trust, signature, checksum, str(path))
    model = _assemble(path, fmt, data, metadata, vocab_text, checksum)
    return dataclasses.replace(model, signature=signature, trusted=trust is not None)


# ------------------------------------------------------------------- TFLite


def _tflite_metadata(data: bytes, path: Path) -> tuple[ModelMetadata, str, str, Signature | None]:
    start = zip_start(data)
    if start is None:
        raise MetadataError(f"{path} is a TFLite model without nextword metadata (no vocabulary inside): "
                            "it is truncated, or was not written by `nextword export`")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if not {CONFIG_NAME, VOCAB_NAME} <= names:
                raise MetadataError(f"{path} carries associated files {sorted(names)} but not nextword's "
                                    f"{CONFIG_NAME} and {VOCAB_NAME}; export it with `nextword export`")
            # Reading checks each member's CRC-32: damage inside the archive is caught here.
            config_bytes = _member(archive, CONFIG_NAME, MAX_CONFIG_BYTES, path)
            vocab_bytes = _member(archive, VOCAB_NAME, MAX_VOCAB_BYTES, path)
            signature_bytes = (_member(archive, SIGNATURE_NAME, MAX_SIGNATURE_BYTES, path)
                               if SIGNATURE_NAME in names else None)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, RuntimeError,
            NotImplementedError, zlib.error) as err:
        raise ChecksumError(f"{path}: embedded metadata archive is damaged ({err}); re-export or re-copy the file"
                            ) from None
    metadata = _parse_json(config_bytes, path, "tflite")
    vocab_text = _utf8(vocab_bytes, path)
    checksum = metadata.checksum
    if checksum is None:
        raise ChecksumError(f"{path} carries no checksum; re-export it with `nextword export`")
    if checksum.covers == FLATBUFFER_ONLY_COVERS:
        raise ChecksumError(f"{path} was written by nextword {metadata.nextword_version}, whose checksum does not "
                            "cover the vocabulary and config; export the model again (nextword export RUN --out DIR)")
    if checksum.covers != TFLITE_CHECKSUM_COVERS or not _is_digest(checksum.sha256):
        raise ChecksumError(f"{path}: checksum field is not a nextword sha256 of the whole file (covers "
                            f"{checksum.covers[:60]!r}); the file was edited, re-export it")
    expected = checksum.sha256
    actual = tflite_digest(data[:start], vocab_bytes, config_bytes, expected)
    if actual != expected:
        raise ChecksumError(f"{path}: model bytes do not match their sha256 (expected {expected[:12]}..., "
                            f"found {actual[:12]}...); the file is damaged or was edited, re-export or re-copy it")
    check_tflite(data[:start], path)  # the checksum can be recomputed by anyone: the structure is checked too
    signature = None if signature_bytes is None else Signature.from_bytes(signature_bytes, str(path))
    return metadata, vocab_text, actual, signature


def _is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


#: Bounds on the embedded members, checked while inflating (a small file must not inflate to gigabytes).
MAX_CONFIG_BYTES = 1 << 20
MAX_VOCAB_BYTES = 64 << 20


def _member(archive: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """One member's bytes: stored or deflated only, never encrypted, at most ``limit`` bytes inflated."""
    info = archive.getinfo(name)
    if info.flag_bits & 0x1:
        raise MetadataError(f"{path}: embedded {name} is encrypted; nextword files never are, re-export it")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise MetadataError(f"{path}: embedded {name} uses zip compression method {info.compress_type} "
                            "(nextword writes stored or deflated members only); re-export it")
    if info.file_size > limit:
        raise MetadataError(f"{path}: embedded {name} declares {info.file_size:,} bytes, more than the "
                            f"{limit:,} allowed; the file is not a nextword model, re-export it")
    with archive.open(info) as member:
        data = member.read(limit + 1)  # the declared size is not trusted: inflation stops past the bound
    if len(data) > limit:
        raise MetadataError(f"{path}: embedded {name} inflates past {limit:,} bytes; the file is not a nextword "
                            "model, re-export it")
    return data


# --------------------------------------------------------------------- ONNX


def _onnx_metadata(data: bytes, path: Path) -> tuple[ModelMetadata, str, str, Signature | None]:
    try:
        props = onnx_metadata_props(data)
        signed_end = onnx_signature_start(data) if ONNX_SIGNATURE_KEY in props else len(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ChecksumError(f"{path}: ONNX file is truncated or damaged ({err}); re-export or re-copy it") from None
    if ONNX_CONFIG_KEY not in props or ONNX_VOCAB_KEY not in props:
        raise MetadataError(f"{path} is an ONNX model without nextword metadata (no vocabulary inside); "
                            "export it with `nextword export`")
    if ONNX_DIGEST_KEY not in props:
        raise ChecksumError(f"{path} has no {ONNX_DIGEST_KEY} digest; re-export it with `nextword export`")
    if signed_end is None:
        raise SignatureError(f"{path}: its {ONNX_SIGNATURE_KEY} is not the file's last field; the file was edited "
                             "after it was signed, use the file as it was shipped")
    expected, start, end = props[ONNX_DIGEST_KEY]
    actual = onnx_digest(data[:signed_end], (start, end)) if end <= signed_end else ""
    if actual != expected:
        raise ChecksumError(f"{path}: model bytes do not match their sha256 (expected {expected[:12]}..., "
                            f"found {actual[:12]}...); the file is damaged, re-export or re-copy it")
    signature = None
    if ONNX_SIGNATURE_KEY in props:
        signature = Signature.from_bytes(props[ONNX_SIGNATURE_KEY][0].encode("utf-8"), str(path))
    return (_parse_json(props[ONNX_CONFIG_KEY][0].encode("utf-8"), path, "onnx"), props[ONNX_VOCAB_KEY][0], actual,
            signature)


# ------------------------------------------------------------------- common
def _parse_json(raw: bytes, path: Path, fmt: str) -> ModelMetadata:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MetadataError(f"{path}: embedded nextword config is not valid JSON ({err})") from None
    except (RecursionError, ValueError) as err:  # absurd nesting, a number with too many digits
        raise MetadataError(f"{path}: embedded nextword config is not usable JSON ({type(err).__name__})") from None
    try:
        return ModelMetadata.from_dict(data, fmt)
    except MetadataError as err:
        raise MetadataError(f"{path}: {err}") from None


def _utf8(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MetadataError(f"{path}: embedded vocabulary is not UTF-8 text") from None


def _assemble(path: Path, fmt: str, data: bytes, metadata: ModelMetadata, vocab_text: str,
              checksum: str) -> ModelFile:
    try:
        tokenizer = Tokenizer.from_text(vocab_text, metadata.tokenizer, source=str(path))
    except TokenizerFileError as err:
        message = str(err)
        raise VocabMismatchError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    if tokenizer.vocab_size != metadata.model.vocab_size:
        raise VocabMismatchError(
            f"{path}: vocabulary has {tokenizer.vocab_size} tokens but the model outputs {metadata.model.vocab_size} "
            "probabilities; the file's metadata does not belong to this model, re-export it"
        )
    declared = metadata.special_ids
    if (declared.pad, declared.unk, declared.eos) != (0, tokenizer.unk_id, tokenizer.eos_id):
        raise VocabMismatchError(f"{path}: special ids {declared} disagree with the vocabulary's (pad 0, unk "
                                 f"{tokenizer.unk_id}, eos {tokenizer.eos_id}); the metadata was edited, re-export it")
    return ModelFile(path, fmt, data, metadata, tokenizer, checksum)
