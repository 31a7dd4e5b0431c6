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
import hashlib
import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from nextword.config import ModelConfig
from nextword.contract import (CONFIG_NAME, DIGEST_PLACEHOLDER, FLATBUFFER_ONLY_COVERS, ONNX_CONFIG_KEY,
                               ONNX_DIGEST_KEY, ONNX_SIGNATURE_KEY, ONNX_VOCAB_KEY, SIGNATURE_NAME,
                               TFLITE_CHECKSUM_COVERS, VOCAB_NAME, FormSpec, ModelMetadata)
from nextword.errors import (ChecksumError, MetadataError, ModelFileError, SignatureError, TokenizerFileError,
                             VocabMismatchError)
from nextword.signing import MAX_SIGNATURE_BYTES, Signature, verify
from nextword.tflite_check import check_tflite
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
    only a file signed with it is accepted (``nextword.signing``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory; give a .tflite or .onnx file from `nextword export`") from None
    except OSError as err:
        raise ModelFileError(f"cannot read model file {path}: {err.strerror}") from None
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
def associated_files_zip(vocab_text: str, config_json: str, signature: bytes | None = None) -> bytes:
    """A TFLite file's associated files (vocabulary, config, signature), stored (uncompressed) so a device can
    map them straight out of the model, with fixed dates: the same model gives the same bytes."""
    out = io.BytesIO()
    members = [(VOCAB_NAME, vocab_text.encode("utf-8")), (CONFIG_NAME, config_json.encode("utf-8"))]
    if signature is not None:
        members.append((SIGNATURE_NAME, signature))
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def zip_start(data: bytes) -> int | None:
    """Offset where an appended zip archive begins (the flatbuffer's length), from its end record."""
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if eocd < 0 or eocd + 22 > len(data):
        return None
    size_cd, offset_cd = struct.unpack_from("<II", data, eocd + 12)
    start = eocd - size_cd - offset_cd
    return start if 0 < start <= eocd else None


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


def tflite_digest(flatbuffer: bytes, vocab: bytes, config: bytes, digest: str | None = None) -> str:
    """The sha256 a TFLite file carries: flatbuffer, ``vocab.txt`` and ``nextword.json``, each preceded by
    its length (8 bytes, little-endian, so no byte can move from one part to the next), with every
    occurrence of ``digest`` in the config read as the 64 zeros it was computed with."""
    if digest:
        config = config.replace(digest.encode("ascii"), DIGEST_PLACEHOLDER.encode("ascii"))
    hasher = hashlib.sha256()
    for part in (flatbuffer, vocab, config):
        hasher.update(len(part).to_bytes(8, "little"))
        hasher.update(part)
    return hasher.hexdigest()


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
def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """One protobuf field of wire type 2 (bytes, string, message)."""
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def _fields(data: bytes, start: int = 0, end: int | None = None):
    """Top-level protobuf fields: (number, wire_type, value_start, value_end) for each."""
    pos, end = start, len(data) if end is None else end
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, new = _varint(data, pos)
        elif wire == 1:
            new = pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            new = pos + length
        elif wire == 5:
            new = pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if new > end:
            raise ValueError("field runs past the end of the file")
        yield number, wire, pos, new
        pos = new


ONNX_METADATA_PROPS = 14


def onnx_metadata_props(data: bytes) -> dict[str, tuple[str, int, int]]:
    """``metadata_props`` of a serialized ModelProto: key -> (value, value_start, value_end)."""
    props: dict[str, tuple[str, int, int]] = {}
    for number, wire, start, end in _fields(data):
        if number != ONNX_METADATA_PROPS or wire != 2:
            continue
        key = value = None
        span = (0, 0)
        for sub_number, sub_wire, sub_start, sub_end in _fields(data, start, end):
            if sub_number == 1 and sub_wire == 2:
                key = data[sub_start:sub_end].decode("utf-8")
            elif sub_number == 2 and sub_wire == 2:
                value, span = data[sub_start:sub_end].decode("utf-8"), (sub_start, sub_end)
        if key is not None and value is not None:
            props[key] = (value, *span)
    return props


def onnx_digest(data: bytes, span: tuple[int, int]) -> str:
    """sha256 of the file with the digest's own value blanked to the placeholder."""
    start, end = span
    return hashlib.sha256(data[:start] + DIGEST_PLACEHOLDER.encode() + data[end:]).hexdigest()


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


def onnx_signature_start(data: bytes) -> int | None:
    """Where the signature's metadata_props entry begins, if it is the file's last top-level field (else None):
    the checksum covers every byte before it."""
    previous_end = last_start = 0
    last = None
    for number, wire, start, end in _fields(data):
        last_start, last, previous_end = previous_end, (number, wire, start, end), end
    if last is None or last[:2] != (ONNX_METADATA_PROPS, 2):
        return None
    for sub_number, sub_wire, sub_start, sub_end in _fields(data, last[2], last[3]):
        if sub_number == 1 and sub_wire == 2:
            return last_start if data[sub_start:sub_end] == ONNX_SIGNATURE_KEY.encode() else None
    return None


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
