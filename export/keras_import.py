"""A Keras user's own model file, read as something the exporter can write: ``nextword export MODEL_FILE``.

    imported = import_keras_model("model.keras", tokenizer="tokenizer.json", window=None)
    imported.config, imported.tokenizer, imported.stack     # what the graphs and the metadata need
    imported.model(contexts, training=False)                 # the user's model: the validation reference

What is read: a Keras 3 ``.keras`` or an HDF5 ``.h5`` (Keras 3, Keras 2 / tf_keras: Keras 3 reads it, and
tf_keras when Keras 3 cannot and tf_keras is installed), Sequential or functional, whose layers form one chain:
``Embedding`` (with or without ``mask_zero``) -> one or more of ``LSTM``, ``GRU`` (either ``reset_after``) and
``SimpleRNN``, with the activations Keras allows them -> optional ``Dense`` / ``Activation`` layers -> a final
softmax or linear output. Dropout and noise layers do nothing at inference and are skipped. Anything else is
refused in one line that names the layer and lists what is supported; nothing is written.

An Embedding without ``mask_zero`` makes the cells read the pre-padding zeros like any token. Such a model is
exported unmasked (``ModelConfig.masked`` false): its files reproduce the Keras model on the full pre-padded
window, and the runtime reads every context through that window (a state cannot be carried on, since the
state after n words depends on the window - n pads before them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nextword.config import ModelConfig
from nextword.errors import ModelFileError, UsageError
from nextword.export.keras_tokenizer import find_tokenizer, read_tokenizer
from nextword.tokenizer import Tokenizer

SUPPORTED = ("Embedding -> LSTM / GRU / SimpleRNN (one or more; Dropout between them) -> optional Dense or "
             "Activation layers -> a final softmax or linear Dense")
_RECURRENT = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn"}
#: Layers that are the identity at inference.
_INFERENCE_IDENTITY = {"Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
                       "ActivityRegularization"}


@dataclass(frozen=True)
class Cell:
    """One recurrent layer: Keras' weights and activations (functions, called on TensorFlow tensors)."""

    kind: str  # lstm, gru, simple_rnn
    units: int
    kernel: np.ndarray  # (input, gates * units)
    recurrent_kernel: np.ndarray  # (units, gates * units)
    bias: np.ndarray | None  # (gates * units,); GRU with reset_after: (2, 3 * units)
    activation: object
    recurrent_activation: object | None
    reset_after: bool = False
    description: str = ""


@dataclass(frozen=True)
class Head:
    """A Dense (kernel and bias) or an Activation (no kernel) after the last recurrent layer."""

    kernel: np.ndarray | None
    bias: np.ndarray | None
    activation: object
    description: str = ""


@dataclass(frozen=True)
class Stack:
    embedding: np.ndarray  # (input_dim, embedding_dim)
    masked: bool
    cells: tuple[Cell, ...]
    head: tuple[Head, ...]  # the last entry's activation is replaced by the softmax
    logits: bool  # the model outputs linear logits (the files output their softmax)

    def describe(self) -> list[str]:
        rows, dims = self.embedding.shape
        return ([f"Embedding({rows}, {dims}{', mask_zero' if self.masked else ''})"]
                + [cell.description for cell in self.cells] + [h.description for h in self.head])


class Reference:
    """The user's Keras model as the validation reference: probabilities (a logits model gets its softmax)."""

    def __init__(self, model, logits: bool) -> None:
        self.model, self.logits = model, logits

    def __call__(self, contexts, training: bool = False) -> np.ndarray:
        out = np.asarray(self.model(np.asarray(contexts, np.int32), training=False), np.float64)
        if self.logits:
            out = np.exp(out - out.max(axis=-1, keepdims=True))
            out /= out.sum(axis=-1, keepdims=True)
        return out.astype(np.float32)


