"""Export: every format and precision written, vocabulary inside, validated, refused when damaged."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nextword import cli  # noqa: E402
from nextword.engines import open_engine  # noqa: E402
from nextword.errors import ChecksumError, ExportValidationError, MetadataError, VocabMismatchError  # noqa: E402
from nextword.modelfile.reader import read_model_file  # noqa: E402
from nextword.modelfile.containers import zip_start
from nextword.tokenizer import Tokenizer, TokenizerConfig  # noqa: E402
from nextword.export import exporter, validate  # noqa: E402
from nextword.export.tflite_format import builtin_ops  # noqa: E402

from conftest import run_cli  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
ALL_FILES = {"model.tflite", "model.float16.tflite", "model.int8.tflite", "model.onnx", "model.int8.onnx",
             "export_report.json"}
BUILTIN_OPS = {"ADD", "CAST", "CONCATENATION", "FILL", "FULLY_CONNECTED", "GATHER", "LOGISTIC", "MUL", "NOT_EQUAL",
               "PACK", "RESHAPE", "SHAPE", "SOFTMAX", "SPLIT", "STRIDED_SLICE", "SUB", "TANH", "UNPACK", "DEQUANTIZE",
               "WHILE", "LESS"}


def quiet(_message: str) -> None:
    pass


def test_every_format_and_precision_is_written_and_passes(exported):
    run, models, report = exported
    assert {p.name for p in models.iterdir()} == ALL_FILES  # and no temporary file left behind
    assert report["passed"] and report["contexts"]["total"] >= 256
    for entry in report["files"]:
        assert entry["passed"] and entry["written"], entry
        assert entry["size_bytes"] == sum((models / name).stat().st_size for name in entry["files"])
        for form in ("window", "step"):
            measures = entry["validation"][form]
            assert measures["contexts"] == report["contexts"]["total"]
            assert not validate.failures(measures, validate.TOLERANCES[entry["precision"]])
    on_disk = json.loads((models / "export_report.json").read_text())
    assert on_disk["files"] == report["files"]


def test_tflite_files_use_builtin_ops_only_and_carry_tflite_metadata(exported):
    from tensorflow.lite.python import schema_py_generated as schema

    _, models, _ = exported
    for path in models.glob("*.tflite"):
        data = path.read_bytes()
        ops = builtin_ops(data[: zip_start(data)])
        assert set(ops) <= BUILTIN_OPS, (path.name, ops)  # no Flex / SELECT_TF_OPS, no custom ops
        model = schema.Model.GetRootAsModel(data, 0)
        entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
        assert "TFLITE_METADATA" in entries
        buffer = model.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
        assert buffer[4:8] == b"M001"
        assert b"vocab.txt" in buffer and b"nextword.json" in buffer


def test_vocabulary_travels_inside_each_file(exported):
    run, models, _ = exported
    vocab = (run / "vocab.txt").read_text(encoding="utf-8")
    for path in models.glob("*.tflite"):
        with zipfile.ZipFile(path) as archive:  # Python's zipfile reads the TFLite associated files
            assert archive.namelist() == ["vocab.txt", "nextword.json"]
            assert archive.read("vocab.txt").decode("utf-8") == vocab
    for path in models.glob("*.onnx"):
        meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        assert meta.custom_metadata_map["nextword.vocab"] == vocab
        config = json.loads(meta.custom_metadata_map["nextword.config"])
        assert config["tokenizer"]["vocab_sha256"] == Tokenizer.load(run).vocab_sha256()
        onnx.checker.check_model(onnx.load(str(path)))


def _normalised(value):
    """Metadata with run-specific values replaced by their type: the layout, not the numbers."""
    if isinstance(value, dict):
        return {k: (_normalised(v) if k not in ("final_metrics",) else "dict") for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value[:1]] if value and not isinstance(value[0], int) else "list"
    return type(value).__name__


@pytest.mark.parametrize("name", ["model.tflite", "model.onnx", "model.int8.onnx"])
def test_metadata_layout_matches_the_golden_file(exported, name):
    _, models, _ = exported
    metadata = read_model_file(models / name).metadata.to_dict()
    layout = {"format": metadata["format"], "format_version": metadata["format_version"],
              "forms": sorted(metadata["forms"]),
              "keys": _normalised(metadata)}
    golden = GOLDEN / f"metadata.{name}.json"
    if os.environ.get("NEXTWORD_UPDATE_GOLDEN"):  # after a deliberate layout change: review, then commit
        golden.write_text(json.dumps(layout, indent=1, sort_keys=True) + "\n")
    assert golden.exists(), f"{golden} is missing; regenerate with NEXTWORD_UPDATE_GOLDEN=1"
    assert layout == json.loads(golden.read_text())


@pytest.mark.parametrize("name", ["model.tflite", "model.float16.tflite", "model.int8.tflite", "model.onnx",
                                  "model.int8.onnx"])
def test_same_input_same_output_and_step_equals_window(exported, name):
    run, models, _ = exported
    model = read_model_file(models / name)
    engine = open_engine(model)
    tokenizer, config = model.tokenizer, model.config
    ids = tokenizer.encode("we want some tea today")
    tokens = np.zeros((1, config.window), np.int32)
    tokens[0, -len(ids):] = ids[-config.window:]
    first = engine.window(tokens)
    for _ in range(3):  # no state may leak between invocations
        np.testing.assert_array_equal(engine.window(tokens), first)
    h = np.zeros((config.num_layers, 1, config.hidden_size), np.float32)
    c = np.zeros_like(h)
    for token in ids[-config.window:]:
        probs, h, c = engine.step(np.array([token], np.int32), h, c)
    np.testing.assert_allclose(probs, first, atol=1e-5)
    probs_pad, h_pad, c_pad = engine.step(np.array([0], np.int32), h, c)  # padding changes nothing
    np.testing.assert_array_equal(h_pad, h)
    np.testing.assert_array_equal(c_pad, c)
    assert abs(float(first.sum()) - 1.0) < 1e-4
    # The sequence form: the context's own ids (no padding) in one call, and the rest of a context from a state.
    zero = np.zeros_like(h)
    words = ids[-config.window:]
    probs_seq, h_seq, c_seq = engine.sequence(np.array([words], np.int32), zero, zero)
    np.testing.assert_allclose(probs_seq, first, atol=1e-5)
    np.testing.assert_allclose(h_seq, h, atol=1e-5)
    half = len(words) // 2
    _, h_half, c_half = engine.sequence(np.array([words[:half]], np.int32), zero, zero)
    np.testing.assert_allclose(engine.sequence(np.array([words[half:]], np.int32), h_half, c_half)[0], first,
                               atol=1e-5)
    # Contexts of different lengths in one batch, pre-padded to the longest.
    batch = np.array([[0, 0] + words[:3], words[:5]], np.int32)
    zero2 = np.zeros((config.num_layers, 2, config.hidden_size), np.float32)
    both = engine.sequence(batch, zero2, zero2)[0]
    # int8 ONNX quantizes the softmax input with one scale per call: a batch's rows move each other a little.
    atol = 2e-2 if name == "model.int8.onnx" else 1e-5
    np.testing.assert_allclose(both[0], engine.sequence(np.array([words[:3]], np.int32), zero, zero)[0][0], atol=atol)


def test_int8_tflite_stores_every_weight_once_in_int8(exported):
    """Each matrix in int8 (a quarter of float32, plus one float32 scale per row), the tied or untied embedding
    included; measured on the files' own tensors."""
    from nextword.export.sizes import tflite_tensor_bytes
    from nextword.export.tflite_quantize import MIN_ELEMENTS

    _, models, _ = exported
    files = {name: read_model_file(models / name) for name in ("model.tflite", "model.int8.tflite")}
    measured = {name: tflite_tensor_bytes(m.data[:zip_start(m.data)], m.config) for name, m in files.items()}
    config = files["model.tflite"].config
    quantized = [group for group in ("embedding", "lstm", "output")
                 if measured["model.tflite"][group] >= 4 * MIN_ELEMENTS + 4 * config.vocab_size]
    assert quantized, "the fixture has no matrix large enough to quantize"
    for group in quantized:
        # Beside the int8 matrix, per matrix: its float32 row scales and the float32 bias of those rows.
        rows = config.vocab_size if group != "lstm" else 4 * config.hidden_size * config.num_layers
        assert measured["model.int8.tflite"][group] <= measured["model.tflite"][group] / 4 + 2 * 4 * rows, group
    assert measured["model.int8.tflite"] == files["model.int8.tflite"].metadata.tensor_bytes
    ops = set(files["model.int8.tflite"].metadata.ops)
    assert ops <= BUILTIN_OPS


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "bit_flip_in_weights":
        end = zip_start(bytes(data)) if path.suffix == ".tflite" else len(data)
        data[end // 2] ^= 0x10
    elif how == "truncated":
        data = data[: len(data) * 2 // 3]
    elif how == "metadata_removed" and path.suffix == ".tflite":
        data = data[: zip_start(bytes(data))]
    elif how == "metadata_removed":
        proto = onnx.load_from_string(bytes(data))
        del proto.metadata_props[:]
        data = bytearray(proto.SerializeToString())
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.tflite", "model.int8.tflite", "model.onnx"])
@pytest.mark.parametrize("how, error", [("bit_flip_in_weights", ChecksumError), ("truncated", ChecksumError),
                                        ("metadata_removed", MetadataError)])
def test_damaged_files_are_refused_before_any_engine(exported, tmp_path, name, how, error):
    _, models, _ = exported
    copy = tmp_path / name
    copy.write_bytes((models / name).read_bytes())
    _damage(copy, how)
    with pytest.raises((error, ChecksumError, MetadataError)) as info:
        read_model_file(copy)
    assert isinstance(info.value, error) or (how == "truncated" and isinstance(info.value, MetadataError))
    assert "\n" not in str(info.value)


def test_swapped_vocabulary_lines_are_refused(exported, tmp_path):
    """Edited vocabulary: refused by the file's checksum; re-signed (the digest recomputed, as anyone can),
    refused by the vocabulary's own sha256 in the config."""
    from nextword.export.tflite_format import associated_files_zip, with_associated_files

    _, models, _ = exported
    data = (models / "model.tflite").read_bytes()
    flatbuffer = data[: zip_start(data)]
    with zipfile.ZipFile(models / "model.tflite") as archive:
        vocab = archive.read("vocab.txt").decode().split("\n")
        config = archive.read("nextword.json")
    vocab[1], vocab[2] = vocab[2], vocab[1]
    (tmp_path / "swapped.tflite").write_bytes(flatbuffer + associated_files_zip("\n".join(vocab), config.decode()))
    with pytest.raises(ChecksumError, match="sha256"):
        read_model_file(tmp_path / "swapped.tflite")
    (tmp_path / "resigned.tflite").write_bytes(with_associated_files(flatbuffer, "\n".join(vocab), json.loads(config)))
    with pytest.raises(VocabMismatchError, match="sha256"):
        read_model_file(tmp_path / "resigned.tflite")


@pytest.mark.parametrize("part", ["flatbuffer", "vocab", "config"])
def test_the_tflite_checksum_covers_everything_the_runtime_reads(exported, tmp_path, part):
    """One changed byte in any part (the zip's CRCs fixed, as an editor writes them) is a ChecksumError;
    a file whose checksum says it covers the flatbuffer only (earlier files) gets one line: export again."""
    from nextword.modelfile.contract import FLATBUFFER_ONLY_COVERS
    from nextword.export.tflite_format import associated_files_zip

    _, models, _ = exported
    data = (models / "model.tflite").read_bytes()
    flatbuffer = bytearray(data[: zip_start(data)])
    with zipfile.ZipFile(models / "model.tflite") as archive:
        vocab, config = archive.read("vocab.txt").decode(), json.loads(archive.read("nextword.json"))
    if part == "flatbuffer":
        flatbuffer[-100] ^= 0x01
    elif part == "vocab":
        lines = vocab.split("\n")
        vocab = "\n".join([lines[0], lines[1] + "x", *lines[2:]])
    else:
        config["training"]["corpus"] = "elsewhere"
    edited = tmp_path / f"{part}.tflite"
    edited.write_bytes(bytes(flatbuffer) + associated_files_zip(vocab, json.dumps(config)))
    with pytest.raises(ChecksumError, match="do not match their sha256"):
        read_model_file(edited)
    old = {**config, "checksum": {"sha256": hashlib.sha256(flatbuffer).hexdigest(), "covers": FLATBUFFER_ONLY_COVERS}}
    edited.write_bytes(bytes(flatbuffer) + associated_files_zip(vocab, json.dumps(old)))
    with pytest.raises(ChecksumError, match="export the model again"):
        read_model_file(edited)


def test_a_tolerance_miss_fails_loudly_and_writes_nothing(exported, tmp_path, monkeypatch):
    run, _, _ = exported
    monkeypatch.setitem(validate.TOLERANCES, "float32", validate.Tolerance(max_abs_diff=-1.0))
    monkeypatch.setattr(exporter, "TOLERANCES", validate.TOLERANCES)
    with pytest.raises(ExportValidationError) as info:
        exporter.export_run(run, tmp_path / "out", formats=["tflite"], precisions=["float32"], log=quiet)
    message = str(info.value)
    assert "model.tflite" in message and "max_abs_diff" in message and "must be <= -1" in message
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["export_report.json"]
    report = exporter.export_run(run, tmp_path / "out2", formats=["tflite"], precisions=["float32"],
                                 allow_mismatch=True, log=quiet).report
    assert not report["passed"] and report["files"][0]["written"] and (tmp_path / "out2" / "model.tflite").exists()


@pytest.mark.parametrize("setup, args, message", [
    ("missing", [], "does not exist"),
    ("no_model", [], "has no model.keras"),
    ("run", ["--formats", "coreml"], "format 'coreml' does not exist"),
    ("run", ["--precisions", "int4"], "precision 'int4' does not exist"),
    ("run", ["--formats", "onnx", "--precisions", "float16"], "no format supports"),
    ("unwritable", [], "cannot write to --out"),
    ("future_version", [], "reads format 1"),
    ("run", ["--validate-on", "missing.txt"], "missing.txt does not exist"),
    ("empty_text", ["--validate-on", "empty.txt"], "empty.txt holds no text"),
    ("latin1_text", ["--validate-on", "latin1.txt"], "latin1.txt is not UTF-8 text (line 1)"),
    ("dir_text", ["--validate-on", "."], "is a directory"),
    ("io_error_text", ["--validate-on", "/proc/self/mem"], "cannot read /proc/self/mem (Input/output error)"),
])
def test_bad_export_input_is_one_line(exported, tmp_path, capsys, setup, args, message):
    run, _, _ = exported
    target, out = run, tmp_path / "out"
    if setup == "missing":
        target = tmp_path / "nope"
    elif setup == "no_model":
        target = tmp_path / "incomplete"
        target.mkdir()
        for name in ("config.json", "vocab.txt", "tokenizer.json"):
            (target / name).write_bytes((run / name).read_bytes())
    elif setup == "future_version":
        target = tmp_path / "future"
        target.mkdir()
        for name in ("vocab.txt", "tokenizer.json", "model.keras"):
            (target / name).write_bytes((run / name).read_bytes())
        config = json.loads((run / "config.json").read_text())
        (target / "config.json").write_text(json.dumps({**config, "format_version": 2, "nextword_version": "9.0"}))
    elif setup == "unwritable":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    args = [str(tmp_path / a) if a.endswith(".txt") or a == "." else a for a in args]
    code = cli.main(["export", str(target), "--out", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code != 0 and message in err and "\n" not in err, err
    if "--validate-on" in args:
        assert not out.exists()  # refused before anything was loaded or written


def test_a_keras_file_that_is_not_a_nextword_model_is_refused(exported, tmp_path, capsys):
    import keras

    run, _, _ = exported
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer.json"):
        (foreign / name).write_bytes((run / name).read_bytes())
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(foreign / "model.keras")
    code = cli.main(["export", str(foreign), "--out", str(tmp_path / "out")])
    assert code == 1 and "is not the nextword model" in capsys.readouterr().err


def test_inspect_works_without_tensorflow(exported):
    import subprocess
    import sys

    _, models, _ = exported
    code = f"""
import sys, json
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from nextword import cli
for name in ('model.int8.tflite', 'model.onnx'):
    assert cli.main(['inspect', {str(models)!r} + '/' + name, '--json']) == 0
print('TF', 'tensorflow' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("TF False")
    first = json.loads(out.stdout[: out.stdout.index("}\n{") + 1])
    assert first["format"] == "tflite" and first["precision"] == "int8" and first["checksum"]["verified"]
    assert first["first_words"][0] == Tokenizer.load(models.parent / "run").vocab[1]


def test_inspect_reports_a_damaged_file_in_one_line(exported, tmp_path, capsys):
    _, models, _ = exported
    copy = tmp_path / "model.onnx"
    copy.write_bytes((models / "model.onnx").read_bytes())
    _damage(copy, "bit_flip_in_weights")
    assert cli.main(["inspect", str(copy)]) == 1
    err = capsys.readouterr().err.strip()
    assert "do not match their sha256" in err and "\n" not in err


@pytest.mark.parametrize("eos", [None, "<eos>"])
def test_validation_contexts_read_lines_as_the_runtime_does(eos):
    from nextword.config import ModelConfig
    from nextword.export.contexts import text_contexts

    lines = ["we want some tea", "the tea is hot today", "some people want coffee"] * 5
    tokenizer = Tokenizer.fit(lines, TokenizerConfig(eos_token=eos))
    config = ModelConfig(vocab_size=tokenizer.vocab_size, window=8)
    contexts, counts = text_contexts([lines], tokenizer, config, np.random.default_rng(0))
    assert counts[0] > 0
    firsts = {int(row[row != 0][0]) for row in contexts[: counts[0]]}
    # With <eos>, every line prefix starts after it (Tokenizer.context_ids); without, with a word.
    assert firsts == {tokenizer.eos_id} if eos else tokenizer.eos_id not in firsts
    for row in contexts[: counts[0]]:
        ids = [int(i) for i in row[row != 0]]
        text = " ".join(tokenizer.vocab[i] for i in ids if i != tokenizer.eos_id)
        assert ids == tokenizer.context_ids(text)


def test_a_tied_run_loads_in_a_process_that_never_trained(exported, tmp_path):
    """model.keras names nextword's TiedEmbedding layer: loading it must not depend on the trainer's imports."""
    run, _, _ = exported
    text = tmp_path / "text.txt"
    text.write_text("we want some tea\nthe tea is hot\n")
    result = run_cli("eval", str(run), "--text", str(text), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tokens"] > 0


def test_inspect_names_the_output_layer(exported, capsys):
    _, models, _ = exported
    assert cli.main(["inspect", str(models / "model.tflite")]) == 0
    model_line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("model "))
    assert "2x LSTM(16), embedding 8," in model_line
    assert model_line.endswith(", projection 8, tied embeddings")


@pytest.mark.parametrize("name", ["model.int8.tflite", "model.onnx"])
def test_inspect_shows_where_the_bytes_go_and_the_format_version(exported, capsys, name):
    _, models, _ = exported
    assert cli.main(["inspect", str(models / name)]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(line for line in lines if line.strip().startswith("bytes ")).strip()[len("bytes"):].strip()
    sizes = {group: int(value.replace(",", "")) for group, value in
             re.findall(r"([a-z][a-z ]*?) (\d[\d,]*)(?=, [a-z]|$)", line)}
    assert {"embedding", "lstm", "output", "metadata", "graph and other"} <= set(sizes)
    assert sum(sizes.values()) == (models / name).stat().st_size
    model = read_model_file(models / name)
    assert sizes["metadata"] >= len(model.tokenizer.vocab_text().encode())  # the vocabulary is in the metadata
    assert any(line.endswith("model-file format 2") for line in lines)


def test_float16_is_judged_where_a_user_sees_it():
    """A confident 0.990 -> 0.988 (abs 2e-3) changes nothing shown: it passes. A top word that changes, or a
    top probability off by 5% of itself, fails."""
    rng = np.random.default_rng(0)
    reference = rng.dirichlet(np.ones(50) * 0.1, size=200)
    reference[:, 0] += 10.0  # a very confident model
    reference /= reference.sum(axis=1, keepdims=True)
    nudged = reference.copy()
    nudged[:, 0] -= 2e-3
    nudged[:, 1:] += 2e-3 / 49
    tolerance = validate.TOLERANCES["float16"]
    measures = validate.compare(reference, nudged)
    assert measures["max_abs_diff"] > 1e-3 and validate.failures(measures, tolerance) == []
    flipped = reference.copy()
    flipped[:5, [0, 1]] = flipped[:5, [1, 0]]  # 2.5% of the contexts get another top word
    assert any("top1_agreement" in f for f in validate.failures(validate.compare(reference, flipped), tolerance))
    off = reference.copy()
    second = np.argsort(-reference, axis=1)[:, 1]
    rows = np.arange(len(off))
    big = reference[rows, second] >= 0.02
    off[rows[big], second[big]] *= 1.05
    assert any("top_relative_error" in f for f in validate.failures(validate.compare(reference, off), tolerance))


@pytest.mark.parametrize("name", ["model.tflite", "model.float16.tflite", "model.int8.tflite", "model.onnx",
                                  "model.int8.onnx"])
def test_the_tied_matrix_is_stored_once(exported, name):
    """The fixture ties its softmax to its embedding: every file holds that (vocab x embedding) matrix once."""
    import onnx
    from tensorflow.lite.python import schema_py_generated as schema

    _, models, _ = exported
    model = read_model_file(models / name)
    config = model.config
    assert config.tie_embeddings
    matrix = sorted((config.vocab_size, config.embedding_dim))
    if name.endswith(".onnx"):
        graph = onnx.load_from_string(model.data).graph
        copies = [i.name for i in graph.initializer if sorted(i.dims) == matrix]
    else:
        flat = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model.data[:zip_start(model.data)], 0))
        copies = {t.buffer for g in flat.subgraphs for t in g.tensors
                  if t.buffer and flat.buffers[t.buffer].data is not None and sorted(t.shape) == matrix}
    assert len(copies) == 1, copies


@pytest.mark.parametrize("field, change", [("window", 1), ("hidden_size", 8), ("num_layers", 1)])
def test_a_config_that_does_not_fit_the_graph_is_refused_at_load(exported, tmp_path, field, change):
    """The TFLite metadata edited consistently (forms too): the graph says otherwise, and the load's
    probe inference refuses the file in one typed line, before any suggestion."""
    import json

    from nextword.errors import NextwordError
    from nextword.export.tflite_format import with_associated_files
    from nextword.predictor import Predictor

    _, models, _ = exported
    data = (models / "model.tflite").read_bytes()
    with zipfile.ZipFile(models / "model.tflite") as archive:
        vocab = archive.read("vocab.txt").decode()
        config = json.loads(archive.read("nextword.json"))
    old = config["model"][field]
    config["model"][field] = old + change
    text = json.dumps(config).replace(f", {old}]", f", {old + change}]") if field != "num_layers" else json.dumps(config)
    damaged = tmp_path / f"{field}.tflite"
    damaged.write_bytes(with_associated_files(data[: zip_start(data)], vocab, json.loads(text)))  # re-signed
    with pytest.raises(NextwordError) as info:
        Predictor.load(damaged)
    assert "\n" not in str(info.value) and str(damaged) in str(info.value)


@pytest.mark.parametrize("tamper, message", [
    ("encrypted", "is encrypted"), ("method", "compression method"), ("bomb", "nextword.json declares"),
    ("declared", "declares .* allowed")])
def test_metadata_archive_tampering_is_refused_before_inflating(exported, tmp_path, tamper, message):
    """Zip members flagged encrypted, with another method, or inflating past the bound: one typed line."""
    from nextword.modelfile import reader as modelfile
    from nextword.errors import MetadataError

    _, models, _ = exported
    data = (models / "model.tflite").read_bytes()
    flatbuffer = data[: zip_start(data)]
    with zipfile.ZipFile(models / "model.tflite") as archive:
        vocab, config = archive.read("vocab.txt"), archive.read("nextword.json")
    if tamper == "bomb":
        config = config + b" " * (modelfile.MAX_CONFIG_BYTES + 10)  # spaces: JSON-valid, deflates to little
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("nextword.json", config)
        archive.writestr("vocab.txt", vocab)
    raw = bytearray(buffer.getvalue())
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # local and central headers of every member
        at = raw.find(header)
        while at >= 0:
            flags_at, method_at = at + (6 if header == b"PK\x03\x04" else 8), at + (8 if header == b"PK\x03\x04" else 10)
            if tamper == "encrypted":
                raw[flags_at] |= 0x1
            elif tamper == "method":
                raw[method_at:method_at + 2] = (14).to_bytes(2, "little")  # LZMA
            elif tamper == "declared" and header == b"PK\x01\x02":
                raw[at + 24:at + 28] = (modelfile.MAX_VOCAB_BYTES + 1).to_bytes(4, "little")
            at = raw.find(header, at + 4)
    damaged = tmp_path / f"{tamper}.tflite"
    damaged.write_bytes(flatbuffer + bytes(raw))
    with pytest.raises(MetadataError, match=message):
        read_model_file(damaged)


@pytest.mark.parametrize("field, value", [("lower", "yes"), ("filters", 5), ("max_vocab", "12"), ("min_count", 1.5),
                                          ("unused_from", -4), ("unk_token", ["<unk>"]), ("split", "")])
def test_tokenizer_settings_of_the_wrong_type_are_refused(exported, tmp_path, field, value):
    """Re-signed files whose tokenizer settings have the wrong type or range: one typed line at load."""
    from nextword.errors import NextwordError
    from nextword.export.tflite_format import with_associated_files

    _, models, _ = exported
    data = (models / "model.tflite").read_bytes()
    with zipfile.ZipFile(models / "model.tflite") as archive:
        vocab, config = archive.read("vocab.txt").decode(), json.loads(archive.read("nextword.json"))
    config["tokenizer"][field] = value
    path = tmp_path / "edited.tflite"
    path.write_bytes(with_associated_files(data[:zip_start(data)], vocab, config))
    with pytest.raises(NextwordError) as info:
        read_model_file(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("field, change", [("hidden_size", 8), ("num_layers", 1), ("vocab_size", 0)])
def test_an_onnx_config_that_does_not_fit_the_graph_is_refused_at_load(exported, tmp_path, field, change):
    """The ONNX metadata edited and re-signed: the graph's declared shapes disagree, one typed line naming
    the field (onnxruntime's own InvalidArgument never reaches the user)."""
    import sys as _sys

    from nextword.modelfile.contract import ONNX_CONFIG_KEY
    from nextword.errors import NextwordError
    from nextword.modelfile.containers import onnx_metadata_props
    from nextword.predictor import Predictor

    _sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import fuzz

    _, models, _ = exported
    data = (models / "model.onnx").read_bytes()
    config = json.loads(onnx_metadata_props(data)[ONNX_CONFIG_KEY][0])
    config["model"][field] += change
    if field == "vocab_size":  # a consistent edit would need the vocabulary too: change the output size only
        config["model"][field] += 1
    path = tmp_path / "edited.onnx"
    path.write_bytes(fuzz.onnx_resign(fuzz.onnx_set_prop(data, ONNX_CONFIG_KEY, json.dumps(config).encode())))
    with pytest.raises(NextwordError) as info:
        Predictor.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_a_run_exported_from_another_directory_validates_on_its_own_corpus(tmp_path, monkeypatch):
    """A run trained on a relative corpus path finds it from wherever it is exported (the run remembers the
    directory it was trained from); once the corpus is gone, the export says so in its log."""
    from conftest import write_tiny_corpus
    from nextword.train import trainer
    from nextword.train.plan import TrainConfig, plan_new, plan_resume

    (tmp_path / "project").mkdir()
    (tmp_path / "elsewhere").mkdir()
    write_tiny_corpus(tmp_path / "project" / "tiny.txt")
    monkeypatch.chdir(tmp_path / "project")
    plan = plan_new("run", TrainConfig(epochs=1, corpus=("tiny.txt",), batch_size=8), TokenizerConfig(),
                    dict(embedding_dim=4, hidden_size=8, window=4))
    trainer.start(plan, log=quiet)
    monkeypatch.chdir(tmp_path / "elsewhere")
    lines: list[str] = []
    report = exporter.export_run("../project/run", "models", formats=["tflite"], precisions=["float32"],
                                 log=lines.append).report
    assert "held-out lines" in report["contexts"]["sources"], report["contexts"]
    assert not any("warning" in line for line in lines)
    # The command that started the run, given again from here (its corpus as seen from here), plus --resume:
    resumed = trainer.resume(plan_resume("../project/run", epochs=2, options={"corpus": ["../project/tiny.txt"]}),
                             log=quiet)
    assert resumed.report.training.epochs_completed == 2

    (tmp_path / "project" / "tiny.txt").unlink()
    lines.clear()
    report = exporter.export_run("../project/run", "models2", formats=["tflite"], precisions=["float32"],
                                 log=lines.append).report
    assert list(report["contexts"]["sources"]) == ["random word sequences"]
    warning = next(line for line in lines if "warning" in line)
    assert "tiny.txt" in warning and str(tmp_path / "project") in warning and "\n" not in warning


def test_onnx_runtime_reads_the_int8_file_with_the_same_numbers_its_weights_folded_at_load(exported):
    """OnnxEngine has ONNX Runtime fold the int8 weights' DequantizeLinear into float constants at load
    (``session.disable_quant_qdq``; it dequantized them on every call before): the outputs must stay the
    same, bit for bit, as with every node run as written."""
    ort, onnx = pytest.importorskip("onnxruntime"), pytest.importorskip("onnx")
    _, models, _ = exported
    model = read_model_file(models / "model.int8.onnx")
    assert any(node.op_type == "DequantizeLinear" for node in onnx.load_from_string(model.data).graph.node)
    plain = ort.InferenceSession(model.data, providers=["CPUExecutionProvider"])
    engine = open_engine(model, "onnxruntime")
    assert engine._session.get_session_options().get_session_config_entry("session.disable_quant_qdq") == "1"
    rng = np.random.default_rng(0)
    config = model.config
    tokens = rng.integers(0, config.vocab_size, (16, config.window)).astype(np.int32)
    h = rng.normal(size=(config.num_layers, 16, config.hidden_size)).astype(np.float32)
    c = rng.normal(size=(config.num_layers, 16, config.hidden_size)).astype(np.float32)
    expected = plain.run(["probs", "h_out", "c_out"], {"tokens": tokens, "h": h, "c": c})
    for got, want in zip(engine.sequence(tokens, h, c), expected):
        np.testing.assert_array_equal(got, want)


def test_an_export_validates_on_the_users_own_text_first(exported, tmp_path):
    """--validate-on: the files are checked on prefixes of the user's lines before the run's held-out lines
    (read only as far as needed); a Keras model file without it says that random words stand in for text."""
    run, _, _ = exported
    text = tmp_path / "messages.txt"
    text.write_text("\n".join(["we want some tea today", "they see the news", "good morning"] * 40) + "\n")
    lines: list[str] = []
    report = exporter.export_run(run, tmp_path / "out", formats=["tflite"], precisions=["float32"],
                                 validate_on=text, log=lines.append).report
    sources = report["contexts"]["sources"]
    assert list(sources)[0] == "messages.txt" and sources["messages.txt"] >= 256, sources
    assert any("from messages.txt" in line for line in lines)
    few = tmp_path / "few.txt"
    few.write_text("good morning\n")  # a prefix or two: the run's own lines top them up
    sources = exporter.export_run(run, tmp_path / "out2", formats=["tflite"], precisions=["float32"],
                                  validate_on=few, log=quiet).report["contexts"]["sources"]
    assert 0 < sources["few.txt"] < 5 and sum(sources.values()) >= 256 and "held-out lines" in sources, sources
