"""Signed model files: export --sign, Predictor.load(trust=...), --trust: valid, tampered, wrong key, no key."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import zipfile

import pytest

pytest.importorskip("cryptography")
pytest.importorskip("tensorflow")

from nextword import Predictor, cli  # noqa: E402
from nextword.modelfile.contract import CONFIG_NAME, ONNX_DIGEST_KEY, ONNX_VOCAB_KEY, SIGNATURE_NAME, VOCAB_NAME  # noqa: E402
from nextword.errors import SignatureError, UsageError, VocabMismatchError  # noqa: E402
from nextword.export import exporter, tflite_format  # noqa: E402
from nextword.modelfile.reader import read_model_file  # noqa: E402
from nextword.modelfile.containers import onnx_digest, onnx_metadata_props, onnx_signature_start, zip_start  # noqa: E402
from nextword.modelfile.signing import generate, load_private_key, signed_bytes  # noqa: E402

from conftest import run_cli  # noqa: E402

NAMES = ["model.int8.tflite", "model.onnx"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    return {name: generate(root / name) for name in ("release", "other")}


@pytest.fixture(scope="module")
def signed(exported, keys, tmp_path_factory):
    """Every exported file, signed with the release key (as export --sign writes them)."""
    _, models, _ = exported
    out = tmp_path_factory.mktemp("signed")
    key = load_private_key(keys["release"][0])
    for name in NAMES:
        fmt = "tflite" if name.endswith(".tflite") else "onnx"
        (out / name).write_bytes(signed_bytes((models / name).read_bytes(), fmt, key))
    return out


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    private, public = generate(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in public.read_bytes() and b"PRIVATE KEY" in private.read_bytes()
    with pytest.raises(UsageError, match="never overwritten"):
        generate(tmp_path / "k")


@pytest.mark.parametrize("name", NAMES)
def test_a_signed_file_loads_with_its_key_and_without_one(signed, keys, name):
    trusted = Predictor.load(signed / name, trust=keys["release"][1])
    assert trusted.model.trusted and trusted.model.signature is not None
    plain = Predictor.load(signed / name)  # no trust key: the signature is carried, not required
    assert not plain.model.trusted
    assert [s.word for s in trusted.suggest("we want", 3)] == [s.word for s in plain.suggest("we want", 3)]


@pytest.mark.parametrize("name", NAMES)
def test_a_trusted_key_refuses_unsigned_and_foreign_files(exported, signed, keys, name):
    _, models, _ = exported
    with pytest.raises(SignatureError, match="not signed"):
        Predictor.load(models / name, trust=keys["release"][1])
    with pytest.raises(SignatureError, match="another key"):
        Predictor.load(signed / name, trust=keys["other"][1])


@pytest.mark.parametrize("name", NAMES)
def test_an_edit_after_signing_is_refused_even_with_a_recomputed_checksum(signed, keys, tmp_path, name):
    """The attacker's edit: a vocabulary line changed, its sha256 and the file's checksum recomputed
    (anyone can), the signature kept; it signs the old digest, so the trusted key refuses the file."""
    data = (signed / name).read_bytes()
    if name.endswith(".tflite"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            lines = archive.read(VOCAB_NAME).decode().split("\n")
            config = json.loads(archive.read(CONFIG_NAME))
            signature = archive.read(SIGNATURE_NAME)
        lines[1] = lines[1].upper()
        config["tokenizer"]["vocab_sha256"] = hashlib.sha256("\n".join(lines).encode()).hexdigest()
        resigned = tflite_format.with_associated_files(data[:zip_start(data)], "\n".join(lines), config)
        with zipfile.ZipFile(io.BytesIO(resigned)) as archive:
            config_text = archive.read(CONFIG_NAME).decode()
        edited = data[:zip_start(data)] + tflite_format.associated_files_zip("\n".join(lines), config_text, signature)
    else:
        _, start, end = onnx_metadata_props(data)[ONNX_VOCAB_KEY]
        lines = data[start:end].split(b"\n")
        lines[1] = lines[1].upper()
        edited = data[:start] + b"\n".join(lines) + data[end:]
        _, d_start, d_end = onnx_metadata_props(edited)[ONNX_DIGEST_KEY]
        digest = onnx_digest(edited[:onnx_signature_start(edited)], (d_start, d_end))
        edited = edited[:d_start] + digest.encode() + edited[d_end:]
    path = tmp_path / name
    path.write_bytes(edited)
    if name.endswith(".tflite"):
        assert read_model_file(path).checksum  # checksum and vocabulary digest recomputed: only a signature tells
    else:
        with pytest.raises(VocabMismatchError):  # past the checksum, caught by the vocabulary's own digest
            read_model_file(path)
    with pytest.raises(SignatureError, match="does not match its content"):
        read_model_file(path, trust=keys["release"][1])


@pytest.mark.parametrize("name", NAMES)
def test_a_damaged_signature_is_refused(signed, keys, tmp_path, name):
    data = bytearray((signed / name).read_bytes())
    at = data.rfind(b'"signature": "') + len(b'"signature": "')
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    path = tmp_path / name
    path.write_bytes(bytes(data))
    with pytest.raises(Exception) as info:  # the TFLite zip's CRC or the signature itself refuses it
        read_model_file(path, trust=keys["release"][1])
    assert type(info.value).__name__ in ("SignatureError", "ChecksumError")


def test_export_sign_and_predict_trust_on_the_command_line(exported, keys, tmp_path, capsys):
    run, _, _ = exported
    out = tmp_path / "models"
    exporter.export_run(run, out, formats=["onnx"], precisions=["float32"], sign=load_private_key(keys["release"][0]),
                        log=lambda _: None)
    assert cli.main(["predict", str(out / "model.onnx"), "we want", "--trust", str(keys["release"][1])]) == 0
    assert cli.main(["predict", str(out / "model.onnx"), "we want", "--trust", str(keys["other"][1])]) == 1
    err = capsys.readouterr().err
    assert "another key" in err and err.count("\n") == 1
    assert cli.main(["inspect", str(out / "model.onnx"), "--json", "--trust", str(keys["release"][1])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["signature"]["verified"] is True
    assert cli.main(["export", str(run), "--out", str(tmp_path / "x"), "--sign", str(keys["release"][1])]) == 2
    assert "not an unencrypted PEM private key" in capsys.readouterr().err


def test_sign_signs_exported_files_in_place_and_re_signs_them(exported, keys, tmp_path):
    """`nextword sign FILES --key KEY`: what `export --sign` writes, for files exported unsigned; a second key
    replaces the first signature; a damaged file is refused in one line and left as it was."""
    _, models, _ = exported
    files = []
    for name in NAMES:
        (tmp_path / name).write_bytes((models / name).read_bytes())
        files.append(str(tmp_path / name))
    result = run_cli("sign", *files, "--key", str(keys["release"][0]))
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        trusted = Predictor.load(tmp_path / name, trust=keys["release"][1])
        assert trusted.model.trusted
        plain = Predictor.load(models / name)
        assert trusted.suggest("we want", 3) == plain.suggest("we want", 3)
    assert run_cli("sign", *files, "--key", str(keys["other"][0])).returncode == 0  # re-signed: the other key's now
    for name in NAMES:
        assert Predictor.load(tmp_path / name, trust=keys["other"][1]).model.trusted
        with pytest.raises(SignatureError, match="another key"):
            Predictor.load(tmp_path / name, trust=keys["release"][1])
    damaged = tmp_path / "damaged.onnx"
    data = bytearray((models / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x10
    damaged.write_bytes(bytes(data))
    refused = run_cli("sign", str(damaged), "--key", str(keys["release"][0]))
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert damaged.read_bytes() == bytes(data) and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*NAMES, "damaged.onnx"])  # untouched, and no temporary file left
    bad_key = run_cli("sign", files[0], "--key", str(keys["release"][1]))  # the public half is no signing key
    assert bad_key.returncode != 0 and "private key" in bad_key.stderr