@dataclass
class ImportedModel:
    """What ``export_run`` needs of a run, for a model file: path, tokenizer, config, reference, provenance."""

    path: Path
    tokenizer: Tokenizer
    config: ModelConfig
    model: Reference
    stack: Stack
    source: dict
    saved: None = None  # no run config (SavedRun): the model was trained elsewhere

    def train_report(self) -> None:
        return None  # trained elsewhere: no report

    def text_sources(self) -> list:
        return []  # no corpus: validation uses random word sequences and the edge cases

    def model_sha256(self) -> str:
        return self.source["sha256"]


def import_keras_model(path: str | Path, *, tokenizer: str | Path | None = None,
                       window: int | None = None) -> ImportedModel:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    model, framework = _load(path)
    stack = read_stack(model)
    window = _window(model, window)
    tokenizer_path = Path(tokenizer) if tokenizer is not None else find_tokenizer(path)
    output_dim = int(next(h.kernel.shape[1] for h in reversed(stack.head) if h.kernel is not None))
    tokens = read_tokenizer(tokenizer_path, input_dim=stack.embedding.shape[0], output_dim=output_dim)
    config = ModelConfig(vocab_size=output_dim, window=window, embedding_dim=int(stack.embedding.shape[1]),
                         hidden_size=max(cell.units for cell in stack.cells), num_layers=len(stack.cells),
                         masked=stack.masked)
    source = {"kind": "keras model file", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "framework": framework, "layers": stack.describe(), "tokenizer_file": tokenizer_path.name,
              "output": "logits (softmax applied in the file)" if stack.logits else "softmax"}
    return ImportedModel(path, tokens, config, Reference(model, stack.logits), stack, source)


def _load(path: Path):
    """(model, "keras X" or "tf_keras X"): Keras 3 first, tf_keras for an .h5 Keras 3 cannot read."""
    import keras

    try:  # safe_mode: a Lambda layer's code is never deserialized
        return keras.models.load_model(path, safe_mode=True, compile=False), f"keras {keras.__version__}"
    except Exception as err:  # a damaged or foreign file raises many types
        first = " ".join(str(err).split())[:200]
    # tf_keras reads an .h5 Keras 3 refused, but never one Keras 3 refused for its code (a Lambda layer):
    # tf_keras' HDF5 reader would unmarshal and run that code.
    if path.suffix.lower() != ".keras" and "lambda" not in first.lower() and "safe_mode" not in first:
        try:
            import tf_keras
        except ImportError:
            tf_keras = None
        if tf_keras is not None:
            try:
                return tf_keras.models.load_model(path, compile=False), f"tf_keras {tf_keras.__version__}"
            except Exception:  # noqa: BLE001  (report Keras 3's reason: it is the primary reader)
                pass
    raise ModelFileError(f"{path.name} cannot be loaded as a Keras model ({first}); give the .keras or .h5 file "
                         "that model.save() wrote")


