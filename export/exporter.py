"""Export a training run to TFLite and ONNX files that carry their vocabulary, each validated.

    nextword export runs/default --out models/default

For every (format, precision): convert, embed the metadata, write to a
temporary name, load it back through the runtime (checksum included) on the
real engine, compare window and step forms with Keras on the validation
contexts, and only then rename it into place.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nextword import __version__
from nextword.config import ModelConfig
from nextword.engines import OnnxEngine, TFLiteEngine
from nextword.errors import ExportValidationError, RunDirError, UsageError
from nextword.fileio import atomic_path
from nextword.modelfile import MODEL_FORMAT, MODEL_FORMAT_VERSION, read_model_file
from nextword.tokenizer import Tokenizer
from nextword.export import contexts as validation_contexts
from nextword.export import onnx_format, tflite_format
from nextword.export.graphs import InferenceGraphs, LstmWeights
from nextword.export.report import print_table, write_report
from nextword.export.validate import TOLERANCES, compare, failures, tolerance_dict

FORMATS = {"tflite": tflite_format.PRECISIONS, "onnx": onnx_format.PRECISIONS}
PADDING_NOTE = ("id 0 is padding and is masked: it leaves the LSTM state unchanged, so a pre-padded window equals "
                "the step form fed the same ids from zero h and c")
Log = Callable[[str], None]


def file_name(fmt: str, precision: str, graph: str = "window") -> str:
    stem = "model" if graph == "window" else "model.step"
    suffix = "" if precision == "float32" else f".{precision}"
    return f"{stem}{suffix}.{fmt}"


@dataclasses.dataclass
class LoadedRun:
    path: Path
    saved: dict
    tokenizer: Tokenizer
    config: ModelConfig
    model: keras.Model


def load_run(run_dir: str | Path) -> LoadedRun:
    from nextword.train.run_dir import RunDir

    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise RunDirError(f"run directory {run.path} does not exist; train one with `nextword train --out {run.path}`")
    saved = run.read_config()
    if not run.model.exists():
        raise RunDirError(f"{run.path} has no model.keras: the run did not finish; "
                          f"finish it with `nextword train --out {run.path} --resume`")
    tokenizer = Tokenizer.load(run.path)
    config = ModelConfig.from_dict(saved["model"])
    import nextword.train.model  # noqa: F401  (registers TiedEmbedding, which a tied model.keras names)

    try:
        model = keras.models.load_model(run.model, safe_mode=True, compile=False)
    except Exception as err:  # a damaged or foreign archive raises many types
        raise RunDirError(f"{run.model} cannot be loaded as a Keras model ({' '.join(str(err).split())[:200]})"
                          ) from None
    expected_layers = {"embedding", "probs", *(f"lstm_{i}" for i in range(config.num_layers))}
    names = {layer.name for layer in model.layers}
    if not expected_layers <= names or model.output_shape != (None, config.vocab_size) \
            or model.input_shape != (None, config.window):
        raise RunDirError(f"{run.model} is not the nextword model its config.json describes "
                          f"(layers {sorted(names)}, input {model.input_shape}, output {model.output_shape})")
    if tokenizer.vocab_size != config.vocab_size:
        raise RunDirError(f"{run.path}: vocab.txt has {tokenizer.vocab_size} tokens but the model outputs "
                          f"{config.vocab_size}; the run directory is inconsistent")
    return LoadedRun(run.path, saved, tokenizer, config, model)


def parse_selection(formats: list[str], precisions: list[str] | None) -> list[tuple[str, str]]:
    for fmt in formats:
        if fmt not in FORMATS:
            raise UsageError(f"format {fmt!r} does not exist; choose from {', '.join(FORMATS)}")
    known = {p for ps in FORMATS.values() for p in ps}
    for precision in precisions or []:
        if precision not in known:
            raise UsageError(f"precision {precision!r} does not exist; choose from float32, float16, int8")
    pairs = [(f, p) for f in formats for p in FORMATS[f] if precisions is None or p in precisions]
    if not pairs:
        raise UsageError(f"no format supports the precisions {precisions}: ONNX has float32 and int8, "
                         "TFLite float32, float16 and int8")
    return pairs


def _text_sources(loaded: LoadedRun) -> list:
    """Held-out lines of the training corpus, then its training lines; none if the corpus is gone."""
    from nextword.errors import CorpusError
    from nextword.train.corpus import Corpus
    from nextword.train.data import TrainingData
    from nextword.train.plan import TrainConfig

    training = TrainConfig.from_saved(loaded.saved["training"])
    try:
        corpus = Corpus.default() if training.corpus is None else Corpus.from_paths(training.corpus)
        valid = None if training.valid is None else Corpus.from_paths(training.valid)
    except CorpusError:
        return []
    data = TrainingData(corpus, valid, seed=training.seed, valid_fraction=training.valid_fraction)
    return [data.valid_lines(), data.train_lines()] if data.has_validation else [data.train_lines()]


def _metadata(loaded: LoadedRun, precision: str, graph: str, companion: dict | None) -> dict:
    config = loaded.config
    batch, layers, hidden = -1, config.num_layers, config.hidden_size
    state = {"dtype": "float32", "shape": [layers, batch, hidden]}
    forms = {
        "window": {"signature": "window",
                   "inputs": {"tokens": {"dtype": "int32", "shape": [batch, config.window]}},
                   "outputs": {"probs": {"dtype": "float32", "shape": [batch, config.vocab_size]}}},
        "step": {"signature": "step",
                 "inputs": {"token": {"dtype": "int32", "shape": [batch]}, "h": state, "c": state},
                 "outputs": {"probs": {"dtype": "float32", "shape": [batch, config.vocab_size]},
                             "h_out": state, "c_out": state}},
    }
    report = loaded.saved.get("corpus", {})
    training = loaded.saved.get("training", {})
    train_report = _read_train_report(loaded.path)
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "nextword_version": __version__,
        "precision": precision,
        "graph": graph,
        **({"companion": companion} if companion else {}),
        "forms": forms if graph == "window+step" else {graph: forms[graph]},
        "padding": PADDING_NOTE,
        "model": config.to_dict(),
        "tokenizer": loaded.tokenizer.settings(),
        "special_ids": {"pad": 0, "unk": loaded.tokenizer.unk_id, "eos": loaded.tokenizer.eos_id},
        "training": {
            "corpus": report.get("name"),
            "corpus_sha256": report.get("sha256"),
            "lines": report.get("lines"),
            "mode": training.get("mode"),
            "epochs": train_report.get("training", {}).get("epochs_completed"),
            "final_metrics": train_report.get("final", {}),
        },
    }


def _read_train_report(run_path: Path) -> dict:
    try:
        return json.loads((run_path / "train_report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _measure(engine, forms: list[str], contexts: np.ndarray, reference: np.ndarray, config: ModelConfig) -> dict:
    results = {}
    if "window" in forms:
        results["window"] = compare(reference, engine.window(contexts))
    if "step" in forms:
        h = np.zeros((config.num_layers, len(contexts), config.hidden_size), np.float32)
        c = np.zeros_like(h)
        probs = None
        for column in contexts.T:  # padding columns are no-ops: the masked design under test
            probs, h, c = engine.step(column, h, c)
        results["step"] = compare(reference, probs)
    # Same input, same output: no state may leak from one invocation to the next.
    again = engine.window(contexts[:8]) if "window" in forms else None
    if again is not None and not np.array_equal(again, engine.window(contexts[:8])):
        results["repeatable"] = False
    return results


def export_run(run_dir: str | Path, out_dir: str | Path, *, formats: list[str], precisions: list[str] | None,
               allow_mismatch: bool = False, log: Log = print) -> dict:
    selection = parse_selection(formats, precisions)
    loaded = load_run(run_dir)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".nextword-probe-")
        probe.close()
    except OSError as err:
        raise RunDirError(f"cannot write to --out {out}: {err.strerror or err}; choose a writable directory"
                          ) from None
    for stale in out.glob(".model*.tmp*"):  # left by an export that was killed mid-write
        stale.unlink(missing_ok=True)

    config, tokenizer = loaded.config, loaded.tokenizer
    rng = np.random.default_rng(0)
    sources = _text_sources(loaded)
    text, counts = validation_contexts.text_contexts(sources, tokenizer, config, rng)
    edges = validation_contexts.edge_cases(tokenizer, config, rng)
    contexts = np.concatenate([text, np.stack(list(edges.values()))])  # (n, window)
    reference = loaded.model(contexts, training=False).numpy()  # (n, vocab)
    names = (["held-out lines"] if len(sources) == 2 else []) + (["training lines"] if sources else []) + \
        ["random word sequences"]
    origin = {name: count for name, count in zip(names, counts) if count}
    log(f"validating on {len(contexts)} contexts: " + ", ".join(f"{n} from {k}" for k, n in origin.items())
        + f", {len(edges)} edge cases")

    graphs = InferenceGraphs(LstmWeights.from_keras(loaded.model, config), config)
    entries, problems = [], []
    with tempfile.TemporaryDirectory(prefix="nextword-export-") as tmp:
        saved_model = Path(tmp) / "saved_model"
        if any(f == "tflite" for f, _ in selection):
            tf.saved_model.save(graphs, str(saved_model), signatures={
                "window": graphs.window.get_concrete_function(), "step": graphs.step.get_concrete_function()})
        onnx_float = {}
        for fmt, precision in selection:
            log(f"exporting {fmt} {precision} ...")
            if fmt == "tflite":
                files = _write_tflite(out, saved_model, loaded, precision)
            else:
                if not onnx_float:
                    onnx_float = {form: onnx_format.convert(graphs, form) for form in ("window", "step")}
                files = _write_onnx(out, onnx_float, loaded, precision)
            entry, problem = _validate_and_place(files, fmt, precision, contexts, reference, config,
                                                 allow_mismatch, log)
            entries.append(entry)
            problems.extend(problem)
    report = {
        "nextword_version": __version__,
        "run_dir": str(loaded.path),
        "out_dir": str(out),
        "contexts": {"total": int(len(contexts)), "sources": origin, "edge_cases": list(edges)},
        "tolerances": {p: tolerance_dict(p) for p in TOLERANCES},
        "files": entries,
        "passed": not problems,
        "allow_mismatch": allow_mismatch,
    }
    write_report(out / "export_report.json", report)
    print_table(entries, log)
    if problems and not allow_mismatch:
        more = f" (and {len(problems) - 1} more; see {out / 'export_report.json'})" if len(problems) > 1 else ""
        raise ExportValidationError(f"{problems[0]}{more}; the file was not written, pass --allow-mismatch "
                                    "to write it anyway")
    if problems:
        log(f"warning: {len(problems)} tolerance miss(es) written anyway (--allow-mismatch): {problems[0]}")
    return report


def _write_tflite(out: Path, saved_model: Path, loaded: LoadedRun, precision: str) -> list[tuple[Path, Path]]:
    import hashlib

    flatbuffer = tflite_format.with_metadata_entry(
        tflite_format.convert(saved_model, precision),
        f"Next-word LSTM ({precision}); vocabulary in vocab.txt, config in nextword.json")
    metadata = _metadata(loaded, precision, "window+step", None)
    metadata["checksum"] = {"sha256": hashlib.sha256(flatbuffer).hexdigest(),
                            "covers": "the flatbuffer: every byte before the appended zip archive"}
    metadata["ops"] = tflite_format.builtin_ops(flatbuffer)
    archive = tflite_format.associated_files_zip(loaded.tokenizer.vocab_text(),
                                                 json.dumps(metadata, indent=1, ensure_ascii=False))
    final = out / file_name("tflite", precision)
    return [(final, _write_temp(final, flatbuffer + archive))]


def _write_onnx(out: Path, float_protos: dict, loaded: LoadedRun, precision: str) -> list[tuple[Path, Path]]:
    written = []
    names = {graph: file_name("onnx", precision, graph) for graph in ("window", "step")}
    for graph, other in (("window", "step"), ("step", "window")):
        proto = float_protos[graph]
        if precision == "int8":
            proto = onnx_format.quantize_int8(proto)
        else:
            proto = type(proto).FromString(proto.SerializeToString())  # a copy: metadata is set in place
        metadata = _metadata(loaded, precision, graph, {"file": names[other], "graph": other})
        data = onnx_format.with_metadata(proto, loaded.tokenizer.vocab_text(),
                                         json.dumps(metadata, indent=1, ensure_ascii=False))
        final = out / names[graph]
        written.append((final, _write_temp(final, data)))
    return written


def _metadata_forms(checked: dict) -> dict:
    forms = {}
    for model in checked.values():
        forms.update(model.forms)
    return forms


def _write_temp(final: Path, data: bytes) -> Path:
    """The bytes under a temporary name beside ``final``; renamed only once validated."""
    handle = tempfile.NamedTemporaryFile(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp", delete=False)
    with handle:
        handle.write(data)
    return Path(handle.name)


def _validate_and_place(files: list[tuple[Path, Path]], fmt: str, precision: str, contexts: np.ndarray,
                        reference: np.ndarray, config: ModelConfig, allow_mismatch: bool, log: Log):
    tolerance = TOLERANCES[precision]
    try:
        checked = {final: read_model_file(temp) for final, temp in files}  # metadata + checksum round trip
        if fmt == "tflite":
            engine, forms = TFLiteEngine(next(iter(checked.values())), "ai-edge-litert"), ["window", "step"]
        else:
            engine = OnnxEngine({m.metadata["graph"]: m for m in checked.values()})
            forms = ["window", "step"]
        expected_io = {form: (sorted(spec["inputs"]), sorted(spec["outputs"]))
                       for form, spec in _metadata_forms(checked).items()}
        problems = [f"{files[0][0].name}: {form} form has inputs/outputs {engine.io_names().get(form)}, "
                    f"expected {io}" for form, io in expected_io.items() if engine.io_names().get(form) != io]
        results = _measure(engine, forms, contexts, reference, config)
        for form in forms:
            problems += [f"{files[0][0].name}: {form} form {miss}" for miss in failures(results[form], tolerance)]
        if results.get("repeatable") is False:
            problems.append(f"{files[0][0].name}: two identical calls gave different outputs")
        passed = not problems
        if passed or allow_mismatch:
            for final, temp in files:
                with atomic_path(final) as target:
                    temp.replace(target)
    finally:
        for _, temp in files:
            temp.unlink(missing_ok=True)
    entry = {
        "path": files[0][0].name,
        "files": [final.name for final, _ in files],
        "format": fmt,
        "precision": precision,
        "forms": forms,
        "size_bytes": sum(len(m.data) for m in checked.values()),
        "sizes": {final.name: len(checked[final].data) for final, _ in files},
        "dynamic_batch": True,
        "engine": engine.name,
        "validation": results,
        "tolerance": tolerance_dict(precision),
        "passed": passed,
        "written": passed or allow_mismatch,
    }
    if fmt == "tflite":
        entry["ops"] = next(iter(checked.values())).metadata["ops"]
    return entry, problems
