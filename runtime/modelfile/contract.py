"""The model-file contract: what every exported file carries, typed and named in one place.

The exporter builds a ``ModelMetadata`` and writes ``to_dict()`` into the file; the runtime's
``read_model_file`` parses it back with ``from_dict()``, which checks every field's type, so a
file that says something it cannot mean is refused with one line before any engine sees it.

    from nextword.modelfile.reader import read_model_file
    meta = read_model_file("model.int8.tflite").metadata
    meta.precision, meta.model.window, meta.forms[WINDOW].inputs[TOKENS].shape    # "int8", 17, (-1, 17)

Everything else that names a part of the contract imports it from here: the tensor names
(``tokens``, ``probs``, ``h_out`` ...), the formats, precisions and engines, file names.
Layout (format version 1) and the byte-level containers are described in ``nextword.modelfile.reader``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nextword import __version__
from nextword.config import ModelConfig
from nextword.errors import MetadataError, UsageError
from nextword.records import header_mismatch

MODEL_FORMAT = "nextword.model"
#: Bump when the embedded metadata changes incompatibly; readers refuse other versions.
#: 2: the ``sequence`` form; one ONNX file per precision (format 1 had a step companion file).
MODEL_FORMAT_VERSION = 2

# ---------------------------------------------------------------- names in the graphs
#: The forms of a model: a whole pre-padded context; one token with the LSTM state; any number of
#: tokens with the LSTM state (a loop: its cost follows the context's length).
WINDOW, STEP, SEQUENCE = "window", "step", "sequence"
#: Window form: ``tokens`` int32 (batch, window) -> ``probs`` float32 (batch, vocab).
TOKENS, PROBS = "tokens", "probs"
#: Step form: ``token`` int32 (batch,), ``h``/``c`` float32 (layers, batch, hidden) -> probs, h_out, c_out.
#: Sequence form: ``tokens`` int32 (batch, steps), h, c -> probs, h_out, c_out.
#: Outputs are not named like inputs: an output named ``h`` breaks tf2onnx's rewriters.
TOKEN, H, C, H_OUT, C_OUT = "token", "h", "c", "h_out", "c_out"

PADDING_NOTE = ("id 0 is padding and is masked: it leaves the LSTM state unchanged, so a pre-padded window equals "
                "the step form fed the same ids from zero h and c")
#: model.masked false (a Keras model without mask_zero, brought to `nextword export`).
PADDING_READ_NOTE = ("id 0 is padding and is read by the cells like any token (model.masked false): run the full "
                     "pre-padded window from zero h and c; the state after a context cannot be carried on")


def padding_note(config: ModelConfig) -> str:
    return PADDING_NOTE if config.masked else PADDING_READ_NOTE

# -------------------------------------------------------- formats, precisions, engines
#: What `nextword export` writes: format -> precisions. The parity suite checks every cell.
PRECISIONS: dict[str, tuple[str, ...]] = {"tflite": ("float32", "float16", "int8"), "onnx": ("float32", "int8")}
FORMATS: tuple[str, ...] = tuple(PRECISIONS)
ALL_PRECISIONS: tuple[str, ...] = ("float32", "float16", "int8")
#: Engines that run each format, best first.
ENGINES: dict[str, tuple[str, ...]] = {"tflite": ("ai-edge-litert", "tflite-runtime"), "onnx": ("onnxruntime",)}
ALL_ENGINES: tuple[str, ...] = tuple(engine for fmt in FORMATS for engine in ENGINES[fmt])
#: The pip extra that installs each engine.
ENGINE_EXTRAS = {"ai-edge-litert": "litert", "tflite-runtime": "tflite", "onnxruntime": "onnx"}
#: The forms each format's file holds. TFLite: three signatures over the same weights. ONNX has one
#: graph per file: the sequence form, which is the window form (a pre-padded window from the zero
#: state) and the step form (one token) too.
FORMS: dict[str, tuple[str, ...]] = {"tflite": (WINDOW, STEP, SEQUENCE), "onnx": (SEQUENCE,)}

# ------------------------------------------------------------- where the metadata lives
#: TFLite: associated files in a zip appended to the flatbuffer.
CONFIG_NAME = "nextword.json"
VOCAB_NAME = "vocab.txt"
#: Optional, in signed files only: the signature record (``nextword.modelfile.signing``), outside the checksum it signs.
SIGNATURE_NAME = "nextword.sig"
#: ONNX: ``metadata_props`` keys.
ONNX_CONFIG_KEY = "nextword.config"
ONNX_VOCAB_KEY = "nextword.vocab"
ONNX_DIGEST_KEY = "nextword.sha256"
#: Signed files only: the last top-level field of the file, so the checksum covers everything before it.
ONNX_SIGNATURE_KEY = "nextword.signature"
DIGEST_PLACEHOLDER = "0" * 64


def file_name(fmt: str, precision: str) -> str:
    """``model.tflite``, ``model.int8.tflite``, ``model.onnx`` ...: the names `nextword export` writes."""
    suffix = "" if precision == "float32" else f".{precision}"
    return f"model{suffix}.{fmt}"


#: The step companions of format 1's ONNX files: recognised in an export folder, so that exporting
#: again over it (--overwrite) removes them.
FORMAT_1_FILE_NAMES = ("model.step.onnx", "model.step.int8.onnx")


def model_file_names() -> set[str]:
    """Every file name `nextword export` may write or have written (a folder's export is recognised by them)."""
    return {file_name(fmt, p) for fmt, precisions in PRECISIONS.items() for p in precisions} | set(FORMAT_1_FILE_NAMES)


def parse_selection(formats: list[str], precisions: list[str] | None) -> list[tuple[str, str]]:
    """(format, precision) pairs to export, in a fixed order; a name that does not exist is a UsageError."""
    for fmt in formats:
        if fmt not in PRECISIONS:
            raise UsageError(f"format {fmt!r} does not exist; choose from {', '.join(FORMATS)}")
    for precision in precisions or []:
        if precision not in ALL_PRECISIONS:
            raise UsageError(f"precision {precision!r} does not exist; choose from {', '.join(ALL_PRECISIONS)}")
    pairs = [(f, p) for f in FORMATS if f in formats for p in PRECISIONS[f] if precisions is None or p in precisions]
    if not pairs:
        raise UsageError(f"no format supports the precisions {precisions}: "
                         + "; ".join(f"{f} has {', '.join(ps)}" for f, ps in PRECISIONS.items()))
    return pairs


# --------------------------------------------------------------------- typed metadata
def _require(data: Any, key: str, kind, where: str, *, optional: bool = False):
    """``data[key]`` checked to be a ``kind`` (bool is not an int here), as a one-line MetadataError."""
    if not isinstance(data, dict):
        raise MetadataError(f"embedded config field {where or 'root'} must be an object, found {type(data).__name__}")
    if key not in data or data[key] is None:
        if optional:
            return None
        raise MetadataError(f"embedded config lacks {where + '.' if where else ''}{key}; re-export the model")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise MetadataError(f"embedded config field {where + '.' if where else ''}{key} must be {names}, "
                            f"found {type(value).__name__}; the file is damaged or was edited, re-export it")
    return value


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    #: -1 is the dynamic batch dimension.
    shape: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TensorSpec:
        dtype = _require(data, "dtype", str, where)
        shape = _require(data, "shape", list, where)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise MetadataError(f"embedded config field {where}.shape must be a list of integers")
        return cls(dtype, tuple(shape))


@dataclass(frozen=True)
class FormSpec:
    signature: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def io_names(self) -> tuple[list[str], list[str]]:
        return sorted(self.inputs), sorted(self.outputs)

    def to_dict(self) -> dict:
        return {"signature": self.signature, "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
                "outputs": {k: v.to_dict() for k, v in self.outputs.items()}}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FormSpec:
        signature = _require(data, "signature", str, where)
        specs = {}
        for side in ("inputs", "outputs"):
            tensors = _require(data, side, dict, where)
            specs[side] = {name: TensorSpec.from_dict(spec, f"{where}.{side}.{name}") for name, spec in tensors.items()}
        return cls(signature, specs["inputs"], specs["outputs"])


def form_specs(config: ModelConfig, fmt: str) -> dict[str, FormSpec]:
    """The forms a ``fmt`` file of a model of this shape holds; -1 is a dynamic dimension (batch, steps)."""
    batch = steps = -1
    state = TensorSpec("float32", (config.num_layers, batch, config.hidden_size))
    probs = TensorSpec("float32", (batch, config.vocab_size))
    recurrent = {PROBS: probs, H_OUT: state, C_OUT: state}
    forms = {
        WINDOW: FormSpec(WINDOW, {TOKENS: TensorSpec("int32", (batch, config.window))}, {PROBS: probs}),
        STEP: FormSpec(STEP, {TOKEN: TensorSpec("int32", (batch,)), H: state, C: state}, recurrent),
        SEQUENCE: FormSpec(SEQUENCE, {TOKENS: TensorSpec("int32", (batch, steps)), H: state, C: state}, recurrent),
    }
    return {name: forms[name] for name in FORMS[fmt]}


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    unk: int | None
    eos: int | None


@dataclass(frozen=True)
class TrainingSummary:
    """Where the weights came from (informational: nothing at run time depends on it)."""

    corpus: str | None = None
    corpus_sha256: str | None = None
    lines: int | None = None
    mode: str | None = None
    epochs: int | None = None
    final_metrics: dict = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Checksum:
    sha256: str
    covers: str


#: What a TFLite file's ``checksum.sha256`` covers: everything the runtime reads (see ``modelfile.tflite_digest``).
TFLITE_CHECKSUM_COVERS = ("the flatbuffer, vocab.txt and nextword.json (its digest read as 64 zeros), each "
                          "preceded by its length as an 8-byte little-endian integer")
#: What it covered in earlier files: the flatbuffer only (the config and vocabulary were open to edits).
FLATBUFFER_ONLY_COVERS = "the flatbuffer: every byte before the appended zip archive"


@dataclass(frozen=True)
class ModelMetadata:
    """Everything a device needs to run a model file, besides the vocabulary (stored beside it)."""

    precision: str
    #: The file's forms (``FORMS[format]``), by name.
    forms: dict[str, FormSpec]
    model: ModelConfig
    #: Tokenizer settings as ``Tokenizer.settings()`` writes them (vocabulary size and sha256 included).
    tokenizer: dict
    special_ids: SpecialIds
    training: TrainingSummary = TrainingSummary()
    padding: str = PADDING_NOTE
    #: TFLite: sha256 of the flatbuffer, vocabulary and config (ONNX keeps its digest in metadata_props instead).
    checksum: Checksum | None = None
    #: TFLite: the builtin operators the flatbuffer uses.
    ops: tuple[str, ...] | None = None
    #: Bytes of the weights per group (embedding, lstm, projection, output, other constants), measured by
    #: the exporter on the file's tensors (informational: `nextword inspect` shows them).
    tensor_bytes: dict[str, int] | None = None
    #: Where a model not trained by nextword came from (``nextword export MODEL_FILE``): kind, file, sha256,
    #: layers, framework version (informational: `nextword inspect` shows it).
    source: dict | None = None
    nextword_version: str = __version__
    format: str = MODEL_FORMAT
    format_version: int = MODEL_FORMAT_VERSION

    def to_dict(self) -> dict:
        out = {"format": self.format, "format_version": self.format_version,
               "nextword_version": self.nextword_version, "precision": self.precision}
        out.update({
            "forms": {name: form.to_dict() for name, form in self.forms.items()},
            "padding": self.padding,
            "model": self.model.to_dict(),
            "tokenizer": dict(self.tokenizer),
            "special_ids": dataclasses.asdict(self.special_ids),
            "training": dataclasses.asdict(self.training),
        })
        if self.checksum:
            out["checksum"] = dataclasses.asdict(self.checksum)
        if self.ops is not None:
            out["ops"] = list(self.ops)
        if self.tensor_bytes is not None:
            out["tensor_bytes"] = dict(self.tensor_bytes)
        if self.source is not None:
            out["source"] = dict(self.source)
        return out

    @classmethod
    def from_dict(cls, data: Any, fmt: str) -> ModelMetadata:
        """Parse and type-check the metadata of a ``fmt`` file; MetadataError names the first field that is wrong."""
        mismatch = header_mismatch(data, format=MODEL_FORMAT, version=MODEL_FORMAT_VERSION)
        if mismatch == "format":
            raise MetadataError("embedded config is not nextword model metadata")
        version = data.get("format_version")
        written_by = f"nextword {data.get('nextword_version')}"
        if mismatch == "older":
            raise MetadataError(f"written in model-file format {version} by {written_by}; this nextword reads format "
                                f"{MODEL_FORMAT_VERSION}: export the model again (nextword export RUN --out DIR)")
        if mismatch == "newer":
            raise MetadataError(f"model-file format {version!r} is not supported by this nextword (reads "
                                f"{MODEL_FORMAT_VERSION}); written by {written_by}, upgrade nextword")
        precision = _require(data, "precision", str, "")
        forms_raw = _require(data, "forms", dict, "")
        forms = {name: FormSpec.from_dict(spec, f"forms.{name}") for name, spec in forms_raw.items()}
        if set(forms) != set(FORMS[fmt]):
            raise MetadataError(f"embedded config lists forms {sorted(forms)}; a {fmt} file holds "
                                f"{', '.join(FORMS[fmt])}: re-export the model")
        model_raw = _require(data, "model", dict, "")
        try:
            model = ModelConfig.from_dict(model_raw)
        except (UsageError, TypeError) as err:
            raise MetadataError(f"embedded model config is unusable ({err}); re-export the model") from None
        special_raw = _require(data, "special_ids", dict, "")
        special = SpecialIds(_require(special_raw, "pad", int, "special_ids"),
                             _require(special_raw, "unk", int, "special_ids", optional=True),
                             _require(special_raw, "eos", int, "special_ids", optional=True))
        training_raw = _require(data, "training", dict, "", optional=True) or {}
        known = {f.name for f in dataclasses.fields(TrainingSummary)}
        training = TrainingSummary(**{k: v for k, v in training_raw.items() if k in known})
        checksum_raw = _require(data, "checksum", dict, "", optional=True)
        checksum = None if checksum_raw is None else Checksum(_require(checksum_raw, "sha256", str, "checksum"),
                                                              _require(checksum_raw, "covers", str, "checksum"))
        ops = _require(data, "ops", list, "", optional=True)
        tensor_bytes = _require(data, "tensor_bytes", dict, "", optional=True)
        if tensor_bytes is not None and not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                for v in tensor_bytes.values()):
            raise MetadataError("embedded config field tensor_bytes must map group names to byte counts")
        return cls(
            precision=precision, forms=forms, model=model,
            tokenizer=_require(data, "tokenizer", dict, ""), special_ids=special, training=training,
            padding=_require(data, "padding", str, "", optional=True) or PADDING_NOTE,
            checksum=checksum, ops=None if ops is None else tuple(str(op) for op in ops), tensor_bytes=tensor_bytes,
            source=_require(data, "source", dict, "", optional=True),
            nextword_version=str(data.get("nextword_version")), format=MODEL_FORMAT, format_version=version,
        )