def read_stack(model) -> Stack:
    """The chain of layers as weights and activations, or one line naming the first layer nextword cannot export."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if len(getattr(model, "inputs", None) or [None]) != 1 or len(getattr(model, "outputs", None) or [None]) != 1:
        raise UsageError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; nextword "
                         f"exports one chain: {SUPPORTED}")
    if type(model).__name__ != "Sequential":  # a Sequential model is a chain by construction
        _check_chain(layers)
    layers = [layer for layer in layers if type(layer).__name__ not in _INFERENCE_IDENTITY]
    if not layers or type(layers[0]).__name__ != "Embedding":
        first = _name(layers[0]) if layers else "no layer"
        raise UsageError(f"the model starts with {first}, not an Embedding; nextword exports {SUPPORTED}")
    embedding_layer = layers[0]
    embedding = np.asarray(embedding_layer.get_weights()[0], np.float32)
    cells, head = [], []
    for position, layer in enumerate(layers[1:], start=1):
        kind = type(layer).__name__
        if kind in _RECURRENT and not head:
            cells.append(_cell(layer, last=not any(type(x).__name__ in _RECURRENT for x in layers[position + 1:])))
        elif kind in ("Dense", "Activation") and cells:
            head.append(_head(layer))
        else:
            why = "" if kind != "Bidirectional" else \
                " (it reads the context backwards too, so no word-by-word form exists)"
            raise UsageError(f"layer {_name(layer)} is not supported{why}; nextword exports {SUPPORTED}")
    if not cells:
        raise UsageError(f"the model has no recurrent layer; nextword exports {SUPPORTED}")
    if not head or all(h.kernel is None for h in head):
        raise UsageError(f"the model ends without a Dense output layer; nextword exports {SUPPORTED}")
    final = _activation_name(head[-1].activation)
    if final not in ("softmax", "linear"):
        raise UsageError(f"the last layer {_name(layers[-1])} outputs {final}; nextword exports a softmax or "
                         "linear (logits) output over the vocabulary")
    mask_zero = bool(getattr(embedding_layer, "mask_zero", False))
    return Stack(embedding, mask_zero, tuple(cells), tuple(head), logits=final == "linear")


def _check_chain(layers) -> None:
    """A functional model must be a plain chain: each layer reads the one before it (as the model's graph
    records it; where a Keras release does not expose that graph, validation against the model still does)."""
    known = {id(layer) for layer in layers}
    for before, layer in zip(layers, layers[1:]):
        readers = _parents(layer)
        # Only layers count: Keras records a mask_zero model's mask computation (not_equal) as a parent too.
        if readers is not None and [before] not in [[p for p in r if id(p) in known] for r in readers]:
            raise UsageError(f"layer {_name(layer)} does not read the output of {_name(before)} alone; nextword "
                             f"exports a single chain of layers: {SUPPORTED}")


def _parents(layer) -> list[list] | None:
    """For each call of ``layer`` in a graph, the layers it read; None if Keras does not say."""
    try:
        return [[parent.operation for parent in node.parent_nodes] for node in layer._inbound_nodes]
    except (AttributeError, TypeError):
        return None


def _cell(layer, last: bool) -> Cell:
    kind = type(layer).__name__
    cell = layer.cell
    if getattr(layer, "go_backwards", False) or getattr(layer, "stateful", False) \
            or getattr(layer, "time_major", False):
        raise UsageError(f"layer {_name(layer)} is go_backwards, stateful or time_major; nextword exports "
                         "forward, stateless recurrent layers")
    if bool(layer.return_sequences) == last:
        want = "return_sequences=False (the last one)" if last else "return_sequences=True (all but the last)"
        raise UsageError(f"layer {_name(layer)} must have {want}; nextword predicts one word after the context")
    weights = [np.asarray(w, np.float32) for w in layer.get_weights()]
    activation = cell.activation
    recurrent = getattr(cell, "recurrent_activation", None)
    reset_after = bool(getattr(cell, "reset_after", False))
    name = f"{kind}({cell.units}, {_activation_name(activation)}" + \
        (f", recurrent {_activation_name(recurrent)}" if recurrent is not None else "") + \
        (f", reset_after={reset_after}" if kind == "GRU" else "") + ")"
    return Cell(_RECURRENT[kind], int(cell.units), weights[0], weights[1], weights[2] if len(weights) > 2 else None,
                activation, recurrent, reset_after, name)


def _head(layer) -> Head:
    activation = layer.activation
    if type(layer).__name__ == "Activation":
        return Head(None, None, activation, f"Activation({_activation_name(activation)})")
    weights = [np.asarray(w, np.float32) for w in layer.get_weights()]
    return Head(weights[0], weights[1] if len(weights) > 1 else None, activation,
                f"Dense({layer.units}, {_activation_name(activation)})")


def _window(model, window: int | None) -> int:
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError, TypeError):
        shape = (None, None)
    fixed = shape[1] if len(shape) == 2 else None
    if fixed is not None and window is not None and int(fixed) != window:
        raise UsageError(f"--window {window} differs from the model's input length {fixed}; leave --window out")
    if fixed is None and window is None:
        raise UsageError("the model's input length is not fixed; pass --window N (the padded length its "
                         "contexts were trained with: max_sequence_len - 1 in the Keras tutorial)")
    return int(fixed if fixed is not None else window)


def _activation_name(function) -> str:
    return getattr(function, "__name__", type(function).__name__)


def _name(layer) -> str:
    return f"{type(layer).__name__} '{layer.name}'"
