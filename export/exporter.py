"""Export a training run to TFLite and ONNX files that carry their vocabulary, each validated.

    nextword export runs/default --out models/default

For every (format, precision): convert (``tflite_format``, ``onnx_format``), embed the metadata
(``metadata``), write under a temporary name (``fileio.atomic_path``), load it back through the
runtime (checksum included) on the real engine, compare both forms with Keras on the validation
contexts (``contexts``, ``validate``), and only then rename it into place in the export folder
(``out_dir``), whose report lists every file it holds.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from nextword import __version__
from nextword.modelfile.contract import FORMS, file_name, parse_selection
from nextword.engines import OnnxEngine, TFLiteEngine
from nextword.errors import ExportValidationError, UsageError
from nextword.fileio import atomic_path
from nextword.runs import KERAS_SUFFIXES, path_kind
from nextword.modelfile.reader import ModelFile, read_model_file
from nextword.modelfile.signing import signed_bytes
from nextword.export import onnx_format, sizes, tflite_format
from nextword.export.contexts import ValidationSet, text_lines, validation_set
from nextword.export.graphs import InferenceGraphs, LstmWeights
from nextword.export.keras_import import ImportedModel, import_keras_model
from nextword.export.stack_graphs import StackGraphs
from nextword.export.metadata import build_metadata
from nextword.export.out_dir import ExportDir
from nextword.export.table import print_table
from nextword.export.validate import TOLERANCES, Miss, measure, problems, tolerance_dict
from nextword.train.loading import LoadedRun, load_run
from nextword.train.run_dir import RunDir

Log = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    report: dict  # what export_report.json holds
    validation: ValidationSet  # the contexts every file was checked on, and Keras' output for them


class _Rejected(Exception):
    """A file missed its tolerance: leave its temporary file unrenamed (atomic_path deletes it)."""


def export_run(run_dir: str | Path, out_dir: str | Path, *, formats: list[str], precisions: list[str] | None,
               allow_mismatch: bool = False, overwrite: bool = False, tokenizer: str | Path | None = None,
               window: int | None = None, sign=None, validate_on: str | Path | None = None,
               log: Log = print) -> ExportResult:
    """Export a training run directory, or a Keras user's model file (``.keras``/``.h5``, with ``tokenizer``
    and ``window`` where the file does not say them: ``keras_import``). ``sign``: an Ed25519 private key
    (``nextword.modelfile.signing``) that signs every file. ``validate_on``: a text file whose line prefixes the files are
    validated on first (``contexts.validation_set``)."""
    selection = parse_selection(formats, precisions)
    # A missing or empty text fails before anything is loaded or written; its lines are read when validating.
    own_text = None if validate_on is None else (Path(validate_on).name, text_lines(validate_on))
    loaded, graphs, model_sha256 = _load_source(Path(run_dir), tokenizer, window)
    out = ExportDir(out_dir, model_sha256, loaded.path)
    out.prepare(overwrite)

    validation = validation_set(loaded, text=own_text)
    log(validation.describe())
    report = {
        "nextword_version": __version__,
        "run_dir": str(loaded.path),
        **({"source": loaded.source} if isinstance(loaded, ImportedModel) else {}),
        "out_dir": str(out.path),
        "contexts": {"total": int(len(validation.contexts)), "sources": validation.origin,
                     "edge_cases": list(validation.edge_cases)},
        "tolerances": {p: tolerance_dict(p) for p in TOLERANCES},
        "allow_mismatch": allow_mismatch,
        "complete": False,
    }
    entries, missed = [], []
    with tempfile.TemporaryDirectory(prefix="nextword-export-") as tmp:
        saved_model = Path(tmp) / "saved_model"
        if any(fmt == "tflite" for fmt, _ in selection):
            tf.saved_model.save(graphs, str(saved_model), signatures=graphs.concrete_functions())
        onnx_float = None
        for fmt, precision in selection:
            log(f"exporting {fmt} {precision} ...")
            name = file_name(fmt, precision)
            if fmt == "tflite":
                data = _signed(_tflite_bytes(saved_model, loaded, precision), fmt, sign)
            else:
                onnx_float = onnx_float or onnx_format.convert(graphs)
                data = _signed(_onnx_bytes(onnx_float, loaded, precision), fmt, sign)
            if fmt == "onnx" and precision == "int8" and not loaded.config.tie_embeddings:
                entry, miss = _validate_and_place(out.path, name, data, fmt, precision, validation, False)
                if miss:  # a small, confident softmax: int8 weights with float32 activations instead
                    log(f"{name}: dynamic quantization missed ({miss[0].phrase}); "
                        "trying int8 weights with float32 activations")
                    data = _signed(_onnx_bytes(onnx_float, loaded, precision, weight_only_output=True), fmt, sign)
                    entry, miss = _validate_and_place(out.path, name, data, fmt, precision, validation,
                                                      allow_mismatch)
            else:
                entry, miss = _validate_and_place(out.path, name, data, fmt, precision, validation, allow_mismatch)
            entries.append(entry)
            missed.extend(miss)
            out.write_report(report, entries)  # the folder always says what it holds
    report = out.write_report({**report, "complete": True}, entries)
    print_table(entries, log)
    if missed and not allow_mismatch:
        more = f" (and {len(missed) - 1} more; see {out.report_path})" if len(missed) > 1 else ""
        raise ExportValidationError(f"{missed[0]}{more}; the file was not written, pass --allow-mismatch "
                                    "to write it anyway")
    if missed:
        log(f"warning: {len(missed)} tolerance miss(es) written anyway (--allow-mismatch): {missed[0]}")
    return ExportResult(report, validation)


def _load_source(path: Path, tokenizer, window):
    """(loaded, graphs, sha256 of the Keras model) for a run directory or a model file."""
    kind = path_kind(path)
    if kind in ("keras", "file"):
        if kind == "file":
            raise UsageError(f"{path.name} is neither a run directory nor a Keras model file "
                             f"({', '.join(KERAS_SUFFIXES)}); give one of those")
        imported = import_keras_model(path, tokenizer=tokenizer, window=window)
        return imported, StackGraphs(imported.stack, imported.config), imported.model_sha256()
    if tokenizer is not None or window is not None:
        raise UsageError("--tokenizer and --window are for a Keras model file; a run directory carries both")
    loaded = load_run(path)
    graphs = InferenceGraphs(LstmWeights.from_keras(loaded.model, loaded.config), loaded.config)
    return loaded, graphs, hashlib.sha256(RunDir(loaded.path).model.read_bytes()).hexdigest()


def _tflite_bytes(saved_model: Path, loaded: LoadedRun | ImportedModel, precision: str) -> bytes:
    flatbuffer = tflite_format.with_metadata_entry(
        tflite_format.convert(saved_model, precision),
        f"Next-word LSTM ({precision}); vocabulary in vocab.txt, config in nextword.json")
    metadata = build_metadata(loaded, "tflite", precision,
                              tensor_bytes=sizes.tflite_tensor_bytes(flatbuffer, loaded.config),
                              ops=tuple(tflite_format.builtin_ops(flatbuffer)))
    return tflite_format.with_associated_files(flatbuffer, loaded.tokenizer.vocab_text(), metadata.to_dict())


def _signed(data: bytes, fmt: str, key) -> bytes:
    if key is None:
        return data
    return signed_bytes(data, fmt, key)


def _onnx_bytes(float_proto, loaded: LoadedRun | ImportedModel, precision: str, *,
                weight_only_output: bool = False) -> bytes:
    if precision == "int8":
        proto = onnx_format.quantize_int8(float_proto, loaded.config, weight_only_output=weight_only_output)
    else:
        proto = type(float_proto).FromString(float_proto.SerializeToString())  # a copy: metadata is set in place
        if loaded.config.tie_embeddings:
            onnx_format.tie_float(proto, loaded.config)
    metadata = build_metadata(loaded, "onnx", precision, tensor_bytes=sizes.onnx_tensor_bytes(proto, loaded.config))
    return onnx_format.with_metadata(proto, loaded.tokenizer.vocab_text(),
                                     json.dumps(metadata.to_dict(), indent=1, ensure_ascii=False))


def _validate_and_place(out: Path, name: str, data: bytes, fmt: str, precision: str,
                        validation: ValidationSet, allow_mismatch: bool) -> tuple[dict, list[Miss]]:
    """Write the file under a temporary name, check it through the runtime and the engine, rename if it passed."""
    tolerance = TOLERANCES[precision]
    found: list[Miss] = []
    try:
        with atomic_path(out / name) as temp:
            temp.write_bytes(data)
            checked = read_model_file(temp)  # metadata + checksum round trip
            engine = _engine(fmt, checked)
            expected_io = {form: spec.io_names() for form, spec in checked.forms.items()}
            results = measure(engine, validation.contexts, validation.reference, checked.config)
            found = problems(name, results, tolerance, expected_io, engine.io_names())
            if found and not allow_mismatch:
                raise _Rejected
    except _Rejected:
        pass
    entry = {
        "path": name,
        "files": [name],  # the export folder's list of what it holds (format 1 listed two ONNX files here)
        "format": fmt,
        "precision": precision,
        "forms": list(FORMS[fmt]),  # what the file holds; "validation" has every form measured through them
        "size_bytes": len(data),
        "tensor_bytes": checked.metadata.tensor_bytes,
        "dynamic_batch": True,
        "engine": engine.name,
        "validation": results,
        "tolerance": tolerance_dict(precision),
        "passed": not found,
        "written": not found or allow_mismatch,
    }
    if fmt == "tflite":
        entry["ops"] = list(checked.metadata.ops or ())
    return entry, found


def _engine(fmt: str, checked: ModelFile):
    if fmt == "tflite":
        return TFLiteEngine(checked, "ai-edge-litert")
    return OnnxEngine(checked)
