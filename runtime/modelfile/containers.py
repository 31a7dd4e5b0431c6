"""The two containers a model file comes in, byte for byte: a TFLite flatbuffer with an appended zip of
associated files, and an ONNX ModelProto's ``metadata_props`` read as raw protobuf fields (no onnx package on
a device). Reading, digesting and signing the container all go through these.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile

from nextword.modelfile.contract import (
    CONFIG_NAME,
    DIGEST_PLACEHOLDER,
    ONNX_DIGEST_KEY,
    ONNX_SIGNATURE_KEY,
    SIGNATURE_NAME,
    VOCAB_NAME,
)


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


def signed_tflite(data: bytes, signature: bytes) -> bytes:
    """The file with ``signature`` as the associated files' third member (``nextword.sig``); the flatbuffer,
    vocabulary and config bytes are kept as they are, so the checksum still holds."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        vocab_text, config_text = archive.read(VOCAB_NAME).decode("utf-8"), archive.read(CONFIG_NAME).decode("utf-8")
    return data[:zip_start(data)] + associated_files_zip(vocab_text, config_text, signature)


def tflite_checksum(data: bytes) -> str:
    """The checksum a TFLite file's config carries (what a signature signs)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read(CONFIG_NAME).decode("utf-8"))["checksum"]["sha256"]


def signed_onnx(data: bytes, signature: bytes) -> bytes:
    """The file with a ``nextword.signature`` metadata_props entry as its last field (one already there is
    replaced): the checksum covers every byte before it."""
    start = onnx_signature_start(data)
    if start is not None:
        data = data[:start]
    entry = length_delimited(1, ONNX_SIGNATURE_KEY.encode("utf-8")) + length_delimited(2, signature)
    return data + length_delimited(ONNX_METADATA_PROPS, entry)


def onnx_checksum(data: bytes) -> str:
    """The checksum an ONNX file carries (what a signature signs)."""
    return onnx_metadata_props(data)[ONNX_DIGEST_KEY][0]
