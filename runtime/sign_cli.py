"""``nextword sign MODEL... --key KEY.key``: sign model files that were exported unsigned (or re-sign them).

    nextword keygen --out keys/release
    nextword sign models/ptb/*.tflite models/ptb/*.onnx --key keys/release.key
    nextword predict models/ptb/model.int8.tflite "the" --trust keys/release.pub

The same signature ``nextword export --sign`` writes (``nextword.signing``: the file's checksum, signed with
Ed25519): each file is checked first (a damaged one is refused, never signed), signed, read back with the
key's public half, and only then replaces the original (a temporary file renamed: never half-written).
A signature already there is replaced. Needs the cryptography package (pip install "nextword[sign]").
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from nextword.contract import CONFIG_NAME, ONNX_DIGEST_KEY, ONNX_SIGNATURE_KEY, VOCAB_NAME
from nextword.fileio import atomic_write_bytes
from nextword.modelfile import (ONNX_METADATA_PROPS, onnx_signature_start, associated_files_zip, length_delimited,
                                onnx_metadata_props, read_model_file, zip_start)
from nextword.signing import sign_digest


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sign", help="sign exported model files with an Ed25519 key (in place)",
                              description="Sign .tflite/.onnx files written by `nextword export` with a private key "
                                          "from `nextword keygen`, as `export --sign` does; an app that trusts the "
                                          "public key (--trust, Predictor.load(trust=...)) then runs them.")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".tflite/.onnx files written by `nextword export`")
    p.add_argument("--key", required=True, metavar="KEY.key", help="the Ed25519 private key (PEM) to sign with")
    p.set_defaults(run=run)


def signed_tflite(data: bytes, private_key) -> bytes:
    """The file with a signature of its checksum as the associated files' third member (``nextword.sig``);
    the flatbuffer, vocabulary and config bytes are kept as they are, so the checksum still holds."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        vocab_text, config_text = archive.read(VOCAB_NAME).decode("utf-8"), archive.read(CONFIG_NAME).decode("utf-8")
    signature = sign_digest(private_key, json.loads(config_text)["checksum"]["sha256"])
    return data[:zip_start(data)] + associated_files_zip(vocab_text, config_text, signature.to_bytes())


def signed_onnx(data: bytes, private_key) -> bytes:
    """The file with a ``nextword.signature`` metadata_props entry as its last field (one already there is
    replaced): the checksum covers every byte before it."""
    start = onnx_signature_start(data)
    if start is not None:
        data = data[:start]
    record = sign_digest(private_key, onnx_metadata_props(data)[ONNX_DIGEST_KEY][0]).to_bytes()
    entry = length_delimited(1, ONNX_SIGNATURE_KEY.encode("utf-8")) + length_delimited(2, record)
    return data + length_delimited(ONNX_METADATA_PROPS, entry)


def sign_file(path: str | Path, private_key) -> Path:
    """Sign ``path`` in place; the signed bytes are verified with the key's public half before they replace it."""
    path = Path(path)
    model = read_model_file(path)  # a damaged or foreign file is refused here, never signed
    data = (signed_tflite if model.format == "tflite" else signed_onnx)(model.data, private_key)
    check = path.with_name(f".{path.name}.signing")
    try:
        atomic_write_bytes(check, data)
        read_model_file(check, trust=private_key.public_key())
        check.replace(path)  # (a rename: the original is whole until then)
    finally:
        check.unlink(missing_ok=True)
    return path


def run(args) -> int:
    from nextword.signing import load_private_key

    key = load_private_key(args.key)  # a bad key fails before any file is touched
    for model in args.models:
        print(f"signed {sign_file(model, key)}")
    return 0
