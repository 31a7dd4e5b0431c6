"""Signed model files (optional): an app can refuse every model it did not ship.

The checksum inside a file proves it is intact, not who wrote it: anyone can recompute it. A
signature can only be made with the private key, so an app that holds the public key accepts the
files signed with it and nothing else:

    nextword keygen --out keys/release                 # keys/release.key (private), keys/release.pub
    nextword export runs/ptb --out models/ptb --sign keys/release.key
    nextword predict models/ptb/model.int8.tflite "the" --trust keys/release.pub
    Predictor.load("model.int8.tflite", trust="keys/release.pub")

What is signed: the file's checksum (``nextword.sha256`` / ``checksum.sha256``), which covers every
byte the runtime reads, prefixed by ``SIGNED_PREFIX``. Ed25519 (RFC 8032) via ``cryptography``; keys
are PEM files (PKCS#8 private, SubjectPublicKeyInfo public), the same ones ``openssl genpkey -algorithm
ed25519`` writes. Where the signature lives is in docs/model-format.md. Unsigned files keep working
when no trust key is given; with one, an unsigned, tampered or foreign-signed file is a SignatureError.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from nextword.errors import MissingDependencyError, SignatureError, UsageError
from nextword.fileio import atomic_write_bytes

ALGORITHM = "ed25519"
#: Bound to the file's digest so that a signature means "this nextword model", nothing else.
SIGNED_PREFIX = b"nextword.model.signature.v1\n"
#: The most bytes a signature record may take in a file (it holds ~250).
MAX_SIGNATURE_BYTES = 4096


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingDependencyError('signing and verifying model files needs the cryptography package: '
                                     'pip install "nextword[sign]"') from None
    return serialization, ed25519


@dataclass(frozen=True)
class Signature:
    """A file's signature record: the signature of its digest and which public key made it."""

    signature: str  # 128 lowercase hex characters
    key_sha256: str  # sha256 of the raw 32-byte public key: names the key, verifies nothing

    def to_bytes(self) -> bytes:
        return json.dumps({"algorithm": ALGORITHM, "key_sha256": self.key_sha256, "signature": self.signature},
                          sort_keys=True).encode("ascii")

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> Signature:
        try:
            data = json.loads(raw.decode("ascii")) if len(raw) <= MAX_SIGNATURE_BYTES else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or data.get("algorithm") != ALGORITHM or not all(
                isinstance(data.get(k), str) for k in ("signature", "key_sha256")):
            raise SignatureError(f"{where}: its signature record is not a nextword {ALGORITHM} signature; "
                                 "the file was damaged or edited, use the file as it was shipped")
        return cls(data["signature"], data["key_sha256"])


def _raw_public(public_key) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private_key(path: str | Path):
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as err:
        raise UsageError(f"cannot read signing key {path}: {err.strerror}") from None
    except (ValueError, TypeError) as err:
        raise UsageError(f"{path} is not an unencrypted PEM private key ({err}); make one with "
                         "`nextword keygen --out NAME`") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"{path} is a {type(key).__name__}, not an Ed25519 key; make one with `nextword keygen`")
    return key


def load_public_key(trust):
    """A trusted public key from a PEM file path, PEM bytes or an Ed25519PublicKey object."""
    serialization, ed25519 = _crypto()
    if isinstance(trust, ed25519.Ed25519PublicKey):
        return trust
    try:
        raw = trust if isinstance(trust, bytes) else Path(trust).read_bytes()
        key = serialization.load_pem_public_key(raw)
    except OSError as err:
        raise UsageError(f"cannot read trusted key {trust}: {err.strerror}") from None
    except (ValueError, TypeError) as err:
        raise UsageError(f"{trust} is not a PEM public key ({err}); give the .pub file `nextword keygen` wrote") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(f"{trust} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def sign_digest(private_key, digest: str) -> Signature:
    signature = private_key.sign(SIGNED_PREFIX + digest.encode("ascii"))
    return Signature(signature.hex(), hashlib.sha256(_raw_public(private_key.public_key())).hexdigest())


def verify(trust, signature: Signature | None, digest: str, where: str) -> None:
    """Raise SignatureError unless ``signature`` is the trusted key's signature of ``digest``."""
    from cryptography.exceptions import InvalidSignature

    public_key = load_public_key(trust)
    if signature is None:
        raise SignatureError(f"{where} is not signed, and a trusted key was given: this app only runs the models "
                             "it shipped (export them with --sign)")
    if signature.key_sha256 != hashlib.sha256(_raw_public(public_key)).hexdigest():
        raise SignatureError(f"{where} was signed by another key (sha256 {signature.key_sha256[:12]}...), not the "
                             "trusted one: refused")
    try:
        public_key.verify(bytes.fromhex(signature.signature), SIGNED_PREFIX + digest.encode("ascii"))
    except (InvalidSignature, ValueError):
        raise SignatureError(f"{where}: its signature does not match its content; the file was edited after "
                             "it was signed, refused") from None


def generate(out: str | Path) -> tuple[Path, Path]:
    """A new key pair: ``OUT.key`` (private, mode 0600) and ``OUT.pub``; refuses to overwrite either."""
    serialization, ed25519 = _crypto()
    private_path, public_path = Path(f"{out}.key"), Path(f"{out}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} exists; a key is never overwritten (choose another --out)")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(private_path, private_pem, mode=0o600)  # never readable by others, not even briefly
    atomic_write_bytes(public_path, public_pem)
    return private_path, public_path


def signed_bytes(data: bytes, fmt: str, private_key) -> bytes:
    """A model file's bytes (``fmt`` "tflite" or "onnx") with a signature of its checksum in the container
    (docs/model-format.md says where); the bytes the checksum covers are unchanged. One already there is replaced."""
    from nextword.modelfile.containers import onnx_checksum, signed_onnx, signed_tflite, tflite_checksum

    if fmt == "tflite":
        return signed_tflite(data, sign_digest(private_key, tflite_checksum(data)).to_bytes())
    return signed_onnx(data, sign_digest(private_key, onnx_checksum(data)).to_bytes())


def sign_file(path: str | Path, private_key) -> Path:
    """Sign a model file in place (``nextword sign``): the file is read and checked first (a damaged or
    foreign file is refused, never signed), signed, the signed bytes read back with the key's public half,
    and only then do they replace the file (a temporary file renamed: never half-written)."""
    from nextword.modelfile.reader import read_model_file  # (the reader verifies signatures with this module)

    path = Path(path)
    model = read_model_file(path)
    data = signed_bytes(model.data, model.format, private_key)
    check = path.with_name(f".{path.name}.signing")
    try:
        atomic_write_bytes(check, data)
        read_model_file(check, trust=private_key.public_key())
        check.replace(path)  # (a rename: the original is whole until then)
    finally:
        check.unlink(missing_ok=True)
    return path
